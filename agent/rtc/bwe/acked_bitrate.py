"""Measured throughput: bytes the receiver acknowledged per second of its own clock.

The receive clock measures what the bottleneck let through, which is what a decrease after
overuse must be based on (GCC: A_hat = beta * R_hat).
"""

from __future__ import annotations

from collections import deque

WINDOW = 0.5
INITIAL_WINDOW = 0.15  # a first figure before a whole window has been seen


class AckedBitrate:
    """Acknowledged packets in (arrival order), bits per second out (``rate``)."""

    def __init__(self) -> None:
        self._packets: deque[tuple[float, int]] = deque()
        self._bytes = 0
        self._first_arrival: float | None = None

    def add(self, arrival: float, size: int) -> None:
        """One acknowledged packet; its arrival on the receiver's clock, in seconds."""
        if self._packets and arrival < self._packets[-1][0] - WINDOW:
            self.reset()  # the receiver's clock went back: start over
        if self._first_arrival is None:
            self._first_arrival = arrival
        self._packets.append((arrival, size))
        self._bytes += size
        newest = max(arrival, self._packets[-1][0])
        while self._packets and self._packets[0][0] <= newest - WINDOW:
            self._bytes -= self._packets.popleft()[1]

    def reset(self) -> None:
        """Forget everything measured."""
        self._packets.clear()
        self._bytes = 0
        self._first_arrival = None

    def rate(self) -> float | None:
        """Bits per second over the last WINDOW of arrivals; None until there is enough."""
        if not self._packets or self._first_arrival is None:
            return None
        span = self._packets[-1][0] - self._first_arrival
        if span < INITIAL_WINDOW:
            return None
        return self._bytes * 8 / min(span, WINDOW)
