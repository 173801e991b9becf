"""Send-side bandwidth estimation: TWCC feedback (or REMB) and loss reports in, a target out.

The target is the smallest of three limits (GCC): the delay-based estimate (the trendline
overuse detector driving AIMD rate control, from transport-wide CC feedback), the loss-based
ceiling (from the loss TWCC reveals, or from RTCP receiver reports without TWCC), and the
receiver's own REMB when it sends one. A peer that negotiated no transport-cc and only sends
REMB gets REMB as its delay-based estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..rtcp.twcc import TransportWideCC
from .acked_bitrate import AckedBitrate
from .aimd import AimdRateControl
from .inter_arrival import InterArrival
from .loss_based import LossBasedControl
from .sent_packets import PacketResult, SentPacketHistory
from .trendline import TrendlineDetector

# Loss from TWCC counts once this many packets were reported over at least this long.
LOSS_SAMPLE_PACKETS = 20
LOSS_SAMPLE_INTERVAL = 0.5
# Receiver reports' loss fraction is used only when no TWCC feedback came for this long;
# after such a gap the delay history is stale too (libwebrtc's stream timeout).
TWCC_ACTIVE_TIMEOUT = 2.0


@dataclass(frozen=True)
class BweStats:
    """A snapshot of the estimator, for telemetry and tests."""

    target_bitrate: int
    delay_based: int
    loss_based: int
    state: str  # "normal" | "overusing" | "underusing"
    loss_fraction: float
    rtt: float | None


class SendSideEstimator:
    """One peer's send-side bandwidth estimate; sans-IO, every input carries ``now`` (s).

    Input: ``on_packet_sent`` (each packet stamped with a transport-wide sequence number, as it
    leaves the pacer), ``on_transport_feedback``, ``on_remb``, ``on_loss_report`` (RTCP RR),
    ``set_max_bitrate``. Output: ``target_bitrate`` and ``stats()``.
    """

    def __init__(self, start_bitrate: int, min_bitrate: int, max_bitrate: int) -> None:
        if not 0 < min_bitrate <= max_bitrate:
            raise ValueError(
                f"bitrate bounds need 0 < min <= max, got {min_bitrate}, {max_bitrate}"
            )
        start = min(max(start_bitrate, min_bitrate), max_bitrate)
        self._min, self._max = min_bitrate, max_bitrate
        self._history = SentPacketHistory()
        self._inter_arrival = InterArrival()
        self._detector = TrendlineDetector()
        self._acked = AckedBitrate()
        self._aimd = AimdRateControl(start, min_bitrate, max_bitrate)
        self._loss = LossBasedControl(start, min_bitrate, max_bitrate)
        self._remb: int | None = None
        self._last_twcc: float | None = None
        self._loss_fraction = 0.0
        self._rtt: float | None = None
        self._window_start: float | None = None
        self._window_packets = 0
        self._window_lost = 0
        self._target = start

    @property
    def target_bitrate(self) -> int:
        """What the encoder and pacer should aim at, bits per second."""
        return self._target

    def on_packet_sent(self, transport_seq: int, size: int, now: float) -> None:
        """A packet left with this transport-wide sequence number and this many bytes."""
        self._history.on_sent(transport_seq, size, now)

    def on_transport_feedback(self, feedback: TransportWideCC, now: float) -> None:
        """A TWCC feedback packet arrived; unknown, repeated or reordered entries are fine."""
        results = self._history.on_feedback(feedback)
        if not results:
            return
        if self._last_twcc is not None and not self._twcc_active(now):
            self._reset_delay_history()
        self._last_twcc = now
        received = sorted(
            (r for r in results if r.arrival is not None),
            key=lambda r: (r.arrival, r.sequence),
        )
        for packet in received:
            self._feed_delay(packet, now)
        if received:
            self._aimd.update(self._detector.state, self._acked.rate(), now)
        self._count_loss(len(results), len(results) - len(received), now)
        self._recompute()

    def on_remb(self, bitrate: int, now: float) -> None:
        """The receiver's REMB estimate: a cap always, the delay-based estimate without TWCC."""
        self._remb = max(bitrate, 0)
        self._recompute()

    def on_loss_report(self, fraction_lost: float, rtt: float | None, now: float) -> None:
        """An RTCP receiver report: its fraction lost (0-1) and the round trip it gives."""
        if rtt is not None and math.isfinite(rtt) and rtt >= 0:
            self._rtt = rtt
            self._aimd.rtt = rtt
        if self._twcc_active(now) or not math.isfinite(fraction_lost):
            self._recompute()
            return  # TWCC sees every loss itself, retransmissions not mistaken for arrivals
        self._loss_fraction = min(max(fraction_lost, 0.0), 1.0)
        self._loss.on_loss(self._loss_fraction, self._limit(), self._rtt, now)
        self._recompute()

    def set_max_bitrate(self, bitrate: int) -> None:
        """A new ceiling (the configured camera bitrate); the minimum follows if above it."""
        self._max = max(bitrate, 1)
        self._min = min(self._min, self._max)
        for control in (self._aimd, self._loss):
            control.max_bitrate, control.min_bitrate = self._max, self._min
            control.bitrate = min(control.bitrate, float(self._max))
        self._recompute()

    def stats(self) -> BweStats:
        """The current target, its parts and what they were computed from."""
        return BweStats(
            target_bitrate=self._target,
            delay_based=int(self._delay_based()),
            loss_based=int(self._loss.bitrate),
            state=self._detector.state.value if self._last_twcc is not None else "normal",
            loss_fraction=self._loss_fraction,
            rtt=self._rtt,
        )

    def _feed_delay(self, packet: PacketResult, now: float) -> None:
        assert packet.arrival is not None
        self._acked.add(packet.arrival, packet.size)
        resets = self._inter_arrival.resets
        delta = self._inter_arrival.add(packet.send_time, packet.arrival, packet.size, now)
        if self._inter_arrival.resets != resets:
            self._detector = TrendlineDetector()  # its points are on the receiver's old clock
        if delta is not None:
            self._detector.update(delta.send_delta, delta.arrival_delta, delta.arrival_time)

    def _reset_delay_history(self) -> None:
        self._inter_arrival.reset()
        self._detector = TrendlineDetector()
        self._acked.reset()

    def _count_loss(self, reported: int, lost: int, now: float) -> None:
        if self._window_start is None:
            self._window_start = now
        self._window_packets += reported
        self._window_lost += lost
        if (
            self._window_packets >= LOSS_SAMPLE_PACKETS
            and now - self._window_start >= LOSS_SAMPLE_INTERVAL
        ):
            self._loss_fraction = self._window_lost / self._window_packets
            self._loss.on_loss(self._loss_fraction, self._limit(), self._rtt, now)
            self._window_start, self._window_packets, self._window_lost = now, 0, 0

    def _twcc_active(self, now: float) -> bool:
        return self._last_twcc is not None and now - self._last_twcc < TWCC_ACTIVE_TIMEOUT

    def _delay_based(self) -> float:
        if self._last_twcc is None and self._remb is not None:
            return min(max(float(self._remb), float(self._min)), float(self._max))
        return self._aimd.bitrate

    def _limit(self) -> float:
        """The target before the loss-based ceiling: delay-based, capped by REMB."""
        limit = self._delay_based()
        return limit if self._remb is None else min(limit, float(self._remb))

    def _recompute(self) -> None:
        target = min(self._limit(), self._loss.bitrate)
        self._target = int(min(max(target, float(self._min)), float(self._max)))
