"""Soak (issue 12): aiortc viewers join and leave, others abandon mid-ICE and mid-DTLS;
the agent's fds, threads and RSS must come back to where they were.

`make test` runs a short one (100 cycles, 20 abandoned). The issue's full soak, with its
figures printed:

    bash tests/tools/isolated.sh .venv/bin/python -m tests.e2e.test_soak \
        --cycles 1000 --abandoned 200

It drives the agent's media path (camera, fan-out, SessionManager: tests/e2e/stack.py)
without MQTT, which has its own tests; the viewers run in a process of their own
(tests/e2e/viewer_pool.py), so the samples are the agent's alone. The ICE and DTLS
bounds are shortened to `ABANDON_BOUND` so abandoned sessions end quickly: the bounds
themselves are tested in tests/test_sessions.py; this is about what a session leaves behind.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent.net import driver
from tests.e2e.hostile import open_fds, rss_bytes, thread_count
from tests.e2e.stack import Stack, running_stack
from tests.e2e.viewer_pool import ViewerPool

ABANDON_BOUND = 1.0
ABANDON_BATCH = 8  # abandoned sessions alive at once (under max_viewers, one per client)
RSS_TOLERANCE = 5 * 1024 * 1024
# The allocator reaches its high-water mark within the first ~50 sessions.
WARMUP_CYCLES = 60


@dataclass
class Sample:
    rss: int
    fds: int
    threads: int

    @staticmethod
    def take() -> Sample:
        gc.collect()
        return Sample(rss_bytes(), open_fds(), thread_count())

    def __str__(self) -> str:
        return f"rss {self.rss / 2**20:.1f} MB, fds {self.fds}, threads {self.threads}"


@dataclass
class SoakResult:
    baseline: Sample
    after: Sample
    peak: Sample
    samples: list[Sample] = field(default_factory=list)

    def report(self) -> str:
        rss = self.after.rss - self.baseline.rss
        return (
            f"baseline: {self.baseline}\npeak:     {self.peak}\nafter:    {self.after}\n"
            f"delta:    rss {rss / 2**20:+.1f} MB, fds {self.after.fds - self.baseline.fds:+d},"
            f" threads {self.after.threads - self.baseline.threads:+d}"
        )


_ids = itertools.count()


async def join_and_leave(stack: Stack, pool: ViewerPool, viewer_hangs_up: bool) -> None:
    """A viewer that connects, gets a frame and leaves (hanging up, or closed by RPC)."""
    client, session = f"viewer-{next(_ids)}", "s"
    viewer, offer = await pool.offer()
    try:
        await pool.accept(viewer, await stack.manager.offer(client, session, offer))
        await stack.wait_state(client, session, "connected")
        await pool.wait_frames(viewer, 1)
        if not viewer_hangs_up:
            await stack.manager.close(client, session)
    finally:
        await pool.close_viewer(viewer)
    await stack.wait_state(client, session, "closed")
    stack.forget(client)


async def abandon(stack: Stack, pool: ViewerPool, in_dtls: bool) -> None:
    """A viewer that stops mid-ICE (never applies the answer) or mid-DTLS (never handshakes)."""
    client, session = f"viewer-{next(_ids)}", "s"
    viewer, offer = await pool.offer(stall_dtls=in_dtls)
    try:
        answer = await stack.manager.offer(client, session, offer)
        if in_dtls:
            await pool.accept(viewer, answer)
        await stack.wait_state(client, session, "failed", timeout=ABANDON_BOUND * 4 + 10)
    finally:
        await pool.close_viewer(viewer)
    stack.forget(client)


async def soak(
    cycles: int, abandoned: int, progress: bool = False, warmup: int = WARMUP_CYCLES
) -> SoakResult:
    pool = await ViewerPool.start()
    try:
        return await _soak(pool, cycles, abandoned, progress, warmup)
    finally:
        await pool.close()


async def _soak(
    pool: ViewerPool, cycles: int, abandoned: int, progress: bool, warmup: int
) -> SoakResult:
    async with running_stack(max_viewers=16) as stack:
        for index in range(warmup):
            await join_and_leave(stack, pool, viewer_hangs_up=index % 2 == 0)
        # One batch at full concurrency too: RSS first climbs to its high-water mark there.
        warmup_batch = [abandon(stack, pool, in_dtls=i % 2 == 1) for i in range(ABANDON_BATCH)]
        await asyncio.gather(*warmup_batch, join_and_leave(stack, pool, True))
        baseline = Sample.take()
        samples = [baseline]
        batches = [
            [
                abandon(stack, pool, in_dtls=i % 2 == 1)
                for i in range(start, min(start + ABANDON_BATCH, abandoned))
            ]
            for start in range(0, abandoned, ABANDON_BATCH)
        ]
        every = max(1, cycles // max(1, len(batches)))
        for index in range(cycles):
            await join_and_leave(stack, pool, viewer_hangs_up=index % 2 == 0)
            if index % every == 0 and batches:
                # Abandoned sessions run alongside the next cycles, not after them.
                await asyncio.gather(*batches.pop(), join_and_leave(stack, pool, True))
            if index % 50 == 0:
                samples.append(Sample.take())
                if progress:
                    print(f"cycle {index}: {samples[-1]}", file=sys.stderr)
        for batch in batches:
            await asyncio.gather(*batch)
        assert stack.manager.count == 0
        after = Sample.take()  # with the camera still running, as at the baseline
    samples.append(after)
    peak = Sample(
        max(s.rss for s in samples), max(s.fds for s in samples), max(s.threads for s in samples)
    )
    return SoakResult(baseline, after, peak, samples)


def check(result: SoakResult, rss_tolerance: int = RSS_TOLERANCE) -> None:
    assert result.after.fds <= result.baseline.fds, result.report()
    assert result.after.threads <= result.baseline.threads, result.report()
    assert abs(result.after.rss - result.baseline.rss) <= rss_tolerance, result.report()


def _shorten_bounds(setattr_: Any) -> None:
    setattr_(driver, "ICE_CONNECT_TIMEOUT", ABANDON_BOUND)
    setattr_(driver, "DTLS_HANDSHAKE_TIMEOUT", ABANDON_BOUND)


@pytest.mark.timeout(600)
def test_join_leave_and_abandoned_sessions_leave_nothing_behind() -> None:
    # In an interpreter of its own: inside the suite's process the baseline would be the
    # memory of the thousand tests before it, which the allocator returns when it pleases.
    # The aiortc viewers run in a third process (tests/e2e/viewer_pool.py), so the RSS
    # sampled is the agent's alone, and the issue's ±5 MB bound holds here too.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.e2e.test_soak",
            "--cycles",
            "100",
            "--abandoned",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=Path(__file__).resolve().parents[2],
    )
    print(done.stdout)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "delta:" in done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--abandoned", type=int, default=200)
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP_CYCLES,
        help="join/leave cycles before the baseline: the allocator's high-water mark",
    )
    parser.add_argument(
        "--rss-tolerance-mb", type=float, default=RSS_TOLERANCE / 2**20, help="allowed RSS change"
    )
    args = parser.parse_args()
    _shorten_bounds(setattr)
    result = asyncio.run(soak(args.cycles, args.abandoned, progress=True, warmup=args.warmup))
    print(f"{args.cycles} join/leave cycles, {args.abandoned} abandoned (half mid-DTLS)")
    print(result.report())
    check(result, int(args.rss_tolerance_mb * 2**20))


if __name__ == "__main__":
    main()
