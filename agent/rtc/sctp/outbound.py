"""The sending side: queue, fragmentation, TSNs, SACK processing, congestion control,
retransmission (T3 and fast) and partial reliability (RFC 9260 6-7, RFC 3758).

Messages wait in per-stream queues (served round-robin, one whole message at a time: without
I-DATA the fragments of a message need consecutive TSNs). A fragment gets its TSN, and a
message its SSN, only when first sent, so a message abandoned before that leaves no hole.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from agent.rtc.sctp.data_chunks import DATA_HEADER_SIZE, Data, ForwardTsn, Sack
from agent.rtc.sctp.message import OutboundMessage
from agent.rtc.sctp.retransmit import InFlight, RetransmitState
from agent.rtc.sctp.tsn import ssn_add, tsn_add, tsn_gt


class SendBufferFull(ValueError):
    """The caller tried to queue more than the send buffer holds: wait for BufferedAmountLow."""


class ProtocolViolation(ValueError):
    """The peer acknowledged something impossible (a TSN never sent)."""


@dataclass(slots=True)
class _Stream:
    queue: deque[OutboundMessage] = field(default_factory=deque)
    next_ssn: int = 0
    buffered: int = 0
    low_threshold: int = 0


class Outbound:
    """Everything we send as DATA, until the peer has acknowledged or we abandoned it."""

    def __init__(self, initial_tsn: int, mtu: int, send_buffer: int) -> None:
        self.next_tsn = initial_tsn
        self.send_buffer = send_buffer
        self.forward_tsn_enabled = False
        self.rtx = RetransmitState(initial_tsn, mtu)
        self._mtu = mtu
        self._streams: dict[int, _Stream] = {}
        self._ready: deque[int] = deque()  # streams with queued messages, round-robin
        self._current: OutboundMessage | None = None
        self._buffered_total = 0
        self._low: list[int] = []

    # --- the caller's side ---------------------------------------------------------------

    def enqueue(self, message: OutboundMessage) -> None:
        size = len(message.data)
        if self._buffered_total + self.rtx.outstanding_bytes + size > self.send_buffer:
            raise SendBufferFull(
                f"send buffer full ({self._buffered_total} bytes queued, limit "
                f"{self.send_buffer}): wait for BufferedAmountLow"
            )
        stream = self._streams.setdefault(message.stream_id, _Stream())
        if not stream.queue:
            self._ready.append(message.stream_id)
        stream.queue.append(message)
        stream.buffered += size
        self._buffered_total += size

    def buffered_amount(self, stream_id: int) -> int:
        stream = self._streams.get(stream_id)
        return stream.buffered if stream else 0

    @property
    def buffered_total(self) -> int:
        return self._buffered_total

    def set_low_threshold(self, stream_id: int, threshold: int) -> None:
        self._streams.setdefault(stream_id, _Stream()).low_threshold = threshold

    def has_unsent(self, stream_ids: set[int] | None = None) -> bool:
        if self._current is not None and (
            stream_ids is None or self._current.stream_id in stream_ids
        ):
            return True
        return any(
            s.queue for sid, s in self._streams.items() if stream_ids is None or sid in stream_ids
        )

    def reset_ssns(self, stream_ids: tuple[int, ...]) -> None:
        for stream_id in stream_ids:
            self._streams.setdefault(stream_id, _Stream()).next_ssn = 0

    def take_low_events(self) -> list[int]:
        low, self._low = self._low, []
        return low

    @property
    def idle(self) -> bool:
        return not self.has_unsent() and not self.rtx.in_flight

    # --- the wire side --------------------------------------------------------------------

    def chunks_for_packet(self, space: int, now: float, peer_rwnd_probe: bool) -> list[Data]:
        """DATA chunks for one packet with ``space`` bytes left: retransmissions, then new."""
        chunks = self.rtx.retransmissions(space, now)
        space -= sum(DATA_HEADER_SIZE + len(c.user_data) + (-len(c.user_data) % 4) for c in chunks)
        while space > DATA_HEADER_SIZE and self.rtx.may_send_new(peer_rwnd_probe):
            chunk = self._next_fragment((space - DATA_HEADER_SIZE) // 4 * 4, now)
            if chunk is None:
                break
            chunks.append(chunk)
            space -= DATA_HEADER_SIZE + len(chunk.user_data) + (-len(chunk.user_data) % 4)
        return chunks

    def on_sack(self, sack: Sack, now: float) -> float | None:
        """Apply a SACK; returns an RTT sample if it gave one. ProtocolViolation if absurd."""
        last_sent = tsn_add(self.next_tsn, -1)
        if tsn_gt(sack.cumulative_tsn, last_sent):
            raise ProtocolViolation("SACK acknowledges a TSN never sent")
        return self.rtx.on_sack(sack, now, last_sent)

    def on_t3_expired(self, now: float) -> None:
        self.rtx.on_t3_expired(now)

    def forward_tsn(self) -> ForwardTsn | None:
        return self.rtx.forward_tsn() if self.forward_tsn_enabled else None

    # --- internals ------------------------------------------------------------------------

    def _next_fragment(self, room: int, now: float) -> Data | None:
        message = self._current
        if message is not None and message.abandoned:
            # Partial reliability gave up on it mid-way: its other fragments never go out.
            self._unbuffer(message.stream_id, len(message.data) - message.offset)
            message = self._current = None
        message = message or self._start_next_message(now)
        if message is None:
            return None
        remaining = len(message.data) - message.offset
        # A small tail of room is not worth a fragment header of its own: use a new packet.
        if room < remaining and room < 256:
            return None
        size = min(room, remaining)
        begin = message.offset == 0
        piece = message.data[message.offset : message.offset + size]
        message.offset += size
        end = message.offset == len(message.data)
        chunk = Data(
            tsn=self.next_tsn,
            stream_id=message.stream_id,
            ssn=message.ssn,
            ppid=message.ppid,
            user_data=piece,
            begin=begin,
            end=end,
            unordered=not message.ordered,
        )
        message.tsns.append(self.next_tsn)
        self.next_tsn = tsn_add(self.next_tsn, 1)
        self._unbuffer(message.stream_id, size)
        if end:
            self._current = None
        self.rtx.record_sent(InFlight(chunk, message, now), now)
        return chunk

    def _start_next_message(self, now: float) -> OutboundMessage | None:
        while self._ready:
            stream_id = self._ready.popleft()
            stream = self._streams[stream_id]
            message = stream.queue.popleft()
            if stream.queue:
                self._ready.append(stream_id)
            if (
                self.forward_tsn_enabled
                and message.expires_at is not None
                and now >= message.expires_at
            ):
                self._unbuffer(stream_id, len(message.data))  # expired before it was sent
                continue
            if message.ordered:
                message.ssn = stream.next_ssn
                stream.next_ssn = ssn_add(stream.next_ssn, 1)
            self._current = message
            return message
        return None

    def _unbuffer(self, stream_id: int, size: int) -> None:
        stream = self._streams[stream_id]
        before = stream.buffered
        stream.buffered -= size
        self._buffered_total -= size
        if before > stream.low_threshold >= stream.buffered:
            self._low.append(stream_id)
