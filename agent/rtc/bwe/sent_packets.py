"""What was sent, by transport-wide sequence number, to match feedback against.

Sequence numbers are 16 bits on the wire; they are unwrapped to a growing integer against the
newest one sent, so feedback that arrives late, repeated or reordered still finds its packet.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from ..rtcp.twcc import TransportWideCC

# About 10 s of video at 1500 packets/s; older feedback is useless to the estimator anyway.
MAX_HISTORY = 16_384
_SEQ_MOD = 1 << 16


@dataclass(frozen=True, slots=True)
class PacketResult:
    """One sent packet as the feedback reports it; ``arrival`` None when it was lost."""

    sequence: int  # unwrapped
    send_time: float
    size: int
    arrival: float | None  # seconds on the receiver's clock


class SentPacketHistory:
    """Sent packets awaiting feedback, bounded to MAX_HISTORY."""

    def __init__(self) -> None:
        self._packets: OrderedDict[int, tuple[float, int]] = OrderedDict()
        self._acked: set[int] = set()
        self._reported_lost: set[int] = set()
        self._newest: int | None = None
        self._reference_time: int | None = None  # unwrapped TWCC reference time, 64 ms units

    def on_sent(self, transport_seq: int, size: int, now: float) -> None:
        """Record one packet as it leaves."""
        sequence = self._unwrap(transport_seq & 0xFFFF)
        self._newest = sequence if self._newest is None else max(self._newest, sequence)
        self._packets[sequence] = (now, size)
        self._packets.move_to_end(sequence)
        while len(self._packets) > MAX_HISTORY:
            old, _ = self._packets.popitem(last=False)
            self._acked.discard(old)
            self._reported_lost.discard(old)

    def on_feedback(self, feedback: TransportWideCC) -> list[PacketResult]:
        """The packets this feedback newly reports, in sequence order; unknown ones skipped.

        Each packet is reported received at most once and lost at most once (feedback may
        repeat), and a packet reported lost may later be reported received (reordering
        across feedback, or a receiver's late feedback).
        """
        offset_us = self._arrival_offset_us(feedback.reference_time)
        results: list[PacketResult] = []
        for wire_seq, arrival_us in feedback.arrivals():
            sequence = self._unwrap(wire_seq)
            sent = self._packets.get(sequence)
            if sent is None or sequence in self._acked:
                continue
            if arrival_us is None:
                if sequence not in self._reported_lost:
                    self._reported_lost.add(sequence)
                    results.append(PacketResult(sequence, sent[0], sent[1], None))
                continue
            self._acked.add(sequence)
            arrival = (arrival_us + offset_us) / 1e6
            results.append(PacketResult(sequence, sent[0], sent[1], arrival))
        return results

    def _unwrap(self, wire_seq: int) -> int:
        if self._newest is None:
            return wire_seq
        delta = (wire_seq - self._newest) % _SEQ_MOD
        if delta >= _SEQ_MOD // 2:
            delta -= _SEQ_MOD
        return self._newest + delta

    def _arrival_offset_us(self, reference_time: int) -> int:
        """Microseconds to add to arrivals() so the 24-bit reference time never wraps back."""
        if self._reference_time is None:
            self._reference_time = reference_time
            return 0
        modulus = 1 << 24
        delta = (reference_time - self._reference_time) % modulus
        if delta >= modulus // 2:
            delta -= modulus
        self._reference_time += delta
        return (self._reference_time - reference_time) * 64_000
