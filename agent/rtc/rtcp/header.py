"""What every RTCP packet family shares: packet types, the common header, and RtcpPacketBase.

The families (reports, feedback, twcc) build on this module and the dispatcher (compound)
imports the families; nothing here imports either, so there is no cycle (pion's shape).
"""

from __future__ import annotations

import struct
from typing import ClassVar, Self

RTCP_VERSION = 2

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
PT_APP = 204
PT_RTPFB = 205
PT_PSFB = 206

FMT_NACK = 1
FMT_TWCC = 15
FMT_PLI = 1
FMT_FIR = 4
FMT_AFB = 15

HEADER = struct.Struct("!BBH")


def pack_fields(fmt: struct.Struct, *values: int) -> bytes:
    """fmt.pack(*values), with a field out of range reported as ValueError."""
    try:
        return fmt.pack(*values)
    except struct.error as exc:
        raise ValueError(f"RTCP field out of range: {exc}") from None


def build_packet(count: int, packet_type: int, body: bytes) -> bytes:
    """Header plus body; a body that is not whole words gets RFC 3550 padding (P bit)."""
    if not 0 <= count <= 31:
        raise ValueError(f"RTCP count/format {count} does not fit in 5 bits")
    padding = -len(body) % 4
    if padding:
        body += bytes(padding - 1) + bytes((padding,))
    words = len(body) // 4
    if words > 0xFFFF:
        raise ValueError(f"RTCP packet of {len(body)} bytes is too long")
    return HEADER.pack(0x80 | bool(padding) << 5 | count, packet_type, words) + body


def split_packet(data: bytes, pos: int) -> tuple[int, int, bytes, int]:
    """(count/format, packet type, body without padding, end) of the packet at `pos`.

    Raises ValueError when the header is not version 2, the length runs past the end of
    `data`, or the padding is inconsistent.
    """
    if pos + 4 > len(data):
        raise ValueError(f"RTCP compound has {len(data) - pos} trailing bytes")
    first, packet_type, words = HEADER.unpack_from(data, pos)
    if first >> 6 != RTCP_VERSION:
        raise ValueError(f"RTCP version {first >> 6}, expected 2")
    end = pos + 4 + 4 * words
    if end > len(data):
        raise ValueError(f"RTCP packet type {packet_type} length runs past the end")
    body_end = end
    if first & 0x20:
        padding = data[end - 1] if words else 0
        if padding == 0 or padding > 4 * words:
            raise ValueError(f"RTCP padding length {padding} is invalid")
        body_end -= padding
    return first & 0x1F, packet_type, bytes(data[pos + 4 : body_end]), end


class RtcpPacketBase:
    """Shared `parse` of the packet dataclasses: one packet of exactly this class's kind.

    A family class sets PACKET_TYPE (and FMT for feedback, whose format selects the
    message) and implements `_from_body(count_or_fmt, body)`.
    """

    __slots__ = ()

    PACKET_TYPE: ClassVar[int]
    FMT: ClassVar[int | None] = None  # None: the 5 bits are a count, not a format

    @classmethod
    def matches(cls, fmt: int, packet_type: int, body: bytes) -> bool:
        """Whether a packet with this header and body is one of this class."""
        return packet_type == cls.PACKET_TYPE and cls.FMT in (None, fmt)

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        raise NotImplementedError

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse one RTCP packet of this type; raises ValueError otherwise."""
        if len(data) < 4:
            raise ValueError(f"RTCP data too short: {len(data)} bytes")
        fmt, packet_type, body, end = split_packet(data, 0)
        if end != len(data):
            raise ValueError("expected one RTCP packet, found more than one")
        if not cls.matches(fmt, packet_type, body):
            raise ValueError(
                f"expected {cls.__name__}, found packet type {packet_type} count/format {fmt}"
            )
        return cls._from_body(fmt, body)
