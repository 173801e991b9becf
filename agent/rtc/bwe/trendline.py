"""Delay-gradient trend and overuse detection (libwebrtc TrendlineEstimator, GCC 5.3-5.4).

Each group delta adds ``arrival_delta - send_delta`` to an accumulated one-way delay
variation, exponentially smoothed; the slope of a least-squares line through the last 20
points is the trend. Scaled by the number of deltas seen (up to 60) and a gain of 4, it is
compared with an adaptive threshold: the threshold follows the trend slowly upwards and
faster downwards, so a flow competing with loss-based TCP is not starved and one on a
stable link stays sensitive.
"""

from __future__ import annotations

from collections import deque
from enum import Enum

WINDOW_SIZE = 20
# libwebrtc waits for the whole window; a start far above the path fills a shallow
# bottleneck queue (and then only loses packets, with no gradient left) before 20 groups
# arrive, so the trend is fitted from half a window on.
MIN_POINTS = 10
SMOOTHING = 0.9
THRESHOLD_GAIN = 4.0
MAX_DELTAS = 60
# libwebrtc: 10 ms. Our cameras send an IDR every 2 s (Chrome's sender only on request),
# paced at 2.5x the estimate: each one raises the bottleneck queue for about its own
# transmission time. Requiring 60 ms of overuse keeps a lone IDR from counting as
# congestion (link_sim: ~740 instead of ~630 kbit/s on a 1 Mbit/s link), while a real
# overuse, which lasts, is still caught within a second.
OVERUSING_TIME_THRESHOLD_MS = 60.0
K_UP = 0.0087
K_DOWN = 0.039
MAX_ADAPT_OFFSET_MS = 15.0
MAX_TIME_DELTA_MS = 100.0
INITIAL_THRESHOLD_MS = 12.5
MIN_THRESHOLD_MS, MAX_THRESHOLD_MS = 6.0, 600.0


class BandwidthUsage(Enum):
    """The detector's verdict on the path."""

    NORMAL = "normal"
    OVERUSING = "overusing"
    UNDERUSING = "underusing"


class TrendlineDetector:
    """Group deltas in, a BandwidthUsage out (``state``); times in seconds."""

    def __init__(self) -> None:
        self.state = BandwidthUsage.NORMAL
        self._points: deque[tuple[float, float]] = deque(maxlen=WINDOW_SIZE)
        self._deltas = 0
        self._accumulated_ms = 0.0
        self._smoothed_ms = 0.0
        self._first_arrival: float | None = None
        self._threshold_ms = INITIAL_THRESHOLD_MS
        self._last_threshold_update: float | None = None
        self._time_over_using_ms = -1.0
        self._overuse_count = 0
        self._previous_trend = 0.0

    @property
    def threshold_ms(self) -> float:
        """The adaptive threshold the modified trend is compared with."""
        return self._threshold_ms

    def update(self, send_delta: float, arrival_delta: float, arrival_time: float) -> None:
        """One group delta (seconds); updates ``state``."""
        delta_ms = (arrival_delta - send_delta) * 1000
        self._deltas = min(self._deltas + 1, 1000)
        self._accumulated_ms += delta_ms
        self._smoothed_ms = SMOOTHING * self._smoothed_ms + (1 - SMOOTHING) * self._accumulated_ms
        if self._first_arrival is None:
            self._first_arrival = arrival_time
        self._points.append(((arrival_time - self._first_arrival) * 1000, self._smoothed_ms))
        trend = self._previous_trend
        if len(self._points) >= MIN_POINTS:
            trend = _slope(self._points, fallback=trend)
        self._detect(trend, send_delta * 1000, arrival_time)

    def _detect(self, trend: float, send_delta_ms: float, now: float) -> None:
        if self._deltas < 2:
            self.state = BandwidthUsage.NORMAL
            return
        modified = min(self._deltas, MAX_DELTAS) * trend * THRESHOLD_GAIN
        if modified > self._threshold_ms:
            if self._time_over_using_ms == -1:
                self._time_over_using_ms = send_delta_ms / 2  # assume half a group over
            else:
                self._time_over_using_ms += send_delta_ms
            self._overuse_count += 1
            if (
                self._time_over_using_ms > OVERUSING_TIME_THRESHOLD_MS
                and self._overuse_count > 1
                and trend >= self._previous_trend
            ):
                self._time_over_using_ms = 0
                self._overuse_count = 0
                self.state = BandwidthUsage.OVERUSING
        elif modified < -self._threshold_ms:
            self._time_over_using_ms = -1
            self._overuse_count = 0
            self.state = BandwidthUsage.UNDERUSING
        else:
            self._time_over_using_ms = -1
            self._overuse_count = 0
            self.state = BandwidthUsage.NORMAL
        self._previous_trend = trend
        self._update_threshold(modified, now)

    def _update_threshold(self, modified: float, now: float) -> None:
        if self._last_threshold_update is None:
            self._last_threshold_update = now
        # A spike far above the threshold (a reroute, a keyframe) must not drag it up.
        if abs(modified) > self._threshold_ms + MAX_ADAPT_OFFSET_MS:
            self._last_threshold_update = now
            return
        k = K_DOWN if abs(modified) < self._threshold_ms else K_UP
        elapsed_ms = min(max((now - self._last_threshold_update) * 1000, 0.0), MAX_TIME_DELTA_MS)
        self._threshold_ms += k * (abs(modified) - self._threshold_ms) * elapsed_ms
        self._threshold_ms = min(max(self._threshold_ms, MIN_THRESHOLD_MS), MAX_THRESHOLD_MS)
        self._last_threshold_update = now


def _slope(points: deque[tuple[float, float]], fallback: float) -> float:
    """Least-squares slope of y on x; ``fallback`` when every x is the same."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    numerator = sum((x - mean_x) * (y - mean_y) for x, y in points)
    denominator = sum((x - mean_x) ** 2 for x, _ in points)
    return fallback if denominator == 0 else numerator / denominator
