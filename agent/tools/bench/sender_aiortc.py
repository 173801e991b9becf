"""aiortc as the sender to compare against: one RTCPeerConnection per viewer, each relaying
the same pre-encoded access units (aiortc's sender packs an ``av.Packet`` without encoding),
so the difference from ours is the per-viewer path alone. aiortc is a dev dependency; the
bench imports this module only when asked for the comparison."""

from __future__ import annotations

import asyncio
import contextlib
from fractions import Fraction
from typing import Any

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)

from agent.tools.bench.child import Message
from agent.tools.bench.pattern import ReplaySource
from hw.frame import EncodedFrame

TIME_BASE = Fraction(1, 90000)


class _RelayTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=120)

    async def recv(self) -> Any:
        return await self.queue.get()


class AiortcSender:
    def __init__(self, source: ReplaySource, loop: asyncio.AbstractEventLoop) -> None:
        # aioice skips loopback when it lists host addresses; the bench runs on loopback.
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
        self._loop = loop
        self._tracks: list[_RelayTrack] = []
        self._pcs: dict[tuple[str, str], RTCPeerConnection] = {}
        self._source = source
        source.start(self._from_thread)

    def _from_thread(self, frame: EncodedFrame) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._push, frame)

    def _push(self, frame: EncodedFrame) -> None:
        data = frame.annexb()
        for track in self._tracks:
            packet = av.Packet(data)
            packet.pts = frame.pts_90k
            packet.time_base = TIME_BASE
            if track.queue.full():
                track.queue.get_nowait()  # a stuck viewer loses its oldest frame
            track.queue.put_nowait(packet)

    async def offer(self, client: str, session: str, sdp: str) -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = _RelayTrack()
        pc.addTrack(track)
        # The relayed stream is H.264: a browser lists VP8 first, which aiortc would pick
        # (the preference is read when the offer is applied).
        codecs = RTCRtpSender.getCapabilities("video").codecs
        h264 = [c for c in codecs if c.mimeType == "video/H264"]
        for transceiver in pc.getTransceivers():
            transceiver.setCodecPreferences(h264)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        self._pcs[(client, session)] = pc
        self._tracks.append(track)
        return str(pc.localDescription.sdp)

    async def candidate(self, client: str, session: str, candidate: str | None) -> None:
        pass  # the bench's viewers put every candidate in their offer

    async def close_session(self, client: str, session: str) -> None:
        pc = self._pcs.pop((client, session), None)
        if pc is not None:
            sender = pc.getSenders()[0]
            self._tracks = [t for t in self._tracks if t is not sender.track]
            await pc.close()

    def connected(self) -> int:
        return sum(1 for pc in self._pcs.values() if pc.connectionState == "connected")

    def packets_sent(self) -> int:
        # aiortc keeps its RTCP sender-report counter private.
        return sum(
            int(getattr(sender, "_RTCRtpSender__packet_count", 0))
            for pc in self._pcs.values()
            for sender in pc.getSenders()
        )

    def latency(self) -> Message:
        return {}

    async def close(self) -> None:
        await asyncio.to_thread(self._source.stop)
        pcs: list[Any] = list(self._pcs.values())
        await asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True)
