"""What every scenario hands back: a table of rows, notes, the run's parameters and machine.

One shape for all of them, so `--json` and `--plot` are written once: the table is printed on
stdout at the end, the JSON holds the same rows (numbers unrounded), and the plot draws the
columns the scenario names. Progress goes to stderr while a scenario runs, so stdout stays the
table alone.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Cell = float | int | str | None


@dataclass(frozen=True)
class PlotSpec:
    """Which columns to draw: ``y`` against ``x`` (bars per row when ``x`` is text), one line
    per value of the ``series`` column when given (rows without a numeric ``x`` left out)."""

    x: str
    y: tuple[str, ...]
    ylabel: str
    log_x: bool = False
    series: str | None = None


@dataclass
class Report:
    """A scenario's result: ``rows`` keyed by ``columns`` (units in the column names)."""

    scenario: str
    columns: list[str]
    rows: list[dict[str, Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    plot: PlotSpec | None = None

    def add(self, **cells: Cell) -> None:
        unknown = set(cells) - set(self.columns)
        if unknown:
            raise ValueError(f"{self.scenario}: no column {', '.join(sorted(unknown))}")
        self.rows.append({c: cells.get(c) for c in self.columns})

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "machine": machine(),
            "params": self.params,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
        }


def machine() -> dict[str, Any]:
    """Where the figures come from: cores, CPU model, kernel, Python, the load right now."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg": list(os.getloadavg()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _text(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def table(report: Report) -> str:
    """The rows as an aligned text table, then the notes."""
    cells = [[_text(row[c]) for c in report.columns] for row in report.rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(report.columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(report.columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    lines += [f"* {note}" for note in report.notes]
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")


class Progress:
    """One line on stderr per step: ``[3/20] startup: ours, run 3``."""

    def __init__(self, scenario: str, total: int) -> None:
        self.scenario = scenario
        self.total = max(total, 1)
        self.done = 0
        self.started = time.monotonic()

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        print(
            f"[{self.done}/{self.total} {elapsed:5.1f} s] {self.scenario}: {what}",
            file=sys.stderr,
            flush=True,
        )

    def say(self, what: str) -> None:
        print(f"  {self.scenario}: {what}", file=sys.stderr, flush=True)


def finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and v == v]
