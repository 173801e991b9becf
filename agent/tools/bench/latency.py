"""`edgecam bench latency`: how far behind the camera the viewer is.

1. Capture to socket: from the moment the camera hands an access unit to the agent (the
   replay source's sink call, on its own thread) to the moment ``FanOut.push`` returns on the
   loop: every viewer's packets are stamped and handed to its pacer, and what the pacer lets
   go at once has been sent. Then capture to last packet (paced): until the last viewer's
   pacer has sent the frame's last packet (its queue empty after a flush). The second
   includes the pacing that issue 11 asks for (a keyframe leaves over tens of ms, not in
   one burst). p50/p99 with 1 and 50 viewers (``--viewers``). The timing is bench-side
   wrappers of the fan-out's ``push`` and the drivers' flush; the agent's code is unchanged.
2. Glass to glass on loopback, in Chromium: each shown frame's RTP timestamp and expected
   display time (``requestVideoFrameCallback`` metadata, wall clock through
   ``performance.timeOrigin``) are mapped back to the wall time the frame was handed to the
   agent (the peer's RTP timestamp offset is read from what it stamps). The clock the test
   pattern draws is not read back: the frame-number-to-time map gives the same figure
   without image recognition.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from agent.tools.bench.child import Child, spawn
from agent.tools.bench.chromium import ChromiumMissing, chromium_page, play, wait_for
from agent.tools.bench.options import add_seconds, add_viewers, run_scenario, scenario_parser
from agent.tools.bench.pattern import encode_test_pattern, save_frames
from agent.tools.bench.report import PlotSpec, Progress, Report, percentile
from agent.tools.bench.viewers import rig

COLUMNS = ["what", "viewers", "p50_ms", "p99_ms", "samples"]


async def _to_socket(report: Report, path: Path, count: int, seconds: float) -> None:
    async with rig("ours", path, 30, count, latency=True) as rig_:
        await rig_.connect(count)
        await asyncio.sleep(0.5)
        await rig_.sender.request("latency")  # drop the samples of the connecting time
        await asyncio.sleep(seconds)
        timing = await rig_.sender.request("latency")
    for what, key in (
        ("capture to socket", "to_socket_ms"),
        ("capture to last packet (paced)", "to_last_packet_ms"),
    ):
        samples = timing[key]
        report.add(
            what=what,
            viewers=count,
            p50_ms=percentile(samples, 50),
            p99_ms=percentile(samples, 99),
            samples=len(samples),
        )


def glass_samples(frames: list[list[float]], timing: dict[str, Any]) -> list[float]:
    """Display wall time (ms) minus hand-off wall time, per shown frame that maps back."""
    offsets = list(timing["rtp_offsets"].values())
    if len(offsets) != 1:
        return []
    handed: dict[str, float] = timing["handed"]
    out = []
    for rtp, display_ms in frames:
        pts = (int(rtp) - offsets[0]) & 0xFFFFFFFF
        wall = handed.get(str(pts))
        if wall is not None:
            out.append(display_ms - wall * 1000)
    return out


async def _glass(report: Report, path: Path, seconds: float) -> None:
    args = ["--kind", "ours", "--frames", str(path), "--fps", "30", "--latency"]
    sender: Child
    async with spawn("agent.tools.bench.sender", *args, name="ours") as sender:
        try:
            async with chromium_page() as page:
                await play(page, sender, "viewer-bench", "g")
                await wait_for(page, "window.bench.first !== undefined", 15)
                await asyncio.sleep(0.5)
                await page.evaluate("window.bench.record = true")
                await asyncio.sleep(seconds)
                frames = await page.evaluate("window.bench.frames")
        except ChromiumMissing as exc:
            report.note(f"no glass-to-glass figure: {exc}")
            return
        timing = await sender.request("latency")
    samples = glass_samples(frames, timing)
    report.add(
        what="glass to glass (Chromium)",
        viewers=1,
        p50_ms=percentile(samples, 50),
        p99_ms=percentile(samples, 99),
        samples=len(samples),
    )


async def run(args: argparse.Namespace) -> Report:
    report = Report("latency", COLUMNS, plot=PlotSpec("what", ("p50_ms", "p99_ms"), "ms"))
    counts = sorted(args.viewers)
    progress = Progress("latency", 2 + len(counts))
    frames = encode_test_pattern(1280, 720, 30, 4.0, 2_000_000)
    progress.step(f"encoded {len(frames)} frames of 1280x720")
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-") as tmp:
        path = Path(tmp) / "frames.bin"
        save_frames(frames, path)
        for count in counts:
            await _to_socket(report, path, count, args.seconds)
            progress.step(f"capture to socket, {count} viewers")
        await _glass(report, path, args.seconds)
        progress.step("glass to glass")
    for row in report.rows:
        row["what"] = f"{row['what']} x{row['viewers']}"
    report.note("targets: capture to socket p99 < 5 ms at 50 viewers; glass to glass p50 < 100 ms")
    return report


def main(argv: list[str]) -> int:
    parser = scenario_parser("latency", __doc__)
    add_viewers(parser, "1,50")
    add_seconds(parser, 5.0)
    return run_scenario(parser, run, argv)
