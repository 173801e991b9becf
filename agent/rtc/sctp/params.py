"""TLV pieces shared by SCTP chunks: padding, parameters (RFC 9260 3.2.1) and error causes.

Both parameters and error causes are type(2) length(2) value, padded to 4 bytes; they differ
only in what the type means, so one reader serves both.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

# Parameter types we read or write.
PARAM_HEARTBEAT_INFO = 1
PARAM_STATE_COOKIE = 7
PARAM_UNRECOGNIZED = 8
PARAM_SUPPORTED_EXTENSIONS = 0x8008
PARAM_FORWARD_TSN_SUPPORTED = 0xC000

# Error cause codes (RFC 9260 3.3.10).
CAUSE_INVALID_STREAM = 1
CAUSE_MISSING_PARAMETER = 2
CAUSE_UNRECOGNIZED_CHUNK = 6
CAUSE_NO_USER_DATA = 9
CAUSE_USER_INITIATED_ABORT = 12
CAUSE_PROTOCOL_VIOLATION = 13

_TLV_HEADER = struct.Struct("!HH")


def padding(length: int) -> bytes:
    return b"\x00" * (-length % 4)


@dataclass(frozen=True, slots=True)
class Tlv:
    """One parameter or error cause: its type and raw value."""

    type: int
    value: bytes

    def serialize(self) -> bytes:
        body = _TLV_HEADER.pack(self.type, 4 + len(self.value)) + self.value
        return body + padding(len(body))

    @classmethod
    def parse(cls, data: bytes) -> Self:
        items = parse_tlvs(data)
        if len(items) != 1:
            raise ValueError("expected exactly one TLV")
        return cls(items[0].type, items[0].value)


def parse_tlvs(data: bytes) -> list[Tlv]:
    """Read a run of TLVs; the last one may omit its padding. Linear in ``len(data)``."""
    items: list[Tlv] = []
    offset = 0
    end = len(data)
    while offset < end:
        if end - offset < 4:
            raise ValueError("truncated TLV header")
        kind, length = _TLV_HEADER.unpack_from(data, offset)
        if length < 4 or offset + length > end:
            raise ValueError(f"bad TLV length {length}")
        items.append(Tlv(kind, bytes(data[offset + 4 : offset + length])))
        offset += length + (-length % 4)
    return items


def serialize_tlvs(items: Iterable[Tlv]) -> bytes:
    return b"".join(item.serialize() for item in items)


def find_tlv(items: Iterable[Tlv], kind: int) -> Tlv | None:
    return next((item for item in items if item.type == kind), None)


def describe_causes(causes: Iterable[Tlv]) -> str:
    """A log- and event-friendly summary of error causes (text of user-initiated aborts)."""
    parts: list[str] = []
    for cause in causes:
        if cause.type in (CAUSE_USER_INITIATED_ABORT, CAUSE_PROTOCOL_VIOLATION) and cause.value:
            parts.append(cause.value.decode("utf-8", "replace"))
        else:
            parts.append(f"cause {cause.type}")
    return ", ".join(parts) or "no cause given"


_CHUNK_HEADER = struct.Struct("!BBH")


def chunk_bytes(kind: int, flags: int, body: bytes) -> bytes:
    """A whole chunk: header, body, padding to 4 bytes (not counted in the length)."""
    length = 4 + len(body)
    if length > 0xFFFF:
        raise ValueError("chunk too long")
    return _CHUNK_HEADER.pack(kind, flags, length) + body + padding(length)


def chunk_body(data: bytes, kind: int) -> tuple[int, bytes]:
    """Check one chunk's header against ``kind``; return its flags and body."""
    if len(data) < 4:
        raise ValueError("truncated chunk header")
    actual, flags, length = _CHUNK_HEADER.unpack_from(data)
    if actual != kind:
        raise ValueError(f"chunk type {actual}, expected {kind}")
    if length < 4 or length > len(data):
        raise ValueError(f"bad chunk length {length}")
    return flags, bytes(data[4:length])


def chunk_extent(data: bytes, offset: int) -> tuple[int, int]:
    """Type and padded end of the chunk at ``offset`` in a packet."""
    if len(data) - offset < 4:
        raise ValueError("truncated chunk header")
    kind, _flags, length = _CHUNK_HEADER.unpack_from(data, offset)
    if length < 4 or offset + length > len(data):
        raise ValueError(f"bad chunk length {length}")
    return kind, min(len(data), offset + length + (-length % 4))
