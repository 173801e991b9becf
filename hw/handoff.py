"""A bounded hand-off from an encoder's thread to a consumer thread that never blocks either.

picamera2 calls ``Output.outputframe`` on its encoder thread: blocking there stalls the
camera, and an unbounded queue grows without limit behind a slow consumer. When the queue is
full the oldest frame that is not a keyframe is dropped (a decoder recovers at the next IDR,
while a lost IDR costs a whole GOP); only a queue of nothing but keyframes drops its oldest.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    """One encoder output as it came: Annex-B bytes, the encoder's keyframe flag, µs time."""

    data: bytes
    keyframe: bool
    timestamp_us: int | None


class HandOff:
    """Bounded FIFO of ``EncodedChunk``; ``put`` never waits, ``get`` waits with a timeout."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"hand-off capacity must be at least 1, got {capacity}")
        self._capacity = capacity
        self._items: deque[EncodedChunk] = deque()
        self._ready = threading.Condition(threading.Lock())
        self._closed = False
        self.dropped = 0

    def put(self, chunk: EncodedChunk) -> int:
        """Queue a chunk (dropping one if full); how many were dropped by this call."""
        with self._ready:
            if self._closed:
                return 0
            dropped = 0
            if len(self._items) >= self._capacity:
                victim = next((c for c in self._items if not c.keyframe), self._items[0])
                self._items.remove(victim)
                dropped = 1
                self.dropped += 1
            self._items.append(chunk)
            self._ready.notify()
            return dropped

    def get(self, timeout: float) -> EncodedChunk | None:
        """The oldest chunk, waiting up to ``timeout`` s; None on timeout or once closed."""
        with self._ready:
            if not self._items and not self._closed:
                self._ready.wait(timeout)
            if self._closed or not self._items:
                return None
            return self._items.popleft()

    def close(self) -> None:
        """Wake a waiting ``get`` and refuse further chunks."""
        with self._ready:
            self._closed = True
            self._items.clear()
            self._ready.notify_all()

    def reopen(self) -> None:
        with self._ready:
            self._closed = False
            self._items.clear()
            self.dropped = 0
