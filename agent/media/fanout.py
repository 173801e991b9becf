"""One camera stream to N viewers: packetize once, keyframe gating, GOP cache.

Every access unit is split into RTP payloads exactly once; each viewer's sink then only stamps
its own header and protects with its own SRTP context. A viewer joins on a keyframe: the
cached group of pictures (the last IDR and the frames since) is replayed to it at once, so it
needn't wait for the encoder's next IDR; with no cache it waits for one, which is requested
(coalesced across viewers and rate-limited, since every IDR costs bitrate for everyone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.rtc.h264 import NalType, Sps, packetize
from hw.frame import EncodedFrame

logger = logging.getLogger(__name__)

# RTP payload budget: 1200 bytes keeps a packet with SRTP/UDP/IP (and TURN) overhead under
# common tunnel MTUs, the same figure browsers use.
MAX_PAYLOAD = 1200
# A GOP cache larger than this is abandoned until the next IDR (a long GOP at high bitrate
# would otherwise pin megabytes on a small device and burst them at a joining viewer).
GOP_CACHE_LIMIT_BYTES = 4 * 1024 * 1024
# A joining viewer replayed more than this many cached frames also asks for a fresh IDR, so
# it catches up with live quickly.
STALE_GOP_FRAMES = 15


class VideoSink(Protocol):
    """Where one viewer's packets go (the peer driver)."""

    def send_frame(self, payloads: Sequence[bytes], pts_90k: int, now: float) -> None: ...


@dataclass(slots=True)
class _CachedFrame:
    frame: EncodedFrame
    payloads: list[bytes]


@dataclass(slots=True)
class FanOutStats:
    frames_in: int = 0
    keyframes_in: int = 0
    keyframe_requests_sent: int = 0
    keyframe_requests_coalesced: int = 0
    sink_errors: int = 0


class FanOut:
    """Distributes access units to sinks. Runs on the event loop; ``now`` in loop seconds."""

    def __init__(
        self,
        request_keyframe: Callable[[], None],
        *,
        min_keyframe_interval: float = 1.0,
        max_payload: int = MAX_PAYLOAD,
    ) -> None:
        self._request_keyframe = request_keyframe
        self._min_keyframe_interval = min_keyframe_interval
        self._max_payload = max_payload
        self._active: list[VideoSink] = []
        self._waiting: list[VideoSink] = []
        self._gop: list[_CachedFrame] = []
        self._gop_bytes = 0
        self._last_request: float | None = None
        self._request_pending = False
        self.stats = FanOutStats()
        # The stream's SPS, from the latest keyframe: negotiation answers with its profile.
        self.sps: Sps | None = None
        self.stream_ready = asyncio.Event()

    @property
    def sink_count(self) -> int:
        return len(self._active) + len(self._waiting)

    def add(self, sink: VideoSink, now: float) -> None:
        """A viewer is ready for media: start it on a keyframe."""
        if sink in self._active or sink in self._waiting:
            return
        if not self._gop:
            self._waiting.append(sink)
            self.request_keyframe(now)
            return
        for cached in self._gop:
            if not self._deliver(sink, cached.payloads, cached.frame.pts_90k, now):
                return
        self._active.append(sink)
        if len(self._gop) > STALE_GOP_FRAMES:
            self.request_keyframe(now)

    def remove(self, sink: VideoSink) -> None:
        if sink in self._active:
            self._active.remove(sink)
        if sink in self._waiting:
            self._waiting.remove(sink)

    def new_stream(self) -> None:
        """The camera restarted with other settings: forget the old stream's SPS and GOP.

        Viewers stay; the new source's first frame is an IDR with the new SPS.
        """
        self.sps = None
        self.stream_ready.clear()
        self._gop = []
        self._gop_bytes = 0

    def cached_access_units(self) -> list[bytes]:
        """The cached GOP as Annex-B access units, IDR first (empty before a keyframe).

        Joined here, on demand: only the snapshot decoder wants Annex-B bytes.
        """
        return [cached.frame.annexb() for cached in self._gop]

    def request_keyframe(self, now: float) -> None:
        """Ask the camera for an IDR, at most once per ``min_keyframe_interval``.

        Requests inside the interval are remembered and sent when it has passed (on the next
        frame), so a burst of PLIs from many viewers costs the stream one IDR.
        """
        last = self._last_request
        if last is not None and now - last < self._min_keyframe_interval:
            if self._request_pending:
                self.stats.keyframe_requests_coalesced += 1
            self._request_pending = True
            return
        self._request_pending = False
        self._last_request = now
        self.stats.keyframe_requests_sent += 1
        try:
            self._request_keyframe()
        except Exception:
            logger.exception("fanout: the camera refused a keyframe request")

    def push(self, frame: EncodedFrame, now: float) -> None:
        """One access unit from the camera: packetize its NAL units once, send to every sink.

        The frame arrives split (hw splits Annex-B once); its ``keyframe`` flag is trusted,
        so what the source calls a keyframe is one here too.
        """
        stats = self.stats
        stats.frames_in += 1
        try:
            payloads = packetize(frame.nal_units, self._max_payload)
        except ValueError as exc:
            logger.warning("fanout: dropped an access unit the packetizer refused: %s", exc)
            return
        if not payloads:
            return
        if frame.keyframe:
            stats.keyframes_in += 1
            self._note_sps(frame.nal_units)
            self._request_pending = False
            self._gop = []
            self._gop_bytes = 0
            if self._waiting:
                self._active.extend(self._waiting)
                self._waiting.clear()
        elif (
            self._request_pending
            and self._last_request is not None
            and now - self._last_request >= self._min_keyframe_interval
        ):
            self.request_keyframe(now)
        self._cache(frame, payloads)
        for sink in list(self._active):
            self._deliver(sink, payloads, frame.pts_90k, now)

    def _note_sps(self, nal_units: Sequence[bytes]) -> None:
        for nal in nal_units:
            if nal and nal[0] & 0x1F == NalType.SPS:
                try:
                    self.sps = Sps.parse(nal)
                except ValueError as exc:
                    logger.warning("fanout: keyframe with an unreadable SPS: %s", exc)
                    return
                self.stream_ready.set()
                return

    def _cache(self, frame: EncodedFrame, payloads: list[bytes]) -> None:
        if not frame.keyframe and not self._gop:
            return  # no GOP start to build on
        size = frame.size
        if self._gop_bytes + size > GOP_CACHE_LIMIT_BYTES:
            self._gop = []
            self._gop_bytes = 0
            return
        self._gop.append(_CachedFrame(frame, payloads))
        self._gop_bytes += size

    def _deliver(self, sink: VideoSink, payloads: list[bytes], pts_90k: int, now: float) -> bool:
        # A broken sink loses its place; it never stops the frame reaching the others.
        try:
            sink.send_frame(payloads, pts_90k, now)
        except Exception:
            self.stats.sink_errors += 1
            logger.exception("fanout: a viewer's sink failed; removing it")
            self.remove(sink)
            return False
        return True
