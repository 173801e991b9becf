"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions).

RTCP RTPFB fmt 15; ``parse_compound`` returns a ``TransportWideCC`` for these packets.
Chunks are re-encoded the way libwebrtc encodes them, so real feedback round-trips byte for
byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from .header import FMT_TWCC, PT_RTPFB, RtcpPacketBase, build_packet, pack_fields

_TWCC_FIXED = struct.Struct("!IIHHI")
_U16 = struct.Struct("!H")
_I16 = struct.Struct("!h")

TWCC_NOT_RECEIVED = 0
TWCC_SMALL_DELTA = 1
TWCC_LARGE_DELTA = 2

_TWO_BIT_CAPACITY = 7
_ONE_BIT_CAPACITY = 14
_RUN_CAPACITY = 0x1FFF


@dataclass(frozen=True, slots=True)
class TransportWideCC(RtcpPacketBase):
    """Transport-wide CC feedback (RTPFB fmt 15), with chunks expanded per packet.

    ``statuses`` has one TWCC_* value per sequence number from ``base_sequence`` on;
    ``deltas`` has one receive delta (units of 250 us) per received packet, in order.
    ``reference_time`` is the raw 24-bit field (units of 64 ms).
    """

    PACKET_TYPE: ClassVar[int] = PT_RTPFB
    FMT: ClassVar[int | None] = FMT_TWCC

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    reference_time: int
    feedback_count: int
    statuses: tuple[int, ...]
    deltas: tuple[int, ...]

    def arrivals(self) -> tuple[tuple[int, int | None], ...]:
        """(transport sequence number, arrival time in us on the reference clock or None)."""
        out: list[tuple[int, int | None]] = []
        clock = self.reference_time * 64_000
        deltas = iter(self.deltas)
        for index, status in enumerate(self.statuses):
            seq = (self.base_sequence + index) & 0xFFFF
            if status == TWCC_NOT_RECEIVED:
                out.append((seq, None))
            else:
                clock += next(deltas) * 250
                out.append((seq, clock))
        return tuple(out)

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        if len(body) < _TWCC_FIXED.size:
            raise ValueError("RTCP TWCC too short for its fixed fields")
        sender, media, base, count, ref_word = _TWCC_FIXED.unpack_from(body)
        if count == 0:
            raise ValueError("RTCP TWCC reports no packets")
        statuses: list[int] = []
        pos = _TWCC_FIXED.size
        while len(statuses) < count:
            if pos + 2 > len(body):
                raise ValueError("RTCP TWCC ends inside its packet status chunks")
            chunk = _U16.unpack_from(body, pos)[0]
            pos += 2
            if not chunk & 0x8000:
                symbols = [chunk >> 13 & 3] * min(chunk & _RUN_CAPACITY, count - len(statuses))
            elif not chunk & 0x4000:
                symbols = [chunk >> (13 - i) & 1 for i in range(_ONE_BIT_CAPACITY)]
            else:
                symbols = [chunk >> (12 - 2 * i) & 3 for i in range(_TWO_BIT_CAPACITY)]
            statuses.extend(symbols[: count - len(statuses)])
        if 3 in statuses:
            raise ValueError("RTCP TWCC uses the reserved packet status 3")
        deltas: list[int] = []
        for status in filter(None, statuses):
            # The status is also the delta's size in bytes: 1 unsigned, 2 signed.
            if pos + status > len(body):
                raise ValueError("RTCP TWCC ends inside its receive deltas")
            deltas.append(body[pos] if status == 1 else _I16.unpack_from(body, pos)[0])
            pos += status
        # Some senders pad to a word with zeros instead of RTCP padding.
        if len(body) - pos > 3 or any(body[pos:]):
            raise ValueError("RTCP TWCC has bytes after its receive deltas")
        return cls(
            sender, media, base, ref_word >> 8, ref_word & 0xFF, tuple(statuses), tuple(deltas)
        )

    def serialize(self) -> bytes:
        """The TWCC packet bytes, chunks chosen as libwebrtc chooses them."""
        if not 1 <= len(self.statuses) <= 0xFFFF:
            raise ValueError(f"RTCP TWCC needs 1-65535 statuses, got {len(self.statuses)}")
        if not 0 <= self.reference_time <= 0xFFFFFF or not 0 <= self.feedback_count <= 255:
            raise ValueError("RTCP TWCC reference time or feedback count out of range")
        if not set(self.statuses) <= {TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA, TWCC_LARGE_DELTA}:
            raise ValueError("RTCP TWCC status must be 0, 1 or 2")
        received = [status for status in self.statuses if status]
        if len(received) != len(self.deltas):
            raise ValueError("RTCP TWCC needs one delta per received packet")
        deltas = bytearray()
        for status, delta in zip(received, self.deltas, strict=True):
            if status == TWCC_SMALL_DELTA and not 0 <= delta <= 255:
                raise ValueError(f"RTCP TWCC small delta {delta} out of range")
            deltas += bytes((delta,)) if status == TWCC_SMALL_DELTA else pack_fields(_I16, delta)
        body = pack_fields(
            _TWCC_FIXED,
            self.sender_ssrc,
            self.media_ssrc,
            self.base_sequence,
            len(self.statuses),
            self.reference_time << 8 | self.feedback_count,
        )
        body += b"".join(_U16.pack(chunk) for chunk in _encode_chunks(self.statuses))
        return build_packet(FMT_TWCC, PT_RTPFB, body + deltas)


def _encode_chunks(statuses: Sequence[int]) -> list[int]:
    """Status chunks, chosen exactly as libwebrtc's TransportFeedback::LastChunk does."""
    chunks: list[int] = []
    pending: list[int] = []  # statuses not yet in a chunk
    all_same, has_large = True, False
    for status in statuses:
        size = len(pending)
        fits = (
            size < _TWO_BIT_CAPACITY
            or (size < _ONE_BIT_CAPACITY and not has_large and status != TWCC_LARGE_DELTA)
            or (size < _RUN_CAPACITY and all_same and status == pending[0])
        )
        if not fits:
            if all_same:
                chunks.append(pending[0] << 13 | size)
                pending.clear()
            elif size == _ONE_BIT_CAPACITY:
                chunks.append(_one_bit(pending))
                pending.clear()
            else:
                chunks.append(_two_bit(pending[:_TWO_BIT_CAPACITY]))
                del pending[:_TWO_BIT_CAPACITY]
            all_same = all(s == pending[0] for s in pending)
            has_large = TWCC_LARGE_DELTA in pending
        all_same = all_same and (not pending or status == pending[0])
        has_large = has_large or status == TWCC_LARGE_DELTA
        pending.append(status)
    if all_same:
        chunks.append(pending[0] << 13 | len(pending))
    elif len(pending) <= _TWO_BIT_CAPACITY:
        chunks.append(_two_bit(pending))
    else:
        chunks.append(_one_bit(pending))
    return chunks


def _one_bit(symbols: Sequence[int]) -> int:
    return 0x8000 | sum(s << (13 - i) for i, s in enumerate(symbols))


def _two_bit(symbols: Sequence[int]) -> int:
    return 0xC000 | sum(s << (12 - 2 * i) for i, s in enumerate(symbols))
