"""Per-viewer packet pacer: bytes in, bytes out at a pacing rate, never a burst.

A 720p IDR is ~50 packets; sent at once it overflows a shallow bottleneck queue and the
estimator reads the self-inflicted delay as congestion. The pacer releases packets at
``rate * multiplier`` (libwebrtc's pacing factor 2.5: fast enough that the encoder's own rate
never queues, slow enough that a keyframe is spread over a few tens of ms), allowing at most
``burst`` seconds of that rate to leave together after an idle spell.

On average, though, no more than ``rate`` leaves: a token bucket filling at the estimate and
holding ``average_window`` seconds of it. With one encoder for many viewers, a viewer whose
estimate is below the encoder's bitrate gets "keyframes and what fits"; pacing its excess at
2.5 times its estimate would only fill its bottleneck queue. An encoder that follows the
estimate never runs the bucket dry, so for it only the pacing rate counts.

The queue is bounded in time, not packets: a frame that would make the queue take longer
than ``max_queue_delay`` to drain at the estimate (what it drains at when it stays full) is
dropped, and since every later delta frame depends on it, delta frames keep being dropped
until a keyframe arrives (``needs_keyframe`` tells the caller to ask for one). A keyframe is
always accepted: it makes the queued media obsolete, so when the queue is over its budget the
keyframe replaces what is queued.

Retransmissions go before media: a NACKed packet is late already.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

# Below this the pacer would hold a packet for seconds; a viewer that slow gets keyframes only.
MIN_RATE_BPS = 10_000
# Floating-point slack on the token count, in bits.
_TOKEN_SLACK = 1.0


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
        average_window: float = 0.25,
    ) -> None:
        if max_queue_delay <= 0 or burst < 0 or multiplier < 1 or average_window <= 0:
            raise ValueError(
                "pacer needs max_queue_delay > 0, burst >= 0, multiplier >= 1, average_window > 0"
            )
        self._max_queue_delay = max_queue_delay
        self._burst = burst
        self._multiplier = multiplier
        self._average_window = average_window
        self._rate_bps = float(MIN_RATE_BPS)
        self.set_rate(rate_bps)
        self._media: deque[bytes] = deque()
        self._retransmissions: deque[bytes] = deque()
        self._media_bytes = 0
        self._retransmission_bytes = 0
        # The earliest time the next packet may leave at the pacing rate.
        self._next_send: float | None = None
        # The average-rate bucket, in bits, as of _token_time.
        self._tokens = self._rate_bps * average_window
        self._token_time: float | None = None
        self.needs_keyframe = False
        self.dropped_frames = 0
        self.dropped_retransmissions = 0

    @property
    def rate(self) -> float:
        """The estimate being followed, bits per second (the average the pacer sends at most)."""
        return self._rate_bps

    @property
    def pacing_rate(self) -> float:
        """The rate packets leave at, bits per second (the estimate times the multiplier)."""
        return self._rate_bps * self._multiplier

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting, media and retransmissions."""
        return self._media_bytes + self._retransmission_bytes

    @property
    def queue_delay(self) -> float:
        """Seconds the queued bytes take to leave at the estimate."""
        return self.queued_bytes * 8 / self._rate_bps

    def set_rate(self, bitrate_bps: int) -> None:
        """Follow a new estimate; packets then leave at ``bitrate_bps * multiplier``."""
        self._rate_bps = max(float(MIN_RATE_BPS), float(bitrate_bps))

    def enqueue_frame(self, packets: Sequence[bytes], keyframe: bool, now: float) -> bool:
        """Queue one frame's packets; False when the frame was dropped (see the module doc)."""
        size = sum(len(packet) for packet in packets)
        if keyframe:
            if self._over_budget(size):
                self._flush_media()
            self.needs_keyframe = False
        elif self.needs_keyframe or self._over_budget(size):
            self.dropped_frames += 1
            self.needs_keyframe = True
            return False
        self._media.extend(packets)
        self._media_bytes += size
        self._wake(now)
        return True

    def enqueue_retransmission(self, packet: bytes, now: float) -> None:
        """Queue a retransmission ahead of all media; dropped when it would only arrive stale."""
        if self._over_budget(len(packet)):
            self.dropped_retransmissions += 1
            return
        self._retransmissions.append(packet)
        self._retransmission_bytes += len(packet)
        self._wake(now)

    def due(self, now: float) -> list[bytes]:
        """The packets that may leave at ``now``, retransmissions first, in order."""
        self._refill(now)
        out: list[bytes] = []
        while self._next_send is not None and self._next_send <= now and self._tokens > 0:
            packet = self._pop()
            if packet is None:
                break
            out.append(packet)
            bits = len(packet) * 8
            self._tokens -= bits
            # Credit for idle time is capped at `burst`, so no more than that leaves at once.
            start = max(self._next_send, now - self._burst)
            self._next_send = start + bits / self.pacing_rate
        idle = not self._media and not self._retransmissions
        # Idle: remember the drain point only while it still limits the next burst.
        if idle and self._next_send is not None and self._next_send <= now - self._burst:
            self._next_send = None
        return out

    def get_timer(self) -> float | None:
        """When ``due`` has work next; None while nothing is queued."""
        if (not self._media and not self._retransmissions) or self._next_send is None:
            return None
        if self._tokens > 0 or self._token_time is None:
            return self._next_send
        refilled = self._token_time + (_TOKEN_SLACK - self._tokens) / self._rate_bps
        return max(self._next_send, refilled)

    def _over_budget(self, extra_bytes: int) -> bool:
        return (self.queued_bytes + extra_bytes) * 8 / self._rate_bps > self._max_queue_delay

    def _refill(self, now: float) -> None:
        if self._token_time is not None and now > self._token_time:
            capacity = self._rate_bps * self._average_window
            gained = (now - self._token_time) * self._rate_bps
            self._tokens = min(capacity, self._tokens + gained)
        if self._token_time is None or now > self._token_time:
            self._token_time = now

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
