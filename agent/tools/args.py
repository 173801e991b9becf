"""Command-line values checked where they are read, so bad input is one line of error and
exit status 2, never a traceback (``edgecam demo --size 641x480``, ``--viewers 0``, ...)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (and points at --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def integer(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}..{high}")
        return value

    return convert


def number(low: float, high: float) -> Callable[[str], float]:
    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:g} is outside {low:g}..{high:g}")
        return value

    return convert


def size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT, each even (H.264 4:2:0) and 16..7680 x 16..4320."""
    try:
        width, height = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= width <= 7680 and 16 <= height <= 4320) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(
            f"{text!r}: width 16..7680 and height 16..4320, both even (H.264 4:2:0)"
        )
    return width, height


def fail(prog: str, message: str) -> NoReturn:
    """A one-line error for a value argparse could not check (a port already taken)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def plain(docstring: str | None) -> str | None:
    """A module docstring as --help text: without the code quotes (`x`, ``x``) it uses for
    names, which a terminal shows as noise."""
    return docstring.replace("``", "").replace("`", "") if docstring else docstring
