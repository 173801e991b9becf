"""`edgecam bench footprint`: what the agent process holds: RSS idle and with 1, 10, 100
viewers, threads and file descriptors per viewer, idle CPU, and the time and memory that
``import agent.runtime.app`` costs a fresh interpreter (with the heaviest imports named).

The agent is its media path in a process of its own (SessionManager, fan-out, drivers; the
stream replayed, so no encoder is loaded); the viewers are cheap receivers elsewhere. aiortc
serving the same viewers is measured beside it, up to ``--aiortc-max`` viewers.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.tools.args import integer
from agent.tools.bench.fanout import aiortc_missing
from agent.tools.bench.options import add_runs, add_viewers, run_scenario, scenario_parser
from agent.tools.bench.pattern import encode_test_pattern, save_frames
from agent.tools.bench.report import PlotSpec, Progress, Report
from agent.tools.bench.viewers import rig

COLUMNS = [
    "what",
    "viewers",
    "rss_mb",
    "rss_per_viewer_mb",
    "threads",
    "fds",
    "fds_per_viewer",
    "idle_cpu_%",
    "import_ms",
]
IMPORT_PROBE = (
    "import time, resource; t = time.perf_counter(); import {module}; "
    "d = time.perf_counter() - t; "
    "print(d, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
)


def _python(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    root = str(Path(__file__).resolve().parents[3])
    return subprocess.run(
        [sys.executable, *flags, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )


def import_cost(module: str, runs: int) -> tuple[float, float]:
    """Median wall ms to import ``module`` in a fresh interpreter, and the RSS (MB) after."""
    samples = [_python(IMPORT_PROBE.format(module=module)).stdout.split() for _ in range(runs)]
    return (
        statistics.median(float(s[0]) * 1000 for s in samples),
        statistics.median(float(s[1]) for s in samples),
    )


def heaviest_imports(module: str, count: int = 5) -> list[tuple[str, float]]:
    """``python -X importtime``: the top-level packages that take longest (cumulative ms)."""
    err = _python(f"import {module}", "-X", "importtime").stderr
    own = module.split(".")[0]
    totals: dict[str, float] = {}
    for line in err.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match:
            name = match.group(2).split(".")[0]
            if name != own and not name.startswith("_"):
                totals[name] = max(totals.get(name, 0.0), int(match.group(1)) / 1000)
    return sorted(totals.items(), key=lambda item: -item[1])[:count]


async def _footprints(
    report: Report, kind: str, path: Path, counts: list[int], progress: Progress
) -> None:
    async with rig(kind, path, 30, max(counts)) as rig_:
        await asyncio.sleep(1.0)  # settle: the first frames, the first timers
        before = await rig_.usage()
        await asyncio.sleep(2.0)
        idle = await rig_.usage()
        idle_cpu = (idle["cpu"] - before["cpu"]) / (idle["now"] - before["now"]) * 100
        report.add(
            what=kind,
            viewers=0,
            rss_mb=idle["rss_mb"],
            threads=idle["os_threads"],
            fds=idle["fds"],
            **{"idle_cpu_%": idle_cpu},
        )
        progress.step(f"{kind}: idle {idle['rss_mb']:.1f} MB")
        for count in counts:
            await rig_.connect(count)
            await asyncio.sleep(1.0)
            now = await rig_.usage()
            report.add(
                what=kind,
                viewers=count,
                rss_mb=now["rss_mb"],
                rss_per_viewer_mb=(now["rss_mb"] - idle["rss_mb"]) / count,
                threads=now["os_threads"],
                fds=now["fds"],
                fds_per_viewer=(now["fds"] - idle["fds"]) / count,
            )
            progress.step(f"{kind}, {count} viewers: {now['rss_mb']:.1f} MB")


async def run(args: argparse.Namespace) -> Report:
    report = Report(
        "footprint", COLUMNS, plot=PlotSpec("viewers", ("rss_mb",), "RSS, MB", series="what")
    )
    counts = sorted(args.viewers)
    aiortc_counts = [c for c in counts if c <= args.aiortc_max]
    missing = aiortc_missing() if aiortc_counts else "--aiortc-max below every viewer count"
    steps = 2 + 1 + len(counts) + (0 if missing else 1 + len(aiortc_counts))
    progress = Progress("footprint", steps)
    for module in ("agent.runtime.app", "av"):
        ms, rss = import_cost(module, args.runs)
        report.add(what=f"import {module}", rss_mb=rss, import_ms=ms)
        progress.step(f"import {module}: {ms:.0f} ms, {rss:.1f} MB")
    heavy = ", ".join(f"{name} {ms:.0f} ms" for name, ms in heaviest_imports("agent.runtime.app"))
    report.note(f"heaviest imports under agent.runtime.app (-X importtime): {heavy}")
    frames = encode_test_pattern(1280, 720, 30, 4.0, 2_000_000)
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-") as tmp:
        path = Path(tmp) / "frames.bin"
        save_frames(frames, path)
        await _footprints(report, "ours", path, counts, progress)
        if missing is None:
            await _footprints(report, "aiortc", path, aiortc_counts, progress)
        else:
            report.note(f"aiortc comparison skipped: {missing}")
    report.note("rss_mb of 'import' rows: max RSS of a fresh interpreter after the import")
    return report


def main(argv: list[str]) -> int:
    parser = scenario_parser("footprint", __doc__)
    add_viewers(parser, "1,10,100")
    add_runs(parser, 3)
    parser.add_argument(
        "--aiortc-max",
        type=integer(0, 1000),
        default=10,
        help="measure aiortc up to this many viewers; 0: no aiortc (default 10)",
    )
    return run_scenario(parser, run, argv)
