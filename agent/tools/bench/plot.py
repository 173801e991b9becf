"""`--plot FILE.png`: the report's chosen columns drawn with matplotlib (imported only here,
and only when asked for: it is the optional `bench` extra, never needed by the agent)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.tools.bench.report import Cell, PlotSpec, Report


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed, or the report has nothing to draw."""


def write_plot(report: Report, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'edgecam[bench]' (or the dev extra)"
        ) from None
    spec = report.plot
    if spec is None or not report.rows:
        raise PlotUnavailable(f"{report.scenario}: nothing to plot")
    figure, axes = plt.subplots(figsize=(7, 4), dpi=80)
    if spec.series is not None or all(isinstance(r[spec.x], int | float) for r in report.rows):
        _lines(axes, report, spec)
    else:
        _bars(axes, report, spec)
    axes.set_xlabel(spec.x)
    axes.set_ylabel(spec.ylabel)
    axes.set_title(f"edgecam bench {report.scenario}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def _lines(axes: Any, report: Report, spec: PlotSpec) -> None:
    groups: dict[str, list[dict[str, Cell]]] = {}
    for row in report.rows:
        key = "" if spec.series is None else str(row[spec.series])
        groups.setdefault(key, []).append(row)
    for name, rows in groups.items():
        for column in spec.y:
            points = [
                (float(x), float(y))
                for row in rows
                if isinstance(x := row[spec.x], int | float)
                and isinstance(y := row[column], int | float)
                and (x > 0 or not spec.log_x)
            ]
            if points:
                label = f"{name} {column}".strip()
                axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    if spec.log_x:
        axes.set_xscale("log")


def _bars(axes: Any, report: Report, spec: PlotSpec) -> None:
    xs = [row[spec.x] for row in report.rows]
    width = 0.8 / max(len(spec.y), 1)
    for index, column in enumerate(spec.y):
        values = [v if isinstance(v := row[column], int | float) else 0 for row in report.rows]
        axes.bar([i + index * width for i in range(len(xs))], values, width=width, label=column)
    axes.set_xticks([i + width * (len(spec.y) - 1) / 2 for i in range(len(xs))])
    axes.set_xticklabels([str(x) for x in xs], rotation=20, ha="right", fontsize=8)
