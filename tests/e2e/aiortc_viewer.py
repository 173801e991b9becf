"""aiortc as an independent WebRTC viewer (test-only: the product never imports aiortc)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aioice.ice
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


def loopback_only_host_addresses(monkeypatch: Any) -> None:
    """aioice (inside aiortc) skips 127.0.0.1; the tests run with only loopback."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


class AiortcViewer:
    """Offers recvonly video, plays the answer, counts decoded frames."""

    def __init__(self, *, datachannel: bool = False, video: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if video:
            self.pc.addTransceiver("video", direction="recvonly")
        self.channel = self.pc.createDataChannel("control") if datachannel else None
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.codec: str | None = None
        self.last_frame_at: float | None = None
        self._longest_gap = 0.0  # seconds between two decoded frames, since reset_gap()
        self._frame_event = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track: Any) -> None:
        self._tasks.append(asyncio.ensure_future(self._consume(track)))

    async def _consume(self, track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = asyncio.get_running_loop().time()
                if self.last_frame_at is not None:
                    self._longest_gap = max(self._longest_gap, now - self.last_frame_at)
                self.last_frame_at = now
                self.frames += 1
                self.sizes.add((frame.width, frame.height))
                self._frame_event.set()

    def reset_gap(self) -> None:
        """Measure the longest gap between frames from now on."""
        self._longest_gap = 0.0

    def gap_now(self) -> float:
        """The longest gap so far, counting the one still open (no frame since the last)."""
        if self.last_frame_at is None:
            return float("inf")
        return max(self._longest_gap, asyncio.get_running_loop().time() - self.last_frame_at)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def accept(self, answer: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        # What aiortc negotiated from our answer (the codecs it will decode with).
        transceivers = self.pc.getTransceivers()
        self.codec = transceivers[0]._codecs[0].mimeType if transceivers else None

    async def wait_frames(self, count: int, timeout: float = 30) -> None:
        async def enough() -> None:
            while self.frames < count:
                self._frame_event.clear()
                await self._frame_event.wait()

        await asyncio.wait_for(enough(), timeout)

    def kill_socket(self) -> None:
        """Stop reading without saying goodbye: close the viewer's UDP sockets."""
        transport = self.pc.getTransceivers()[0].receiver.transport.transport
        for protocol in transport._connection._protocols:
            protocol.transport.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()
