"""Per-viewer packet pacer: bytes in, bytes out at a pacing rate, never a burst.

A 720p IDR is ~50 packets; sent at once it overflows a shallow bottleneck queue and the
estimator reads the self-inflicted delay as congestion. The pacer releases packets at
``rate * multiplier`` (libwebrtc's pacing factor 2.5: fast enough that the encoder's own rate
never queues, slow enough that a keyframe is spread over a few tens of ms), allowing at most
``burst`` seconds of that rate to leave together after an idle spell.

The queue is bounded in time, not packets: a frame that would wait longer than
``max_queue_delay`` at the pacing rate is dropped, and since every later delta frame depends
on it, delta frames keep being dropped until a keyframe arrives (``needs_keyframe`` tells the
caller to ask for one). A keyframe is always accepted: it makes the queued media obsolete, so
when the queue is over its budget the keyframe replaces what is queued.

Retransmissions go before media: a NACKed packet is late already.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

# Below this the pacer would hold a packet for seconds; a viewer that slow gets keyframes only.
MIN_PACING_RATE_BPS = 10_000


class Pacer:
    """Paces one viewer's packets; sans-IO: time comes in as ``now`` (seconds).

    Input: ``set_rate``, ``enqueue_frame``, ``enqueue_retransmission``.
    Output: ``due(now)`` (packets that may leave now, in order) and ``get_timer()``.
    """

    def __init__(
        self,
        rate_bps: int,
        *,
        max_queue_delay: float = 0.5,
        burst: float = 0.005,
        multiplier: float = 2.5,
    ) -> None:
        if max_queue_delay <= 0 or burst < 0 or multiplier <= 0:
            raise ValueError("pacer needs max_queue_delay > 0, burst >= 0 and multiplier > 0")
        self._max_queue_delay = max_queue_delay
        self._burst = burst
        self._multiplier = multiplier
        self._pacing_bps = float(MIN_PACING_RATE_BPS)
        self.set_rate(rate_bps)
        self._media: deque[bytes] = deque()
        self._retransmissions: deque[bytes] = deque()
        self._media_bytes = 0
        self._retransmission_bytes = 0
        # The earliest time the next packet may leave (a leaky bucket's drain point).
        self._next_send: float | None = None
        self.needs_keyframe = False
        self.dropped_frames = 0
        self.dropped_retransmissions = 0

    @property
    def pacing_rate(self) -> float:
        """The rate packets leave at, bits per second (the estimate times the multiplier)."""
        return self._pacing_bps

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting, media and retransmissions."""
        return self._media_bytes + self._retransmission_bytes

    @property
    def queue_delay(self) -> float:
        """Seconds the queued bytes take to leave at the pacing rate."""
        return self.queued_bytes * 8 / self._pacing_bps

    def set_rate(self, bitrate_bps: int) -> None:
        """Follow a new estimate; packets then leave at ``bitrate_bps * multiplier``."""
        self._pacing_bps = max(float(MIN_PACING_RATE_BPS), bitrate_bps * self._multiplier)

    def enqueue_frame(self, packets: Sequence[bytes], keyframe: bool, now: float) -> bool:
        """Queue one frame's packets; False when the frame was dropped (see the module doc)."""
        size = sum(len(packet) for packet in packets)
        if keyframe:
            if (self.queued_bytes + size) * 8 / self._pacing_bps > self._max_queue_delay:
                self._flush_media()
            self.needs_keyframe = False
        elif self.needs_keyframe or (
            (self.queued_bytes + size) * 8 / self._pacing_bps > self._max_queue_delay
        ):
            self.dropped_frames += 1
            self.needs_keyframe = True
            return False
        self._media.extend(packets)
        self._media_bytes += size
        self._wake(now)
        return True

    def enqueue_retransmission(self, packet: bytes, now: float) -> None:
        """Queue a retransmission ahead of all media; dropped when it would only arrive stale."""
        if (self.queued_bytes + len(packet)) * 8 / self._pacing_bps > self._max_queue_delay:
            self.dropped_retransmissions += 1
            return
        self._retransmissions.append(packet)
        self._retransmission_bytes += len(packet)
        self._wake(now)

    def due(self, now: float) -> list[bytes]:
        """The packets that may leave at ``now``, retransmissions first, in order."""
        out: list[bytes] = []
        while self._next_send is not None and self._next_send <= now:
            packet = self._pop()
            if packet is None:
                break
            out.append(packet)
            # Credit for idle time is capped at `burst`, so no more than that leaves at once.
            start = max(self._next_send, now - self._burst)
            self._next_send = start + len(packet) * 8 / self._pacing_bps
        idle = not self._media and not self._retransmissions
        # Idle: remember the drain point only while it still limits the next burst.
        if idle and self._next_send is not None and self._next_send <= now - self._burst:
            self._next_send = None
        return out

    def get_timer(self) -> float | None:
        """When ``due`` has work next; None while nothing is queued."""
        if not self._media and not self._retransmissions:
            return None
        return self._next_send

    def _wake(self, now: float) -> None:
        if self._next_send is None:
            self._next_send = now

    def _pop(self) -> bytes | None:
        if self._retransmissions:
            packet = self._retransmissions.popleft()
            self._retransmission_bytes -= len(packet)
            return packet
        if self._media:
            packet = self._media.popleft()
            self._media_bytes -= len(packet)
            return packet
        return None

    def _flush_media(self) -> None:
        if self._media:
            self.dropped_frames += 1  # at least one frame, possibly a part already sent
        self._media.clear()
        self._media_bytes = 0
