"""The loss controller (GCC section 6, libwebrtc's classic SendSideBandwidthEstimation).

Below 2% loss the path is not the limit: the loss-based bitrate grows by 8% per second from
the current target. From 2% to 10% it holds: random loss on a wireless link is no reason to
back off, and the delay-based estimate still governs. Above 10% it drops to
``target * (1 - loss / 2)``, at most once per 300 ms plus a round trip, so one report of a
burst does not count twice.
"""

from __future__ import annotations

LOW_LOSS = 0.02
HIGH_LOSS = 0.10
INCREASE_FACTOR = 1.08  # per second
INCREASE_FLOOR_BPS = 1000  # per second, so very low rates still grow
DECREASE_INTERVAL = 0.3
MAX_INCREASE_STEP = 1.0  # seconds of growth one sample may apply


class LossBasedControl:
    """Loss samples in, a ceiling on the target out (``bitrate``)."""

    def __init__(self, start_bitrate: int, min_bitrate: int, max_bitrate: int) -> None:
        self.bitrate = float(start_bitrate)
        self.min_bitrate = min_bitrate
        self.max_bitrate = max_bitrate
        self._last_sample: float | None = None
        self._last_decrease: float | None = None

    def on_loss(self, fraction: float, target: float, rtt: float | None, now: float) -> None:
        """One loss sample (fraction 0-1 of the packets sent since the last one)."""
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = 0.0 if self._last_sample is None else now - self._last_sample
        elapsed = min(max(elapsed, 0.0), MAX_INCREASE_STEP)
        self._last_sample = now
        reference = min(self.bitrate, target)
        if fraction <= LOW_LOSS:
            grown = reference * INCREASE_FACTOR**elapsed + INCREASE_FLOOR_BPS * elapsed
            self.bitrate = max(self.bitrate, grown)
        elif fraction > HIGH_LOSS:
            interval = DECREASE_INTERVAL + (rtt or 0.0)
            if self._last_decrease is None or now - self._last_decrease >= interval:
                self.bitrate = reference * (1 - fraction / 2)
                self._last_decrease = now
        self.bitrate = min(max(self.bitrate, float(self.min_bitrate)), float(self.max_bitrate))
