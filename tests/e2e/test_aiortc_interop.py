"""aiortc, an independent WebRTC implementation, plays the agent's stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import aioice.ice
import pytest

from agent.net.sessions import UnknownSessionError
from agent.rtc.dtls import SrtpProfile
from tests.e2e.aiortc_viewer import AiortcViewer
from tests.e2e.stack import Stack, running_stack


@pytest.mark.parametrize("setup", ["active", "passive"])
@pytest.mark.parametrize("profile", [SrtpProfile.AEAD_AES_128_GCM, SrtpProfile.AES128_CM_SHA1_80])
async def test_aiortc_decodes_60_frames(setup: str, profile: SrtpProfile) -> None:
    async with running_stack(dtls_setup=setup, srtp_profiles=[profile]) as stack:
        viewer = AiortcViewer()
        try:
            answer = await stack.manager.offer("viewer-1", "s1", await viewer.offer())
            assert f"a=setup:{setup}" in answer
            await viewer.accept(answer)
            await stack.wait_state("viewer-1", "s1", "connected")
            await viewer.wait_frames(60)
            assert viewer.sizes == {(320, 240)}
            assert viewer.codec == "video/H264"
            peer_stats = stack.manager.stats()[0][2]
            assert getattr(peer_stats, "frames_sent", 0) >= 60
        finally:
            await viewer.close()


class CountingSink:
    """A fan-out sink that only counts, to know how many frames every viewer was given."""

    def __init__(self) -> None:
        self.frames = 0
        self.event = asyncio.Event()

    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None:
        self.frames += 1
        self.event.set()

    async def wait(self, count: int, timeout: float = 30) -> None:
        async def enough() -> None:
            while self.frames < count:
                self.event.clear()
                await self.event.wait()

        await asyncio.wait_for(enough(), timeout)


def _frames_sent(stack: Stack) -> dict[str, int]:
    return {client: stats.frames_sent for client, _, stats in stack.manager.stats()}


async def test_ten_viewers_and_a_dead_one_does_not_slow_the_others() -> None:
    async with running_stack() as stack:
        viewers = [AiortcViewer() for _ in range(10)]
        try:
            for index, viewer in enumerate(viewers):
                answer = await stack.manager.offer(f"viewer-{index}", "s", await viewer.offer())
                await viewer.accept(answer)
            await asyncio.gather(*(v.wait_frames(10, timeout=60) for v in viewers))

            dead, alive = viewers[0], viewers[1:]
            dead.kill_socket()
            counter = CountingSink()
            stack.fanout.add(counter, 0.0)  # replays the cached GOP into the counter first
            counted_before = counter.frames
            sent_before = _frames_sent(stack)
            decoded_before = [v.frames for v in alive]

            await counter.wait(counted_before + 90)
            sent_after = _frames_sent(stack)
            camera_frames = counter.frames - counted_before
            # Every live viewer was handed every frame the camera made meanwhile...
            for client in (f"viewer-{i}" for i in range(1, 10)):
                assert sent_after[client] - sent_before[client] == camera_frames
            # ...and decoded them (a few may still be in flight or in the jitter buffer).
            await asyncio.gather(
                *(
                    v.wait_frames(n + camera_frames - 10)
                    for v, n in zip(alive, decoded_before, strict=False)
                )
            )
            assert stack.fanout.stats.sink_errors == 0
        finally:
            await asyncio.gather(*(v.close() for v in viewers))


async def test_a_vanished_viewer_is_dropped_when_consent_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RFC 7675 consent checks every 5 s; shortened so expiry takes about a second here.
    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.1)
    async with running_stack() as stack:
        viewer = AiortcViewer()
        try:
            answer = await stack.manager.offer("viewer-1", "s1", await viewer.offer())
            await viewer.accept(answer)
            await viewer.wait_frames(5)
            viewer.kill_socket()
            await stack.wait_state("viewer-1", "s1", "failed")
            failed = [s for s in stack.states if s[2] == "failed"]
            assert failed == [("viewer-1", "s1", "failed", "ice connection lost (no consent)")]
            assert stack.manager.count == 0 and stack.fanout.sink_count == 0
        finally:
            await viewer.close()


async def test_two_offers_racing_for_one_session_id_leave_one_working_session() -> None:
    async with running_stack() as stack:
        first, second = AiortcViewer(), AiortcViewer()
        try:
            offers = [await first.offer(), await second.offer()]
            results = await asyncio.gather(
                *(stack.manager.offer("viewer-1", "s", sdp) for sdp in offers),
                return_exceptions=True,
            )
            answers = [r for r in results if isinstance(r, str)]
            assert answers, results
            # The loser is told its session went away (-32003), never a bare cancellation.
            assert all(isinstance(r, str | UnknownSessionError) for r in results), results
            assert stack.manager.count == 1
            # The session that survived is the one whose answer is played.
            winner = second if isinstance(results[1], str) else first
            await winner.accept(answers[-1])
            await stack.wait_state("viewer-1", "s", "connected")
            await winner.wait_frames(10)
            assert stack.manager.count == 1
        finally:
            await first.close()
            await second.close()
