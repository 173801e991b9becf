"""Drive two sans-IO endpoints against each other in virtual time.

`Pair(a, b)` moves every datagram one endpoint emits to the other (unless `drop` says
otherwise), and when both are quiet advances `now` to the earliest `get_timer()` deadline
and calls `handle_timer(now)` there. Nothing sleeps: a 30 s handshake timeout takes
microseconds. Everything that happened is logged (`delivered`, `dropped`, `timers_fired`)
so tests can assert exact times.

Endpoints are anything with `receive(data, now)`, `datagrams_to_send()`, `get_timer()`,
`handle_timer(now)`: a DtlsTransport, or a whole peer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Endpoint(Protocol):
    def receive(self, data: bytes, now: float) -> None: ...

    def datagrams_to_send(self) -> list[bytes]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@dataclass(frozen=True)
class Datagram:
    """One datagram on the virtual wire."""

    sender: int  # 0: endpoint a, 1: endpoint b
    batch: int  # which non-empty datagrams_to_send() result of the sender (0 = first)
    index: int  # which datagram of the sender overall (0 = first)
    now: float  # when it was sent
    data: bytes


DropFilter = Callable[[Datagram], bool]


class PairStalled(AssertionError):
    """The endpoints stopped (no datagrams, no timers) or ran past the time limit."""


class Pair:
    """Two endpoints wired back to back, with a virtual clock.

    `on_advance(now)` is called with the initial `now` and after every change of it, for
    a test that must keep another clock in step (libfaketime).
    """

    def __init__(
        self,
        a: Endpoint,
        b: Endpoint,
        *,
        drop: DropFilter | None = None,
        now: float = 0.0,
        on_advance: Callable[[float], None] | None = None,
    ) -> None:
        self.endpoints = (a, b)
        self.now = now
        self.delivered: list[Datagram] = []
        self.dropped: list[Datagram] = []
        self.timers_fired: list[tuple[float, int]] = []  # (now, endpoint index)
        self._drop = drop
        self._on_advance = on_advance
        self._batches = [0, 0]
        self._indexes = [0, 0]
        if on_advance is not None:
            on_advance(now)

    def pump(self, max_rounds: int = 10_000) -> None:
        """Exchange datagrams at the current time until neither endpoint has any."""
        for _ in range(max_rounds):
            moved = False
            for sender in (0, 1):
                batch = self.endpoints[sender].datagrams_to_send()
                if not batch:
                    continue
                moved = True
                receiver = self.endpoints[1 - sender]
                for data in batch:
                    datagram = Datagram(
                        sender, self._batches[sender], self._indexes[sender], self.now, data
                    )
                    self._indexes[sender] += 1
                    if self._drop is not None and self._drop(datagram):
                        self.dropped.append(datagram)
                    else:
                        self.delivered.append(datagram)
                        receiver.receive(data, self.now)
                self._batches[sender] += 1
            if not moved:
                return
        raise PairStalled(f"endpoints still talking after {max_rounds} rounds at t={self.now}")

    def next_timer(self) -> float | None:
        timers = [t for t in (e.get_timer() for e in self.endpoints) if t is not None]
        return min(timers) if timers else None

    def advance(self) -> bool:
        """Move `now` to the earliest timer and fire every due one; False if there is none."""
        deadline = self.next_timer()
        if deadline is None:
            return False
        if deadline > self.now:
            self.now = deadline
            if self._on_advance is not None:
                self._on_advance(self.now)
        for index, endpoint in enumerate(self.endpoints):
            timer = endpoint.get_timer()
            if timer is not None and timer <= self.now:
                self.timers_fired.append((self.now, index))
                endpoint.handle_timer(self.now)
        return True

    def run(
        self,
        until: Callable[[], bool] | None = None,
        *,
        max_time: float = 300.0,
        max_steps: int = 100_000,
    ) -> None:
        """Pump and advance until `until()` holds, or (without `until`) no timer is left.

        Raises PairStalled when `until` can no longer become true: no timers left, more
        than `max_time` virtual seconds, or `max_steps` timer firings.
        """
        limit = self.now + max_time
        for _ in range(max_steps):
            self.pump()
            if until is not None and until():
                return
            if not self.advance():
                if until is None:
                    return
                raise PairStalled(f"nothing left to do at t={self.now} and condition unmet")
            if self.now > limit:
                raise PairStalled(f"condition unmet after {max_time} s of virtual time")
        raise PairStalled(f"condition unmet after {max_steps} steps (t={self.now})")
