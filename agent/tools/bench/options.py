"""The options every scenario shares, and the one way a scenario runs: parse, measure (with
progress on stderr), print the table, write `--json` and `--plot`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent.tools.args import Parser, integer, number, plain, size
from agent.tools.bench.plot import PlotUnavailable, write_plot
from agent.tools.bench.report import Report, table, write_json

Run = Callable[[argparse.Namespace], Awaitable[Report]]


def scenario_parser(name: str, description: str | None) -> Parser:
    parser = Parser(
        prog=f"edgecam bench {name}",
        description=plain(description),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE.png", help="draw the results")
    return parser


def add_runs(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--runs", type=integer(1, 1000), default=default, help=f"repetitions (default {default})"
    )


def add_seconds(parser: argparse.ArgumentParser, default: float) -> None:
    parser.add_argument(
        "--seconds",
        type=number(0.5, 600),
        default=default,
        help=f"seconds measured per step (default {default:g})",
    )


def viewer_list(text: str) -> list[int]:
    """``1,10,50`` -> [1, 10, 50]: each 1..1000."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 1,10,50, got {text!r}") from None
    if not counts or any(not 1 <= c <= 1000 for c in counts):
        raise argparse.ArgumentTypeError(f"{text!r}: each viewer count must be 1..1000")
    return counts


def add_viewers(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--viewers",
        type=viewer_list,
        default=viewer_list(default),
        help=f"viewer counts, comma-separated (default {default})",
    )


async def _awaited(result: Awaitable[Report]) -> Report:
    return await result


def run_scenario(parser: argparse.ArgumentParser, run: Run, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    report = asyncio.run(_awaited(run(args)))
    report.params = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(table(report), flush=True)
    if args.json is not None:
        write_json(report, args.json)
        print(f"wrote {args.json}", file=sys.stderr)
    if args.plot is not None:
        try:
            write_plot(report, args.plot)
        except PlotUnavailable as exc:
            print(f"{parser.prog}: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0


def add_stream(parser: argparse.ArgumentParser) -> None:
    """--size and --bitrate of the test pattern a scenario encodes."""
    parser.add_argument(
        "--size",
        type=size,
        default=(1280, 720),
        help="test pattern WIDTHxHEIGHT (default 1280x720)",
    )
    parser.add_argument(
        "--bitrate",
        type=integer(50_000, 50_000_000),
        default=2_000_000,
        help="bits per second (default 2000000)",
    )
