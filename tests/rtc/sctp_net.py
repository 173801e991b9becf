"""A virtual network between two sans-IO endpoints: loss, delay, jitter (so reordering).

Like tests/rtc/pair.py but with time in flight: each datagram is delivered ``delay`` (plus
up to ``jitter``) after it was sent, unless the seeded ``loss`` or the ``drop`` filter eats
it. ``run`` advances virtual time to the next delivery or timer, whichever is first.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Endpoint(Protocol):
    def receive(self, data: bytes, now: float) -> None: ...

    def datagrams_to_send(self) -> list[bytes]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True)
class Sent:
    sender: int
    index: int  # which datagram of this sender overall (0 = first)
    now: float
    data: bytes


class Stalled(AssertionError):
    pass


@dataclass
class Network:
    a: Endpoint
    b: Endpoint
    delay: float = 0.01
    jitter: float = 0.0
    loss: float = 0.0
    seed: int = 1
    drop: Callable[[Sent], bool] | None = None
    now: float = 0.0
    sent: list[Sent] = field(default_factory=list)
    dropped: list[Sent] = field(default_factory=list)
    timers_fired: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._order = 0
        self._counts = [0, 0]

    @property
    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        return (self.a, self.b)

    def collect(self) -> None:
        for sender, endpoint in enumerate(self.endpoints):
            for data in endpoint.datagrams_to_send():
                sent = Sent(sender, self._counts[sender], self.now, data)
                self._counts[sender] += 1
                self.sent.append(sent)
                lost = self.loss and self._random.random() < self.loss
                if lost or (self.drop is not None and self.drop(sent)):
                    self.dropped.append(sent)
                    continue
                at = self.now + self.delay + self._random.random() * self.jitter
                heapq.heappush(self._queue, (at, self._order, 1 - sender, data))
                self._order += 1

    def step(self) -> bool:
        """Deliver or fire the next thing; False if nothing is left."""
        self.collect()
        timers = [(t, i) for i, e in enumerate(self.endpoints) if (t := e.get_timer()) is not None]
        next_timer = min(timers) if timers else None
        if self._queue and (next_timer is None or self._queue[0][0] <= next_timer[0]):
            at, _order, receiver, data = heapq.heappop(self._queue)
            self.now = max(self.now, at)
            self.endpoints[receiver].receive(data, self.now)
        elif next_timer is not None:
            self.now = max(self.now, next_timer[0])
            for index, endpoint in enumerate(self.endpoints):
                timer = endpoint.get_timer()
                if timer is not None and timer <= self.now:
                    self.timers_fired.append((self.now, index))
                    endpoint.handle_timer(self.now)
        else:
            return False
        self.collect()
        return True

    def run(
        self, until: Callable[[], bool], *, max_time: float = 600.0, max_steps: int = 2_000_000
    ) -> None:
        limit = self.now + max_time
        for _ in range(max_steps):
            if until():
                return
            if not self.step():
                raise Stalled(f"nothing left to do at t={self.now}")
            if self.now > limit:
                raise Stalled(f"condition unmet after {max_time} s (t={self.now})")
        raise Stalled(f"condition unmet after {max_steps} steps (t={self.now})")

    def settle(self, duration: float) -> None:
        """Run for ``duration`` of virtual time (or until nothing is left)."""
        end = self.now + duration
        while self.now < end:
            upcoming = [t for e in self.endpoints if (t := e.get_timer()) is not None]
            if self._queue:
                upcoming.append(self._queue[0][0])
            if not upcoming or min(upcoming) > end:
                self.now = end
                return
            self.step()
