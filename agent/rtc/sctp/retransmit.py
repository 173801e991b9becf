"""Chunks in flight: SACK processing, cwnd/ssthresh/rwnd, T3-rtx, fast retransmit and the
FORWARD TSN ack point (RFC 9260 6.2-7.2, RFC 3758 3.5)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.rtc.sctp.data_chunks import DATA_HEADER_SIZE, Data, ForwardTsn, Sack
from agent.rtc.sctp.message import OutboundMessage
from agent.rtc.sctp.rto import RtoEstimator
from agent.rtc.sctp.tsn import tsn_add, tsn_gt

FAST_RETRANSMIT_MISSES = 3


@dataclass(slots=True)
class InFlight:
    chunk: Data
    message: OutboundMessage
    sent_at: float
    transmissions: int = 1
    counted: bool = True  # in flight_size (sent, not acked, not marked, not abandoned)
    acked: bool = False  # by a gap block
    marked: bool = False  # waiting to be retransmitted
    misses: int = 0
    fast_retransmitted: bool = False
    abandoned: bool = False


def _chunk_size(chunk: Data) -> int:
    return DATA_HEADER_SIZE + len(chunk.user_data) + (-len(chunk.user_data) % 4)


class RetransmitState:
    """Outstanding DATA and the congestion state of the one path."""

    def __init__(self, initial_tsn: int, mtu: int) -> None:
        self.mtu = mtu
        self.rto = RtoEstimator()
        self.in_flight: dict[int, InFlight] = {}  # TSN order: inserted as sent
        self.cumulative_ack = tsn_add(initial_tsn, -1)
        self.advanced_ack = self.cumulative_ack
        self.cwnd = min(4 * mtu, max(2 * mtu, 4380))
        self.ssthresh = 1 << 30
        self.peer_rwnd = 1 << 30
        self.flight_size = 0
        self.outstanding_bytes = 0
        self.partial_bytes_acked = 0
        self.fast_recovery_exit: int | None = None
        self.t3_deadline: float | None = None
        self.errors = 0  # consecutive T3 expiries without progress
        self.retransmissions_sent = 0
        self._fast_pending = False
        self._forward_due = False
        self._marked = 0  # entries with marked set: skip the scan when there are none

    def record_sent(self, entry: InFlight, now: float) -> None:
        self.in_flight[entry.chunk.tsn] = entry
        size = len(entry.chunk.user_data)
        self.flight_size += size
        self.outstanding_bytes += size
        self.peer_rwnd = max(0, self.peer_rwnd - size)
        if self.t3_deadline is None:
            self.t3_deadline = now + self.rto.rto

    def may_send_new(self, probe: bool) -> bool:
        if self.flight_size >= self.cwnd:
            return False
        # With the peer's window shut, one chunk may probe it once nothing is in flight.
        return self.peer_rwnd > 0 or (probe and self.flight_size == 0)

    def retransmissions(self, space: int, now: float) -> list[Data]:
        fast = self._fast_pending
        self._fast_pending = False
        chunks: list[Data] = []
        if not self._marked:
            return chunks
        for entry in self.in_flight.values():
            if not entry.marked:
                continue
            expires = entry.message.expires_at
            if expires is not None and now >= expires:
                self._abandon(entry.message)
                continue
            size = _chunk_size(entry.chunk)
            if size > space or (not fast and self.flight_size >= self.cwnd):
                break
            self._unmark(entry)
            entry.counted = True
            entry.transmissions += 1
            entry.sent_at = now
            self.flight_size += len(entry.chunk.user_data)
            self.retransmissions_sent += 1
            chunks.append(entry.chunk)
            space -= size
        if chunks and self.t3_deadline is None:
            self.t3_deadline = now + self.rto.rto
        self._advance_ack_point()
        return chunks

    def on_sack(self, sack: Sack, now: float, last_sent: int) -> float | None:
        if tsn_gt(self.cumulative_ack, sack.cumulative_tsn):
            return None  # an old SACK overtaken by a newer one
        flight_before = self.flight_size
        advanced = tsn_gt(sack.cumulative_tsn, self.cumulative_ack)
        acked, rtt, highest_new = self._apply_acks(sack, now)
        if advanced:
            self.errors = 0
        self._count_misses(highest_new)
        self._grow_cwnd(acked, advanced, flight_before)
        if self.fast_recovery_exit is not None and not tsn_gt(
            self.fast_recovery_exit, self.cumulative_ack
        ):
            self.fast_recovery_exit = None
        self.peer_rwnd = max(0, sack.a_rwnd - self.flight_size)
        self._advance_ack_point()
        if not self.in_flight:
            self.t3_deadline = None
        elif advanced:
            self.t3_deadline = now + self.rto.rto
        if rtt is not None:
            self.rto.sample(rtt)
        return rtt

    def _apply_acks(self, sack: Sack, now: float) -> tuple[int, float | None, int | None]:
        acked = 0
        rtt: float | None = None
        highest_new: int | None = None
        cumulative = sack.cumulative_tsn
        while self.in_flight:
            tsn = next(iter(self.in_flight))
            if tsn_gt(tsn, cumulative):
                break
            entry = self.in_flight.pop(tsn)
            self.outstanding_bytes -= len(entry.chunk.user_data)
            self._unmark(entry)
            if not entry.acked and not entry.abandoned:
                acked += len(entry.chunk.user_data)
                highest_new = tsn
                if entry.transmissions == 1:
                    rtt = now - entry.sent_at
            self._uncount(entry)
        self.cumulative_ack = cumulative
        if tsn_gt(cumulative, self.advanced_ack):
            self.advanced_ack = cumulative
        # Gap blocks and in-flight TSNs are both ascending: one merge pass, linear in both.
        blocks = [(tsn_add(cumulative, s), tsn_add(cumulative, e)) for s, e in sack.gaps]
        index = 0
        for tsn, entry in self.in_flight.items():
            while index < len(blocks) and tsn_gt(tsn, blocks[index][1]):
                index += 1
            if index == len(blocks):
                break
            if tsn_gt(blocks[index][0], tsn) or entry.acked:
                continue
            entry.acked = True
            if not entry.abandoned:
                acked += len(entry.chunk.user_data)
                highest_new = tsn
                if entry.transmissions == 1:
                    rtt = now - entry.sent_at
            self._unmark(entry)
            self._uncount(entry)
        return acked, rtt, highest_new

    def _count_misses(self, highest_new: int | None) -> None:
        if highest_new is None:
            return
        for tsn, entry in self.in_flight.items():
            if not tsn_gt(highest_new, tsn):
                break
            if entry.acked or entry.abandoned or entry.marked or entry.fast_retransmitted:
                continue
            entry.misses += 1
            if entry.misses >= FAST_RETRANSMIT_MISSES:
                entry.fast_retransmitted = True
                self._mark(entry)
                self._fast_pending = True
                if self.fast_recovery_exit is None:
                    self.ssthresh = max(self.cwnd // 2, 4 * self.mtu)
                    self.cwnd = self.ssthresh
                    self.partial_bytes_acked = 0
                    self.fast_recovery_exit = next(reversed(self.in_flight))

    def _grow_cwnd(self, acked: int, advanced: bool, flight_before: int) -> None:
        if not advanced or self.fast_recovery_exit is not None:
            return
        full = flight_before + self.mtu >= self.cwnd
        if self.cwnd <= self.ssthresh:
            if full:
                self.cwnd += min(acked, self.mtu)
            return
        self.partial_bytes_acked += acked
        if self.partial_bytes_acked >= self.cwnd and full:
            self.partial_bytes_acked -= self.cwnd
            self.cwnd += self.mtu
        if self.flight_size == 0:
            self.partial_bytes_acked = 0

    def on_t3_expired(self, now: float) -> None:
        """RFC 9260 6.3.3: back off, collapse cwnd, retransmit everything outstanding."""
        self.errors += 1
        self.rto.backoff()
        self.ssthresh = max(self.cwnd // 2, 4 * self.mtu)
        self.cwnd = self.mtu
        self.partial_bytes_acked = 0
        self.fast_recovery_exit = None
        for entry in self.in_flight.values():
            if not entry.acked and not entry.abandoned:
                self._mark(entry)
        self.t3_deadline = now + self.rto.rto if self.in_flight else None
        self._expire(now)

    def _expire(self, now: float) -> None:
        for entry in self.in_flight.values():
            expires = entry.message.expires_at
            if not entry.abandoned and expires is not None and now >= expires:
                self._abandon(entry.message)
        self._advance_ack_point()

    def _mark(self, entry: InFlight) -> None:
        limit = entry.message.max_retransmits
        if limit is not None and entry.transmissions > limit:
            self._abandon(entry.message)
            return
        if not entry.marked:
            entry.marked = True
            self._marked += 1
        self._uncount(entry)

    def _unmark(self, entry: InFlight) -> None:
        if entry.marked:
            entry.marked = False
            self._marked -= 1

    def _abandon(self, message: OutboundMessage) -> None:
        message.abandoned = True
        for tsn in message.tsns:
            entry = self.in_flight.get(tsn)
            if entry is not None and not entry.abandoned:
                entry.abandoned = True
                self._unmark(entry)
                self._uncount(entry)

    def _uncount(self, entry: InFlight) -> None:
        if entry.counted:
            entry.counted = False
            self.flight_size -= len(entry.chunk.user_data)

    def _advance_ack_point(self) -> None:
        """RFC 3758 3.5 C1: move past abandoned chunks that follow the cumulative ack."""
        for tsn, entry in self.in_flight.items():
            if not tsn_gt(tsn, self.advanced_ack):
                continue
            if tsn != tsn_add(self.advanced_ack, 1) or not entry.abandoned:
                break
            self.advanced_ack = tsn
        # Until the peer's SACK shows the new point, every SACK earns another FORWARD TSN.
        self._forward_due = tsn_gt(self.advanced_ack, self.cumulative_ack)

    def forward_tsn(self) -> ForwardTsn | None:
        """A FORWARD TSN chunk when abandoned chunks moved the ack point; once per call site."""
        if not self._forward_due or not tsn_gt(self.advanced_ack, self.cumulative_ack):
            return None
        self._forward_due = False
        streams: dict[int, int] = {}
        for tsn, entry in self.in_flight.items():
            if tsn_gt(tsn, self.advanced_ack):
                break
            if entry.chunk.unordered:
                continue
            streams[entry.chunk.stream_id] = entry.chunk.ssn
        return ForwardTsn(self.advanced_ack, tuple(sorted(streams.items())))

    def resend_forward_tsn(self) -> None:
        """T3 fired while the peer still lags the ack point: say it again."""
        self._forward_due = tsn_gt(self.advanced_ack, self.cumulative_ack)
