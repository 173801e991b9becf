"""The figures behind `edgecam bench network`: issue 11's scenarios, with either sender.

edgecam's sender is the agent's media path (network_rig.network_rig); aiortc's is an
RTCPeerConnection answering the same Chromium offer with a track of the same test pattern,
its encoder driven by the REMB Chromium sends (aiortc has no transport-cc sender and no
pacer). Both run in the agent's namespace behind the same shaped paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice.ice
import av
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.codecs import h264 as aiortc_h264
from aiortc.sdp import candidate_from_sdp

from tests.e2e.network_rig import (
    STREAM,
    Net,
    Rig,
    Watch,
    chromium_viewer,
    network,
    network_rig,
    shape,
    until,
    watched_viewer,
)
from tests.infra.netns import Host, Topology

Figures = dict[str, object]


class PatternTrack(VideoStreamTrack):
    """The agent's test pattern (lavfi testsrc2) as an aiortc track, at its frame rate."""

    def __init__(self) -> None:
        super().__init__()
        graph = f"testsrc2=size={STREAM.width}x{STREAM.height}:rate={int(STREAM.framerate)}"
        self._container = av.open(graph, format="lavfi")
        self._frames = self._container.decode(video=0)
        self._index = 0
        self._start = time.monotonic()

    async def recv(self) -> av.VideoFrame:
        self._index += 1
        due = self._start + self._index / STREAM.framerate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        frame = next(self._frames)
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = self._index * 3000
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


class AiortcSender:
    """aiortc answering each viewer's offer with its own PatternTrack."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.pcs: dict[str, RTCPeerConnection] = {}

    async def answer(self, client: str, offer: str) -> str:
        pc = RTCPeerConnection()
        self.pcs[client] = pc
        await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        pc.addTrack(PatternTrack())
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def candidate(self, client: str, value: str | None) -> None:
        pc = self.pcs[client]
        if value is None:
            await pc.addIceCandidate(None)
            return
        candidate = candidate_from_sdp(value.removeprefix("candidate:"))
        candidate.sdpMLineIndex = 0
        await pc.addIceCandidate(candidate)

    def figures(self, client: str) -> Callable[[], tuple[int | None, int | None]]:
        def read() -> tuple[int | None, int | None]:
            pc = self.pcs.get(client)
            encoder: Any = None
            for sender in pc.getSenders() if pc else []:
                encoder = getattr(sender, "_RTCRtpSender__encoder", None)
            bitrate = getattr(encoder, "target_bitrate", None)
            return bitrate, bitrate

        return read

    async def close(self) -> None:
        for pc in self.pcs.values():
            await pc.close()


@contextlib.asynccontextmanager
async def aiortc_rig(net: Net) -> AsyncIterator[AiortcSender]:
    agent = net.hosts["agent"]
    original = aioice.ice.get_host_addresses
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [agent.address]
    aiortc_h264.DEFAULT_BITRATE = STREAM.bitrate  # the same start as edgecam's encoder
    sender = AiortcSender(agent.address)
    try:
        with net.topo.enter(agent):
            yield sender
            await sender.close()
    finally:
        aioice.ice.get_host_addresses = original


@contextlib.asynccontextmanager
async def viewer(
    sender: str, rig: Rig | AiortcSender, host: Host, client: str
) -> AsyncIterator[Watch]:
    if isinstance(rig, Rig):
        async with watched_viewer(rig, host, client) as watch:
            yield watch
        return
    aiortc = rig

    async def answer(offer: str) -> str:
        return await aiortc.answer(client, offer)

    async def candidate(value: str | None) -> None:
        await aiortc.candidate(client, value)

    async with chromium_viewer(host, answer, candidate) as page:
        watch = Watch(page, aiortc.figures(client))
        watch.start()
        try:
            await until(
                watch, lambda: bool(watch.samples) and watch.samples[-1].frames_decoded > 0, 20
            )
            yield watch
        finally:
            await watch.stop()


@contextlib.asynccontextmanager
async def sender_rig(
    sender: str, net: Net, min_bitrate: int = 300_000
) -> AsyncIterator[Rig | AiortcSender]:
    if sender == "edgecam":
        async with network_rig(net, min_bitrate) as rig:
            yield rig
    else:
        async with aiortc_rig(net) as aiortc:
            yield aiortc


def _encoder(watch: Watch) -> int | None:
    return watch.samples[-1].encoder_bitrate if watch.samples else None


async def bottleneck(sender: str, topo: Topology) -> Figures:
    with network(topo, ["viewer"]) as net:
        async with sender_rig(sender, net) as rig:
            shape(net, "viewer", rate_kbit=1000, delay_ms=40)
            async with viewer(sender, rig, net.hosts["viewer"], "v1") as watch:
                start = watch.now
                below = await until(watch, lambda: (_encoder(watch) or 1 << 30) < 1_000_000, 20)
                settled = below if below is not None else watch.now
                await asyncio.sleep(10)
                end = watch.now
                shape(net, "viewer", delay_ms=40)
                back = await until(watch, lambda: (_encoder(watch) or 0) >= 1_800_000, 30)
                return {
                    "below_1M_after_s": None if below is None else round(below - start, 1),
                    "kbps_received": round(watch.received_kbps(settled, end)),
                    "fps": watch.fps(settled, end),
                    "longest_stall_s": watch.longest_stall(settled, end),
                    "freezes": watch.freezes(settled, end)[0],
                    "frozen_s": watch.freezes(settled, end)[1],
                    "jitter_buffer_ms": round(watch.samples[-1].jitter_buffer_ms or 0),
                    "recovered_after_s": None if back is None else round(back - end, 1),
                }


async def loss(sender: str, topo: Topology) -> Figures:
    with network(topo, ["viewer"]) as net:
        async with sender_rig(sender, net) as rig:
            shape(net, "viewer", delay_ms=40, loss_percent=3.0)
            async with viewer(sender, rig, net.hosts["viewer"], "v1") as watch:
                start = watch.now
                await asyncio.sleep(15)
                end = watch.now
                return {
                    "kbps_received": round(watch.received_kbps(start, end)),
                    "fps": watch.fps(start, end),
                    "longest_stall_s": watch.longest_stall(start, end),
                    "freezes": watch.freezes(start, end)[0],
                    "frozen_s": watch.freezes(start, end)[1],
                    "jitter_buffer_ms": round(watch.samples[-1].jitter_buffer_ms or 0),
                }


async def two_viewers(sender: str, topo: Topology) -> Figures:
    with network(topo, ["fast", "slow"]) as net:
        async with sender_rig(sender, net, min_bitrate=600_000) as rig:
            shape(net, "fast", delay_ms=20)
            shape(net, "slow", rate_kbit=300, delay_ms=40)
            async with (
                viewer(sender, rig, net.hosts["fast"], "fast") as fast_watch,
                viewer(sender, rig, net.hosts["slow"], "slow") as slow_watch,
            ):
                await asyncio.sleep(3)
                start = fast_watch.now
                await asyncio.sleep(12)
                end = fast_watch.now
                return {
                    "fast_kbps": round(fast_watch.received_kbps(start, end)),
                    "fast_fps": fast_watch.fps(start, end),
                    "fast_longest_stall_s": fast_watch.longest_stall(start, end),
                    "fast_freezes": fast_watch.freezes(start, end)[0],
                    "slow_kbps": round(slow_watch.received_kbps(start, end)),
                    "slow_fps": slow_watch.fps(start, end),
                    "slow_longest_stall_s": slow_watch.longest_stall(start, end),
                }


async def run(scenario: str, sender: str) -> Figures:
    """One scenario with one sender in a fresh topology."""
    runner = {"bottleneck": bottleneck, "loss": loss, "two-viewers": two_viewers}[scenario]
    with Topology() as topo:
        return await runner(sender, topo)
