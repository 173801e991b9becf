"""`edgecam bench fanout`: what one more viewer costs the agent, and where it stops keeping up.

One 720p30 2 Mbit/s test stream (pre-encoded, replayed in real time) goes to N viewers over
loopback with full ICE, DTLS and SRTP. The viewers are cheap receivers in other processes
(they unprotect and count frames and lateness, nothing more), so the agent process's own CPU
time is the figure: per viewer-second and per packet (per packet the sender itself counts as
sent, so receivers that fall behind do not inflate it). In the same run: aiortc relaying the
same access units to the same receivers, and the floor loop (SRTP protect + sendto only).
The knee is the first N where the agent uses 90% of a core, or a viewer gets under 95% of
the frames, or a frame arrives 200 ms late (p99), or a viewer cannot connect.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from agent.tools.args import integer
from agent.tools.bench.floor import floor_us_per_packet
from agent.tools.bench.options import (
    add_seconds,
    add_stream,
    add_viewers,
    run_scenario,
    scenario_parser,
)
from agent.tools.bench.pattern import encode_test_pattern, save_frames
from agent.tools.bench.report import PlotSpec, Progress, Report, finite
from agent.tools.bench.viewers import Rig, rig

COLUMNS = [
    "sender",
    "viewers",
    "cpu_%core",
    "per_viewer_%core",
    "us_per_packet",
    "packets_per_s",
    "received_%",
    "frames_min_%",
    "late_p99_ms",
    "failed",
]
KNEE_CPU = 90.0
KNEE_FRAMES = 95.0
KNEE_LATE_MS = 200.0


def aiortc_missing() -> str | None:
    try:
        import aiortc  # noqa: F401
    except ImportError as exc:
        return f"aiortc is not installed ({exc}); it is a dev dependency: pip install -e '.[dev]'"
    return None


async def _idle_rate(rig_: Rig, seconds: float) -> float:
    before = await rig_.usage()
    await asyncio.sleep(seconds)
    after = await rig_.usage()
    return float(after["cpu"] - before["cpu"]) / float(after["now"] - before["now"])


async def _measure(
    rig_: Rig, count: int, seconds: float, idle: float, fps: int
) -> dict[str, float]:
    await rig_.connect(count)
    await asyncio.sleep(0.5)  # past the keyframe burst of the new viewers
    await rig_.reset()
    before = await rig_.usage()
    await asyncio.sleep(seconds)
    after = await rig_.usage()
    reports = await rig_.reports()
    viewers = [v for v in reports if v["connected"]]
    wall = after["now"] - before["now"]
    cpu = after["cpu"] - before["cpu"]
    packets = after["packets_sent"] - before["packets_sent"]
    received = sum(v["packets"] for v in viewers)
    expected = fps * wall
    return {
        "cpu_%core": cpu / wall * 100,
        "per_viewer_%core": (cpu / wall - idle) / count * 100,
        "us_per_packet": (cpu - idle * wall) / max(packets, 1) * 1e6,
        "packets_per_s": packets / wall,
        "received_%": received / max(packets, 1) * 100,
        "frames_min_%": min(v["frames"] for v in viewers) / expected * 100 if viewers else 0.0,
        "late_p99_ms": max(finite(v["late_p99_ms"] for v in viewers), default=0.0),
        "failed": count - len(viewers),
    }


def _knee(report: Report, sender: str) -> str:
    for row in report.rows:
        if row["sender"] != sender:
            continue
        cells = {k: v for k, v in row.items() if isinstance(v, int | float)}
        if (
            cells.get("cpu_%core", 0) >= KNEE_CPU
            or cells.get("frames_min_%", 100) < KNEE_FRAMES
            or cells.get("late_p99_ms", 0) > KNEE_LATE_MS
            or cells.get("failed", 0) > 0
        ):
            return f"{sender}: knee at {row['viewers']} viewers"
    most = max(int(r["viewers"] or 0) for r in report.rows if r["sender"] == sender)
    return f"{sender}: no knee up to {most} viewers"


async def run(args: argparse.Namespace) -> Report:
    report = Report(
        "fanout",
        COLUMNS,
        plot=PlotSpec(
            "viewers", ("cpu_%core",), "sender CPU, % of one core", log_x=True, series="sender"
        ),
    )
    kinds = ["ours"]
    missing = aiortc_missing() if args.aiortc_max > 0 else "--aiortc-max 0"
    if missing is None:
        kinds.append("aiortc")
    else:
        report.note(f"aiortc comparison skipped: {missing}")
    counts = sorted(args.viewers)
    steps = 2 + sum(
        1 + sum(1 for c in counts if k == "ours" or c <= args.aiortc_max) for k in kinds
    )
    progress = Progress("fanout", steps)
    width, height = args.size
    frames = encode_test_pattern(width, height, args.fps, 4.0, args.bitrate)
    progress.step(f"encoded {len(frames)} frames of {width}x{height}@{args.fps}")
    floor_us, _ = floor_us_per_packet(frames, 10)
    progress.step(f"floor loop: {floor_us:.2f} us per packet")
    with tempfile.TemporaryDirectory(prefix="edgecam-bench-") as tmp:
        path = Path(tmp) / "frames.bin"
        save_frames(frames, path)
        for kind in kinds:
            wanted = [c for c in counts if kind == "ours" or c <= args.aiortc_max]
            profile = None if args.profile is None else args.profile.with_suffix(f".{kind}.txt")
            async with rig(kind, path, args.fps, max(wanted), profile=profile) as rig_:
                idle = await _idle_rate(rig_, min(args.seconds, 2.0))
                progress.step(f"{kind}: idle {idle * 100:.2f}% of a core")
                report.add(sender=kind, viewers=0, **{"cpu_%core": idle * 100})
                for count in wanted:
                    row = await _measure(rig_, count, args.seconds, idle, args.fps)
                    report.add(sender=kind, viewers=count, **row)
                    progress.step(f"{kind}, {count} viewers: {row['cpu_%core']:.1f}% of a core")
    report.add(sender="floor", viewers=10, us_per_packet=floor_us)
    for kind in kinds:
        report.note(_knee(report, kind))
    _ratios(report, floor_us)
    return report


def _ratios(report: Report, floor_us: float) -> None:
    for row in report.rows:
        per_packet = row["us_per_packet"]
        if (
            row["sender"] == "ours"
            and isinstance(per_packet, float)
            and row["viewers"] in (10, 100)
        ):
            report.note(
                f"ours at {row['viewers']} viewers: {per_packet / floor_us:.1f}x the floor per "
                "packet (target <= 2x)"
            )


def main(argv: list[str]) -> int:
    parser = scenario_parser("fanout", __doc__)
    add_viewers(parser, "1,10,50,100,200")
    add_seconds(parser, 3.0)
    add_stream(parser)
    parser.add_argument(
        "--fps", type=integer(1, 120), default=30, help="frames per second (default 30)"
    )
    parser.add_argument(
        "--aiortc-max",
        type=integer(0, 1000),
        default=50,
        help="compare with aiortc up to this many viewers; 0: no aiortc (default 50)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="profile each sender with pyinstrument (a dev dependency) into FILE.ours.txt, ...",
    )
    return run_scenario(parser, run, argv)
