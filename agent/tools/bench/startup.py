"""`edgecam bench startup`: how fast video starts in Chromium, split into phases.

Per run, timed in the page with ``performance.now()`` from the moment the offer is sent (all
of Chromium's candidates in it): answer applied, ICE connected, DTLS connected
(``connectionState``), first frame shown (``requestVideoFrameCallback``). The same for an
aiortc sender of the same stream in the same run (it relays live frames, so its first frame
waits for the next IDR; ours starts from the cached GOP). p50 and p90 of each phase.

Runs on loopback with Debian Chromium headless (the flags NOTES.md lists); inside a network
namespace with only `lo` (tests/tools/isolated.sh) Chromium offers nothing else.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path
from typing import Any

from agent.tools.bench.child import spawn
from agent.tools.bench.chromium import ChromiumMissing, chromium_page, play, wait_for
from agent.tools.bench.fanout import aiortc_missing
from agent.tools.bench.options import add_runs, add_stream, run_scenario, scenario_parser
from agent.tools.bench.pattern import encode_test_pattern, save_frames
from agent.tools.bench.report import PlotSpec, Progress, Report, finite, percentile

COLUMNS = ["what", "p50_ms", "p90_ms", "runs"]
PHASES = ("answer", "ice", "dtls", "first")
FIRST_FRAME_TIMEOUT = 15.0


async def _runs(
    page: Any, kind: str, path: Path, runs: int, progress: Progress
) -> list[dict[str, Any]]:
    args = ["--kind", kind, "--frames", str(path), "--fps", "30"]
    results: list[dict[str, Any]] = []
    async with spawn("agent.tools.bench.sender", *args, name=kind) as sender:
        for index in range(runs):
            session = f"s{index}"
            await play(page, sender, "viewer-bench", session)
            with contextlib.suppress(Exception):  # a run without a frame counts as missing
                await wait_for(page, "window.bench.first !== undefined", FIRST_FRAME_TIMEOUT)
            phases = await page.evaluate("window.phases()")
            results.append(phases)
            await sender.request("close", client="viewer-bench", session=session)
            first = phases.get("first")
            shown = f"{first:.0f} ms" if isinstance(first, int | float) else "no frame"
            progress.step(f"{kind} run {index + 1}: first frame {shown}")
    return results


def _summarize(report: Report, kind: str, results: list[dict[str, Any]]) -> None:
    for phase in PHASES:
        values = finite(r.get(phase) for r in results)
        report.add(
            what=f"{kind} {phase}",
            p50_ms=percentile(values, 50),
            p90_ms=percentile(values, 90),
            runs=len(values),
        )
    gaps = {
        "answer published": [r["answer"] for r in results if r.get("answer") is not None],
        "dtls after ice": [r["dtls"] - r["ice"] for r in results if r.get("dtls") and r.get("ice")],
        "first frame after dtls": [
            r["first"] - r["dtls"] for r in results if r.get("first") and r.get("dtls")
        ],
    }
    text = ", ".join(f"{name} p50 {percentile(v, 50) or 0:.0f} ms" for name, v in gaps.items())
    report.note(f"{kind}: {text}")


async def run(args: argparse.Namespace) -> Report:
    report = Report("startup", COLUMNS, plot=PlotSpec("what", ("p50_ms", "p90_ms"), "ms"))
    missing = aiortc_missing()
    kinds = ["ours"] if missing else ["ours", "aiortc"]
    if missing:
        report.note(f"aiortc comparison skipped: {missing}")
    progress = Progress("startup", 1 + args.runs * len(kinds))
    width, height = args.size
    frames = encode_test_pattern(width, height, 30, 4.0, args.bitrate)
    progress.step(f"encoded {len(frames)} frames of {width}x{height}")
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-") as tmp:
        path = Path(tmp) / "frames.bin"
        save_frames(frames, path)
        try:
            async with chromium_page() as page:
                for kind in kinds:
                    _summarize(report, kind, await _runs(page, kind, path, args.runs, progress))
        except ChromiumMissing as exc:
            report.note(f"no Chromium run: {exc}")
    report.note("target: ours first frame p50 < 60 ms; answer < 10 ms; DTLS < 10 ms after ICE")
    return report


def main(argv: list[str]) -> int:
    parser = scenario_parser("startup", __doc__)
    add_runs(parser, 20)
    add_stream(parser)
    return run_scenario(parser, run, argv)
