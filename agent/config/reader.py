"""Reading TOML into typed values: every problem collected, each located by file and line.

The schema itself lives in agent.config; this module knows nothing of edgecam's keys. It also
holds the one way this project writes a TOML file: atomically.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, TypeVar

Key = str | int
KeyPath = tuple[Key, ...]
T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot be used; ``problems`` holds one line per problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


Problem = tuple[KeyPath, str]
MISSING: Final = object()


class Bad(ValueError):
    """A value's problem; ``where`` locates it below the key being read (a list index)."""

    def __init__(self, message: str, where: KeyPath = ()) -> None:
        super().__init__(message)
        self.where = where


def show(value: object) -> str:
    """A value as a message shows it: TOML spelling for scalars, a type name for the rest."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def dotted(path: KeyPath) -> str:
    """``("webrtc", "ice_servers", 1, "urls")`` as ``webrtc.ice_servers[1].urls``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class Table:
    """One table being read: getters that record problems (and return the default) instead of
    raising, so that one pass finds every problem in the file."""

    def __init__(self, raw: object, path: KeyPath, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        self.known: list[str] = []
        self.raw: Mapping[Any, Any] = {}
        if isinstance(raw, Mapping):
            self.raw = raw
        elif raw is not MISSING:
            problems.append((path, f"expected a table, got {show(raw)}"))

    def problem(self, key: str, message: str) -> None:
        self.problems.append(((*self.path, key), message))

    def get(self, key: str) -> object:
        self.known.append(key)
        return self.raw.get(key, MISSING)

    def value(self, key: str, default: T, convert: Callable[[Any], T], required: bool = False) -> T:
        raw = self.get(key)
        if raw is MISSING:
            if required:
                self.problem(key, "required key is missing")
            return default
        try:
            return convert(raw)
        except Bad as e:
            self.problems.append(((*self.path, key, *e.where), str(e)))
            return default

    def table(self, key: str) -> Table:
        return Table(self.get(key), (*self.path, key), self.problems)

    def done(self) -> None:
        for key in self.raw:
            if key in self.known:
                continue
            close = difflib.get_close_matches(str(key), self.known, n=1, cutoff=0.6)
            hint = f"; did you mean {show(close[0])}?" if close else ""
            self.problems.append(((*self.path, str(key)), f"unknown key{hint}"))


# Converters: each takes a raw value and returns it typed, or raises Bad saying what is wrong.


def string(v: object) -> str:
    if not isinstance(v, str):
        raise Bad(f"expected a string, got {show(v)}")
    return v


def nonempty(v: object) -> str:
    if not string(v):
        raise Bad("must not be empty")
    return str(v)


def boolean(v: object) -> bool:
    if not isinstance(v, bool):
        raise Bad(f"expected true or false, got {show(v)}")
    return v


def integer(lo: int, hi: int, even: bool = False) -> Callable[[object], int]:
    def convert(v: object) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise Bad(f"expected an integer, got {show(v)}")
        if not lo <= v <= hi:
            raise Bad(f"must be {lo}..{hi}, got {v}")
        if even and v % 2:
            raise Bad(f"must be even (H.264 4:2:0 halves it), got {v}")
        return v

    return convert


def number(lo: float, hi: float) -> Callable[[object], float]:
    def convert(v: object) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise Bad(f"expected a number, got {show(v)}")
        if not (math.isfinite(v) and lo <= v <= hi):
            raise Bad(f"must be {lo:g}..{hi:g}, got {show(v)}")
        return float(v)

    return convert


E = TypeVar("E", bound=StrEnum)


def choice(options: type[E]) -> Callable[[object], E]:
    """A value of the enum ``options``, written as its string value."""
    values = [o.value for o in options]

    def convert(v: object) -> E:
        if not isinstance(v, str) or v not in values:
            raise Bad(f"expected one of {', '.join(map(show, values))}, got {show(v)}")
        return options(v)

    return convert


def strings(item: Callable[[object], str]) -> Callable[[object], tuple[str, ...]]:
    def convert(v: object) -> tuple[str, ...]:
        if not isinstance(v, list | tuple):
            raise Bad(f"expected an array of strings, got {show(v)}")
        out = []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except ValueError as e:
                raise Bad(str(e), (i,)) from None
        return tuple(out)

    return convert


@dataclass
class TomlSource:
    """One TOML file: its name for messages, its text for line numbers, its parsed data."""

    name: str
    text: str
    data: dict[str, Any]
    _lines: dict[KeyPath, int] | None = None

    @classmethod
    def read(cls, path: Path, missing_ok: bool = False) -> TomlSource:
        try:
            text = path.read_bytes().decode("utf-8")
        except (FileNotFoundError, NotADirectoryError) as e:
            if missing_ok:
                return cls(str(path), "", {})
            raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
        except OSError as e:
            raise ConfigError([f"{path}: cannot read: {e.strerror or e}"]) from None
        except UnicodeDecodeError as e:
            raise ConfigError([f"{path}: not UTF-8 text (byte {e.start})"]) from None
        return cls.parse(str(path), text)

    @classmethod
    def parse(cls, name: str, text: str) -> TomlSource:
        try:
            data = tomllib.loads(text)
        except RecursionError:
            raise ConfigError([f"{name}: syntax error: nested too deeply"]) from None
        except ValueError as e:  # TOMLDecodeError, or an integer too long for int()
            m = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", str(e), re.DOTALL)
            where, message = (f"{name}:{m[2]}", f"{m[1]} (column {m[3]})") if m else (name, str(e))
            raise ConfigError([f"{where}: syntax error: {message}"]) from None
        return cls(name, text, data)

    def line_of(self, path: KeyPath) -> int | None:
        """The line of ``path`` or, failing that, of its nearest enclosing key (best effort)."""
        if self._lines is None:
            self._lines = _key_lines(self.text)
        for n in range(len(path), 0, -1):
            if path[:n] in self._lines:
                return self._lines[path[:n]]
        return None

    def owns(self, path: KeyPath) -> bool:
        """True when this file set ``path`` or a value that replaced it whole (an array)."""
        node: object = self.data
        for part in path:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                return not isinstance(node, Mapping) and node is not self.data
        return True


_HEADER = re.compile(r"\s*(\[\[?)([^\[\]]+)\]\]?\s*")
_KEY = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEYLINE = re.compile(rf"\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_-]+)\s*=")
_STRING = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'""")
_KEY_PART = re.compile(r"""[A-Za-z0-9_-]+|"([^"]*)"|'([^']*)'""")


def _split_key(text: str) -> tuple[str, ...]:
    return tuple(m[1] or m[2] or m[0] for m in _KEY_PART.finditer(text))


def _key_lines(text: str) -> dict[KeyPath, int]:
    """Map key paths to the line defining them, by scanning the text the way a reader would:
    table headers, ``key =`` lines, and elements of arrays spread over lines."""
    lines: dict[KeyPath, int] = {}
    table: KeyPath = ()
    tables_seen: dict[KeyPath, int] = {}
    value_key: KeyPath = ()  # the key whose array or inline table is still open
    depth, element, expect_element, in_array = 0, -1, False, False
    multiline: str | None = None
    for n, line in enumerate(text.splitlines(), 1):
        if multiline:
            if multiline in line:
                multiline = None
            continue
        for quote in ('"""', "'''"):
            if line.count(quote) % 2:
                multiline, line = quote, line[: line.index(quote)] + '""'
        code = _STRING.sub('""', line).split("#", 1)[0]
        if depth == 0:
            header = _HEADER.fullmatch(code)
            if header:
                parts: KeyPath = _split_key(header[2])
                if header[1] == "[[":
                    tables_seen[parts] = tables_seen.get(parts, -1) + 1
                    lines.setdefault(parts, n)
                    parts = (*parts, tables_seen[parts])
                table = parts
                lines.setdefault(table, n)
                continue
            keyline = _KEYLINE.match(code)
            if not keyline:
                continue
            value_key = (*table, *_split_key(keyline[1]))
            for end in range(len(table) + 1, len(value_key) + 1):  # a.b = 1 defines a too
                lines.setdefault(value_key[:end], n)
            code, element = code[keyline.end() :], -1
        for ch in code:
            if ch in "[{":
                if depth == 0:
                    in_array = ch == "["
                elif depth == 1 and expect_element:
                    element, expect_element = element + 1, False
                    lines.setdefault((*value_key, element), n)
                depth += 1
                expect_element = depth == 1 and in_array
            elif ch in "]}":
                depth = max(depth - 1, 0)
            elif ch == ",":
                expect_element = depth == 1 and in_array
            elif not ch.isspace() and depth == 1 and expect_element:
                element, expect_element = element + 1, False
                lines.setdefault((*value_key, element), n)
        owner = (*value_key, element) if element >= 0 else value_key
        for m in _INLINE_KEY.finditer(code):
            lines.setdefault((*owner, m[1]), n)
    return lines


Finding = tuple[str, KeyPath, str]  # (severity "error"/"warning", key, message)


def _locate(path: KeyPath, sources: list[TomlSource]) -> tuple[int, int, str]:
    """(which file, line, "file:line: ") of the key ``path``: the override file (last) where
    it set the value, the main file otherwise."""
    owner = (s for s in reversed(sources) if s.owns(path))
    source = next(owner, sources[0] if sources else None)
    if source is None:
        return 0, 0, ""
    line = source.line_of(path)
    where = f"{source.name}:{line}: " if line else f"{source.name}: "
    return sources.index(source), line or 0, where


def format_findings(findings: list[Finding], sources: list[TomlSource]) -> list[str]:
    """``severity: file:line: dotted.key: message`` for each finding, in file order (as an
    editor walks through them; equal lines keep their order)."""
    out: list[tuple[int, int, str]] = []
    for severity, path, message in findings:
        rank, line, where = _locate(path, sources)
        prefix = f"{severity}: " if severity else ""
        out.append((rank, line, f"{prefix}{where}{dotted(path) or '(top level)'}: {message}"))
    return [text for _, _, text in sorted(out, key=lambda p: p[:2])]


def format_problems(problems: list[Problem], sources: list[TomlSource]) -> list[str]:
    """``file:line: dotted.key: message`` for each problem (sources[0] is the main file)."""
    return format_findings([("", path, message) for path, message in problems], sources)


def merge(base: Mapping[str, Any], patch: Mapping[Any, Any]) -> dict[str, Any]:
    """Tables merge key by key; anything else (arrays included) replaces the base value."""
    out = dict(base)
    for key, value in patch.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = merge(old, value)
        else:
            out[key] = value
    return out
