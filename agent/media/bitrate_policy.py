"""One encoder, many viewers: which bitrate the shared encoder should run at.

The encoder follows the weakest active viewer whose estimate is at or above ``floor``: one
viewer on a bad link must not lower everyone, so a viewer below the floor is reported in
``below_floor`` and served "keyframes and what fits" (its pacer drops delta frames). When
every viewer is below the floor, nobody else is hurt by following them, so the encoder
follows the strongest of them.

Changes are smoothed and rate-limited: an encoder reconfigured on every estimate wobbles
its quality and (on some encoders) emits a keyframe each time. Decreases apply at once (a
congested path needs it now); increases move a ``smoothing`` fraction of the way up. Never
above ``max_bitrate`` (the configured camera bitrate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Changes smaller than this fraction of the current bitrate are not worth an encoder change.
MIN_RELATIVE_CHANGE = 0.05


@dataclass(frozen=True)
class PolicyDecision:
    """A new encoder bitrate, and the viewers left to their pacers' dropping."""

    encoder_bitrate: int
    below_floor: frozenset[str]


class BitratePolicy:
    """Per-viewer estimates in (``update``), encoder bitrate decisions out; time is ``now``."""

    def __init__(
        self, max_bitrate: int, floor: int, min_interval: float = 1.0, smoothing: float = 0.5
    ) -> None:
        if not 0 < floor <= max_bitrate:
            raise ValueError(f"policy needs 0 < floor <= max_bitrate, got {floor}, {max_bitrate}")
        if not 0 < smoothing <= 1 or min_interval < 0:
            raise ValueError("policy needs 0 < smoothing <= 1 and min_interval >= 0")
        self.max_bitrate = max_bitrate
        self.floor = floor
        self.min_interval = min_interval
        self.smoothing = smoothing
        self._bitrate: int | None = None
        self._below_floor: frozenset[str] = frozenset()
        self._last_change: float | None = None
        self._estimates: dict[str, int] = {}

    @property
    def encoder_bitrate(self) -> int | None:
        """The bitrate last decided; None before the first decision."""
        return self._bitrate

    def set_max_bitrate(self, bitrate: int) -> None:
        """A new camera bitrate; the floor follows it down if above it."""
        self.max_bitrate = max(bitrate, 1)
        self.floor = min(self.floor, self.max_bitrate)

    def update(self, estimates: Mapping[str, int], now: float) -> PolicyDecision | None:
        """The viewers' current estimates (bits/s by viewer id); a decision, or None for no change.

        With no viewers there is nothing to follow and the encoder keeps its bitrate.
        """
        self._estimates = dict(estimates)
        if not estimates:
            return None
        below = frozenset(v for v, bitrate in estimates.items() if bitrate < self.floor)
        above = [bitrate for bitrate in estimates.values() if bitrate >= self.floor]
        wanted = min(above) if above else max(estimates.values())
        wanted = min(max(wanted, 1), self.max_bitrate)
        if self._last_change is not None and now - self._last_change < self.min_interval:
            return None
        new = self._smoothed(wanted)
        if new == self._bitrate and below == self._below_floor:
            return None
        self._bitrate, self._below_floor, self._last_change = new, below, now
        return PolicyDecision(new, below)

    def _smoothed(self, wanted: int) -> int:
        current = self._bitrate
        if current is None or wanted <= current:
            return wanted
        small = MIN_RELATIVE_CHANGE * current
        if wanted - current < small and wanted < self.max_bitrate:
            return current  # a small step is not worth a change, unless it is the last to the cap
        step = current + round((wanted - current) * self.smoothing)
        # Close enough: finish the move rather than creep towards it in tiny steps.
        return wanted if wanted - step < small else step

    def describe(self) -> dict[str, object]:
        """The policy's state for session.list and telemetry (JSON-ready)."""
        return {
            "encoder_bitrate": self._bitrate,
            "max_bitrate": self.max_bitrate,
            "floor": self.floor,
            "min_interval": self.min_interval,
            "viewers": dict(sorted(self._estimates.items())),
            "below_floor": sorted(self._below_floor),
        }
