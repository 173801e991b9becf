"""A virtual-time link simulator for the bandwidth estimator and pacer.

One sender (an encoder model at the estimator's target, the real Pacer, the real
SendSideEstimator) sends through a bottleneck: a FIFO queue drained at a capacity that may
step over time, a drop-tail limit on the queueing delay (as `tc tbf latency`), random loss
from a seeded RNG, a propagation delay, and optional constant-rate cross traffic sharing
the queue. The receiver answers with real transport-wide CC feedback (serialized and parsed
as on the wire) every `feedback_interval`, and with a receiver report (loss fraction, rtt)
every second. Everything runs on a heap of events; no wall clock is involved.
"""

from __future__ import annotations

import heapq
import itertools
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.rtc.bwe import BweStats, SendSideEstimator
from agent.rtc.pacer import Pacer
from agent.rtc.rtcp import TWCC_LARGE_DELTA, TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA, TransportWideCC

MTU_PAYLOAD = 1200
_ID = struct.Struct("!I")
# The receiver's clock is unrelated to the sender's.
RECEIVER_CLOCK_OFFSET = 1234.5


@dataclass
class Link:
    """The bottleneck: capacity steps [(from time, bits/s)], delay, loss, cross traffic."""

    capacity: list[tuple[float, float]]
    delay: float = 0.04  # one way
    max_queue_delay: float = 0.25
    loss: float = 0.0
    seed: int = 1
    cross_traffic: list[tuple[float, float, float]] = field(default_factory=list)  # from, to, bps

    def capacity_at(self, now: float) -> float:
        rate = self.capacity[0][1]
        for start, bps in self.capacity:
            if start <= now:
                rate = bps
        return rate


@dataclass(frozen=True)
class Sample:
    time: float
    stats: BweStats
    queue_delay: float


class Bottleneck:
    """FIFO drained at the link's capacity; returns each packet's arrival time or None."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.rng = random.Random(link.seed)
        self.free_at = 0.0  # when the link finishes sending what is queued

    def queue_delay(self, now: float) -> float:
        return max(0.0, self.free_at - now)

    def send(self, size: int, now: float) -> float | None:
        if self.queue_delay(now) > self.link.max_queue_delay:
            return None  # tail drop
        start = max(now, self.free_at)
        self.free_at = start + size * 8 / self.link.capacity_at(start)
        if self.rng.random() < self.link.loss:
            return None
        return self.free_at + self.link.delay


class Receiver:
    """Records arrivals and builds TWCC feedback the way a browser does."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}  # unwrapped transport seq -> arrival (receiver clock)
        self.next_to_report: int | None = None
        self.feedback_count = 0

    def on_packet(self, sequence: int, now: float) -> None:
        self.arrivals[sequence] = now + RECEIVER_CLOCK_OFFSET
        if self.next_to_report is None:
            self.next_to_report = sequence

    def feedback(self) -> TransportWideCC | None:
        if self.next_to_report is None:
            return None
        pending = [s for s in self.arrivals if s >= self.next_to_report]
        if not pending:
            return None
        base, last = self.next_to_report, max(pending)
        first_arrival_us = min(self.arrivals[s] for s in pending) * 1e6
        reference = int(first_arrival_us // 64_000)
        clock = reference * 256  # in 250 us units
        statuses, deltas = [], []
        for sequence in range(base, last + 1):
            arrival = self.arrivals.pop(sequence, None)
            if arrival is None:
                statuses.append(TWCC_NOT_RECEIVED)
                continue
            quantized = round(arrival * 1e6 / 250)
            delta = max(-32768, min(32767, quantized - clock))
            clock += delta
            statuses.append(TWCC_SMALL_DELTA if 0 <= delta <= 255 else TWCC_LARGE_DELTA)
            deltas.append(delta)
        self.next_to_report = last + 1
        self.feedback_count += 1
        packet = TransportWideCC(
            1,
            2,
            base & 0xFFFF,
            reference & 0xFFFFFF,
            self.feedback_count & 0xFF,
            tuple(statuses),
            tuple(deltas),
        )
        return TransportWideCC.parse(packet.serialize())  # as it would come off the wire


class CallSim:
    """One sender and receiver over a Link, run in virtual time."""

    def __init__(
        self,
        link: Link,
        *,
        start_bitrate: int,
        min_bitrate: int = 50_000,
        max_bitrate: int = 2_500_000,
        fps: float = 30.0,
        keyframe_interval: float = 2.0,
        feedback_interval: float = 0.1,
        send_feedback: bool = True,
        first_transport_seq: int = 0,
        feedback_copies: int = 1,
        encoder_bitrate: Callable[[], int] | None = None,
    ) -> None:
        self.link = link
        self.estimator = SendSideEstimator(start_bitrate, min_bitrate, max_bitrate)
        self.pacer = Pacer(start_bitrate)
        self.bottleneck = Bottleneck(link)
        self.receiver = Receiver()
        self.fps, self.keyframe_interval = fps, keyframe_interval
        self.feedback_interval, self.send_feedback = feedback_interval, send_feedback
        self.now = 0.0
        self.samples: list[Sample] = []
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._transport_seq = first_transport_seq
        self.feedback_copies = feedback_copies
        self._frame = 0
        self._sent_in_report = 0
        self._lost_in_report = 0
        # The encoder follows this viewer's estimate unless it is shared (BitratePolicy).
        self.encoder_bitrate = encoder_bitrate or (lambda: self.estimator.target_bitrate)
        self._started = False
        self.frames_sent = 0
        self.keyframes_sent = 0

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._events, (when, next(self._order), action))

    def run(self, until: float) -> list[Sample]:
        """Advance to `until`; may be called again to go on (to step several sims together)."""
        if not self._started:
            self._started = True
            self.at(0.0, self._encode_frame)
            self.at(self.feedback_interval, self._feedback_tick)
            self.at(1.0, self._report_tick)
            self.at(0.0, self._sample_tick)
            for start, stop, bps in self.link.cross_traffic:
                self.at(start, lambda stop=stop, bps=bps: self._cross_packet(stop, bps))
        while self._events and self._events[0][0] <= until:
            timer = self.pacer.get_timer()
            if timer is not None and timer <= self._events[0][0]:
                self.now = max(self.now, timer)
                self._send_paced()
                continue
            when, _, action = heapq.heappop(self._events)
            self.now = when
            action()
        return self.samples

    def samples_between(self, start: float, stop: float) -> list[int]:
        return [s.stats.target_bitrate for s in self.samples if start <= s.time <= stop]

    def _encode_frame(self) -> None:
        self.pacer.set_rate(self.estimator.target_bitrate)
        target = self.encoder_bitrate()
        frames_per_gop = round(self.fps * self.keyframe_interval)
        keyframe = self._frame % frames_per_gop == 0
        # A keyframe is 4 delta frames' worth; the GOP as a whole averages the target.
        unit = target / self.fps * frames_per_gop / (frames_per_gop + 3) / 8
        size = int(unit * (4 if keyframe else 1))
        count = max(1, -(-size // MTU_PAYLOAD))
        packets = [_ID.pack(self._frame) + bytes(size // count - _ID.size) for _ in range(count)]
        if self.pacer.enqueue_frame(packets, keyframe, self.now):
            self.frames_sent += 1
            self.keyframes_sent += keyframe
        self._frame += 1
        self.at(self.now + 1 / self.fps, self._encode_frame)

    def _send_paced(self) -> None:
        for packet in self.pacer.due(self.now):
            sequence = self._transport_seq
            self._transport_seq += 1
            self.estimator.on_packet_sent(sequence & 0xFFFF, len(packet), self.now)
            self._sent_in_report += 1
            arrival = self.bottleneck.send(len(packet), self.now)
            if arrival is None:
                self._lost_in_report += 1
            else:
                self.at(arrival, lambda s=sequence: self.receiver.on_packet(s, self.now))

    def _cross_packet(self, stop: float, bps: float) -> None:
        if self.now >= stop:
            return
        self.bottleneck.send(MTU_PAYLOAD, self.now)
        self.at(self.now + MTU_PAYLOAD * 8 / bps, lambda: self._cross_packet(stop, bps))

    def _feedback_tick(self) -> None:
        feedback = self.receiver.feedback() if self.send_feedback else None
        if feedback is not None:
            deliver_at = self.now + self.link.delay
            for copy in range(self.feedback_copies):  # a repeated feedback arrives 1 ms later
                self.at(
                    deliver_at + copy * 0.001,
                    lambda: self.estimator.on_transport_feedback(feedback, self.now),
                )
        self.at(self.now + self.feedback_interval, self._feedback_tick)

    def _report_tick(self) -> None:
        sent, lost = self._sent_in_report, self._lost_in_report
        fraction = lost / sent if sent else 0.0
        rtt = 2 * self.link.delay + self.bottleneck.queue_delay(self.now)
        self._sent_in_report = self._lost_in_report = 0
        self.at(
            self.now + self.link.delay,
            lambda: self.estimator.on_loss_report(fraction, rtt, self.now),
        )
        self.at(self.now + 1.0, self._report_tick)

    def _sample_tick(self) -> None:
        queue = self.bottleneck.queue_delay(self.now)
        self.samples.append(Sample(self.now, self.estimator.stats(), queue))
        self.at(self.now + 0.1, self._sample_tick)


def _figures() -> None:
    """Print the issue-11 scenarios' figures: python -m tests.rtc.link_sim."""
    import statistics

    scenarios = {
        "1 Mbit/s, 40 ms, from 2 Mbit/s": (Link([(0, 1e6)]), 2_000_000, 40.0),
        "1 -> 3 Mbit/s at 30 s": (Link([(0, 1e6), (30, 3e6)]), 2_000_000, 50.05),
        "3 Mbit/s, 3% loss": (Link([(0, 3e6)], loss=0.03, seed=7), 2_000_000, 30.0),
        "2 Mbit/s, 1 Mbit/s cross 10-30 s": (
            Link([(0, 2e6)], cross_traffic=[(10, 30, 1e6)]),
            1_000_000,
            50.0,
        ),
    }
    for name, (link, start, until) in scenarios.items():
        sim = CallSim(link, start_bitrate=start, max_bitrate=2_000_000)
        sim.run(until)
        below = next((f"{s.time:.1f}" for s in sim.samples if s.stats.target_bitrate < 1e6), "-")
        back = next(
            (
                f"{s.time - 30:.1f}"
                for s in sim.samples
                if s.time > 30 and s.stats.target_bitrate >= 1.5e6
            ),
            "-",
        )
        windows = [(5, 10), (10, 30), (30, 50)]
        means = [
            f"{a}-{b} s: {statistics.mean(sim.samples_between(a, b)) / 1e3:.0f}"
            for a, b in windows
            if sim.samples_between(a, b)
        ]
        queue = max(s.queue_delay for s in sim.samples if s.time >= 10) * 1e3
        print(
            f"{name:34s} <1 Mbit/s at {below} s, >=1.5 Mbit/s {back} s after 30 s; "
            f"mean kbit/s {', '.join(means)}; "
            f"end {sim.samples[-1].stats.target_bitrate / 1e3:.0f}; max queue after 10 s "
            f"{queue:.0f} ms"
        )


if __name__ == "__main__":
    _figures()
