"""Delay-based rate control (GCC section 5.5, libwebrtc AimdRateControl).

Overuse: drop to 0.85 of the measured throughput. Normal: grow, by 8% per second while the
link's capacity is unknown, and by about one packet per response time (additive) near the
capacity measured at earlier overuses. Underuse: hold, while the queues drain.
"""

from __future__ import annotations

import math
from enum import Enum

from .trendline import BandwidthUsage

BETA = 0.85
MULTIPLICATIVE_FACTOR = 1.08  # per second
MIN_MULTIPLICATIVE_STEP_BPS = 1000.0
MIN_ADDITIVE_RATE_BPS = 4000.0  # per second
DEFAULT_RTT = 0.2
OVERUSE_ESTIMATOR_DELAY = 0.1  # added to the rtt to give the loop's response time
FRAME_INTERVAL = 1 / 30
PACKET_SIZE_BYTES = 1200
THROUGHPUT_LIMIT_FACTOR, THROUGHPUT_LIMIT_OFFSET_BPS = 1.5, 10_000.0
INITIAL_DECREASE_INTERVAL = 0.2


class _State(Enum):
    HOLD = "hold"
    INCREASE = "increase"
    DECREASE = "decrease"


class LinkCapacity:
    """Running mean and normalized variance of the throughput measured at each overuse (kbps)."""

    ALPHA = 0.05

    def __init__(self) -> None:
        self.estimate_kbps: float | None = None
        self._deviation = 0.4

    def reset(self) -> None:
        """The link changed (throughput far above the estimate): capacity unknown again."""
        self.estimate_kbps = None

    def on_overuse(self, throughput_bps: float) -> None:
        """Add the throughput measured at an overuse."""
        sample = throughput_bps / 1000
        if self.estimate_kbps is None:
            self.estimate_kbps = sample
        else:
            self.estimate_kbps = (1 - self.ALPHA) * self.estimate_kbps + self.ALPHA * sample
        norm = max(self.estimate_kbps, 1.0)
        error = self.estimate_kbps - sample
        self._deviation = (1 - self.ALPHA) * self._deviation + self.ALPHA * error * error / norm
        self._deviation = min(max(self._deviation, 0.4), 2.5)

    def upper_bound_bps(self) -> float:
        """Above this the capacity estimate is stale (three deviations)."""
        if self.estimate_kbps is None:
            return math.inf
        spread = math.sqrt(self._deviation * self.estimate_kbps)
        return (self.estimate_kbps + 3 * spread) * 1000


class AimdRateControl:
    """Detector verdicts and measured throughput in, the delay-based bitrate out (``bitrate``)."""

    def __init__(self, start_bitrate: int, min_bitrate: int, max_bitrate: int) -> None:
        self.bitrate = float(start_bitrate)
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self.rtt = DEFAULT_RTT
        self.link = LinkCapacity()
        self._state = _State.HOLD
        self._last_change: float | None = None

    def update(self, usage: BandwidthUsage, throughput: float | None, now: float) -> None:
        """Apply one detector verdict (after a feedback's packets were all fed to it)."""
        if usage is BandwidthUsage.OVERUSING and not self._time_to_reduce(throughput, now):
            return
        if usage is BandwidthUsage.OVERUSING and throughput is None:
            # Overuse before any throughput is measured: halve, as libwebrtc does.
            self._set(self.bitrate / 2, now)
            return
        self._transition(usage, now)
        measured = self.bitrate if throughput is None else throughput
        if self._state is _State.INCREASE:
            self._increase(measured, now)
        elif self._state is _State.DECREASE:
            self._decrease(measured, now)

    def _time_to_reduce(self, throughput: float | None, now: float) -> bool:
        if self._last_change is None:
            return True
        if throughput is None:
            return now - self._last_change >= INITIAL_DECREASE_INTERVAL
        interval = min(max(self.rtt, 0.01), 0.2)
        return now - self._last_change >= interval or throughput < self.bitrate / 2

    def _transition(self, usage: BandwidthUsage, now: float) -> None:
        if usage is BandwidthUsage.OVERUSING:
            self._state = _State.DECREASE
        elif usage is BandwidthUsage.UNDERUSING:
            self._state = _State.HOLD
        elif self._state is _State.HOLD:
            self._last_change = now  # growth is counted from when the hold ended
            self._state = _State.INCREASE

    def _increase(self, throughput: float, now: float) -> None:
        if throughput > self.link.upper_bound_bps():
            self.link.reset()
        limit = THROUGHPUT_LIMIT_FACTOR * throughput + THROUGHPUT_LIMIT_OFFSET_BPS
        elapsed = 0.0 if self._last_change is None else min(max(now - self._last_change, 0), 1)
        if self.bitrate < limit:
            if self.link.estimate_kbps is not None:
                step = self._additive_rate() * elapsed
            else:
                growth = self.bitrate * (MULTIPLICATIVE_FACTOR**elapsed - 1)
                step = max(growth, MIN_MULTIPLICATIVE_STEP_BPS)
            self._set(min(self.bitrate + step, limit), now)
        else:
            self._last_change = now

    def _decrease(self, throughput: float, now: float) -> None:
        decreased = BETA * throughput
        if decreased > self.bitrate and self.link.estimate_kbps is not None:
            decreased = BETA * self.link.estimate_kbps * 1000
        self.link.on_overuse(throughput)
        self._state = _State.HOLD
        self._set(min(decreased, self.bitrate), now)

    def _additive_rate(self) -> float:
        """About one packet per response time: how fast to probe near the known capacity."""
        frame_bits = self.bitrate * FRAME_INTERVAL
        packets_per_frame = max(1.0, math.ceil(frame_bits / (8 * PACKET_SIZE_BYTES)))
        # libwebrtc's default response time (its doubling is an experiment, off by default):
        # doubled, climbing back from 1 to 2 Mbit/s after a capacity step took > 20 s.
        response_time = self.rtt + OVERUSE_ESTIMATOR_DELAY
        return max(MIN_ADDITIVE_RATE_BPS, frame_bits / packets_per_frame / response_time)

    def _set(self, bitrate: float, now: float) -> None:
        self.bitrate = min(max(bitrate, float(self.min_bitrate)), float(self.max_bitrate))
        self._last_change = now
