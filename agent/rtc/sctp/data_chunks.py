"""DATA, SACK (RFC 9260 3.3.1, 3.3.4) and FORWARD TSN (RFC 3758 3.2) chunks."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar, Self

from agent.rtc.sctp.params import chunk_body, chunk_bytes

FLAG_END = 0x01
FLAG_BEGIN = 0x02
FLAG_UNORDERED = 0x04
FLAG_IMMEDIATE = 0x08

_DATA_FIXED = struct.Struct("!IHHI")
_SACK_FIXED = struct.Struct("!IIHH")
DATA_HEADER_SIZE = 4 + _DATA_FIXED.size


@dataclass(frozen=True, slots=True)
class Data:
    """One fragment of a user message."""

    TYPE: ClassVar[int] = 0
    tsn: int
    stream_id: int
    ssn: int
    ppid: int
    user_data: bytes
    begin: bool = True
    end: bool = True
    unordered: bool = False
    immediate: bool = False

    def serialize(self) -> bytes:
        flags = (
            (FLAG_END if self.end else 0)
            | (FLAG_BEGIN if self.begin else 0)
            | (FLAG_UNORDERED if self.unordered else 0)
            | (FLAG_IMMEDIATE if self.immediate else 0)
        )
        fixed = _DATA_FIXED.pack(self.tsn, self.stream_id, self.ssn, self.ppid)
        return chunk_bytes(self.TYPE, flags, fixed + self.user_data)

    @classmethod
    def parse(cls, data: bytes) -> Self:
        flags, body = chunk_body(data, cls.TYPE)
        if len(body) < _DATA_FIXED.size:
            raise ValueError("truncated DATA")
        if len(body) == _DATA_FIXED.size:
            raise ValueError("DATA without user data")
        tsn, stream_id, ssn, ppid = _DATA_FIXED.unpack_from(body)
        return cls(
            tsn,
            stream_id,
            ssn,
            ppid,
            body[_DATA_FIXED.size :],
            begin=bool(flags & FLAG_BEGIN),
            end=bool(flags & FLAG_END),
            unordered=bool(flags & FLAG_UNORDERED),
            immediate=bool(flags & FLAG_IMMEDIATE),
        )


@dataclass(frozen=True, slots=True)
class Sack:
    """Cumulative ack, gap blocks as (start, end) offsets from it, duplicate TSNs."""

    TYPE: ClassVar[int] = 3
    cumulative_tsn: int
    a_rwnd: int
    gaps: tuple[tuple[int, int], ...] = ()
    duplicates: tuple[int, ...] = ()

    def serialize(self) -> bytes:
        counts = (len(self.gaps), len(self.duplicates))
        parts = [_SACK_FIXED.pack(self.cumulative_tsn, self.a_rwnd, *counts)]
        parts += [struct.pack("!HH", start, end) for start, end in self.gaps]
        parts += [struct.pack("!I", tsn) for tsn in self.duplicates]
        return chunk_bytes(self.TYPE, 0, b"".join(parts))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _flags, body = chunk_body(data, cls.TYPE)
        if len(body) < _SACK_FIXED.size:
            raise ValueError("truncated SACK")
        cumulative, rwnd, gap_count, dup_count = _SACK_FIXED.unpack_from(body)
        if len(body) != _SACK_FIXED.size + 4 * gap_count + 4 * dup_count:
            raise ValueError("SACK length does not match its block counts")
        offset = _SACK_FIXED.size
        gaps = []
        for _ in range(gap_count):
            start, end = struct.unpack_from("!HH", body, offset)
            if start == 0 or end < start:
                raise ValueError(f"bad SACK gap block {start}-{end}")
            gaps.append((start, end))
            offset += 4
        dups = struct.unpack_from(f"!{dup_count}I", body, offset)
        return cls(cumulative, rwnd, tuple(gaps), tuple(dups))


@dataclass(frozen=True, slots=True)
class ForwardTsn:
    """Move the receiver's cumulative TSN past abandoned messages; (stream, ssn) skipped."""

    TYPE: ClassVar[int] = 192
    new_cumulative_tsn: int
    streams: tuple[tuple[int, int], ...] = ()

    def serialize(self) -> bytes:
        parts = [struct.pack("!I", self.new_cumulative_tsn)]
        parts += [struct.pack("!HH", stream, ssn) for stream, ssn in self.streams]
        return chunk_bytes(self.TYPE, 0, b"".join(parts))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        _flags, body = chunk_body(data, cls.TYPE)
        if len(body) < 4 or len(body) % 4:
            raise ValueError("bad FORWARD TSN length")
        (new_cumulative,) = struct.unpack_from("!I", body)
        count = (len(body) - 4) // 4
        flat = struct.unpack_from(f"!{2 * count}H", body, 4)
        return cls(new_cumulative, tuple(zip(flat[::2], flat[1::2], strict=True)))
