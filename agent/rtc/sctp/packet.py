"""The SCTP packet: common header, CRC32c, and the one chunk dispatcher (RFC 9260 3, 6.8).

Chunk modules know nothing of each other or of this one, so there is no import cycle.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

import crc32c

from agent.rtc.sctp.chunks import (
    Abort,
    CookieAck,
    CookieEcho,
    Error,
    Heartbeat,
    HeartbeatAck,
    Init,
    InitAck,
    Shutdown,
    ShutdownAck,
    ShutdownComplete,
    UnknownChunk,
)
from agent.rtc.sctp.data_chunks import Data, ForwardTsn, Sack
from agent.rtc.sctp.params import chunk_extent
from agent.rtc.sctp.reconfig import ReConfig

KnownChunk = (
    Data
    | Sack
    | Init
    | InitAck
    | CookieEcho
    | CookieAck
    | Heartbeat
    | HeartbeatAck
    | Abort
    | Error
    | Shutdown
    | ShutdownAck
    | ShutdownComplete
    | ForwardTsn
    | ReConfig
)
Chunk = KnownChunk | UnknownChunk

_KNOWN: dict[int, type[KnownChunk]] = {
    kind.TYPE: kind
    for kind in (
        Data,
        Sack,
        Init,
        InitAck,
        CookieEcho,
        CookieAck,
        Heartbeat,
        HeartbeatAck,
        Abort,
        Error,
        Shutdown,
        ShutdownAck,
        ShutdownComplete,
        ForwardTsn,
        ReConfig,
    )
}

COMMON_HEADER_SIZE = 12


def parse_chunk(data: bytes) -> Chunk:
    """One chunk (header included) to its dataclass; unknown types are kept raw."""
    kind, _end = chunk_extent(data, 0)
    known = _KNOWN.get(kind)
    if known is not None:
        return known.parse(data)
    return UnknownChunk(kind, data[1], bytes(data[4 : struct.unpack_from("!H", data, 2)[0]]))


def checksum(data: bytes) -> int:
    """CRC32c of a packet whose checksum field is zero, as the wire stores it."""
    value: int = crc32c.crc32c(data)
    return value


@dataclass(frozen=True, slots=True)
class Packet:
    """Common header plus chunks. ``parse`` checks the CRC32c; ``serialize`` computes it."""

    source_port: int
    destination_port: int
    verification_tag: int
    chunks: tuple[Chunk, ...]

    def serialize(self) -> bytes:
        return serialize_packet(
            self.source_port,
            self.destination_port,
            self.verification_tag,
            [chunk.serialize() for chunk in self.chunks],
        )

    @classmethod
    def parse(cls, data: bytes) -> Self:
        if len(data) < COMMON_HEADER_SIZE + 4:
            raise ValueError("packet shorter than a header and one chunk")
        source, destination, tag = struct.unpack_from("!HHI", data)
        # The CRC's bytes go on the wire least significant first (RFC 9260 appendix A).
        (received,) = struct.unpack_from("<I", data, 8)
        if received != checksum(data[:8] + b"\x00\x00\x00\x00" + data[12:]):
            raise ValueError("bad CRC32c")
        chunks: list[Chunk] = []
        offset = COMMON_HEADER_SIZE
        view = memoryview(data)
        while offset < len(data):
            _kind, end = chunk_extent(data, offset)
            chunks.append(parse_chunk(bytes(view[offset:end])))
            offset = end
        return cls(source, destination, tag, tuple(chunks))


def serialize_packet(source: int, destination: int, tag: int, chunks: list[bytes]) -> bytes:
    """A packet from chunks already serialized (the send path builds them one by one)."""
    body = b"".join(chunks)
    header = struct.pack("!HHI", source, destination, tag)
    crc = checksum(header + b"\x00\x00\x00\x00" + body)
    return header + struct.pack("<I", crc) + body
