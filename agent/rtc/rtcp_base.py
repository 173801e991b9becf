"""What every RTCP packet module shares: packet types, the common header and ``_Rtcp``.

``rtcp`` (reports, feedback and the compound parser) and ``twcc`` (transport-wide CC feedback)
both build on this module, which imports neither at load time.
"""

from __future__ import annotations

import struct
from typing import Self

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

_HEADER = struct.Struct("!BBH")


def _pack(fmt: struct.Struct, *values: int) -> bytes:
    try:
        return fmt.pack(*values)
    except struct.error as exc:
        raise ValueError(f"RTCP field out of range: {exc}") from None


def _packet(count: int, packet_type: int, body: bytes) -> bytes:
    """Header plus body; a body that is not whole words gets RFC 3550 padding (P bit)."""
    if not 0 <= count <= 31:
        raise ValueError(f"RTCP count/format {count} does not fit in 5 bits")
    padding = -len(body) % 4
    if padding:
        body += bytes(padding - 1) + bytes((padding,))
    words = len(body) // 4
    if words > 0xFFFF:
        raise ValueError(f"RTCP packet of {len(body)} bytes is too long")
    return _HEADER.pack(0x80 | bool(padding) << 5 | count, packet_type, words) + body


class _Rtcp:
    """Shared ``parse`` for the packet dataclasses of ``rtcp`` and ``twcc``."""

    __slots__ = ()

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse one RTCP packet of this type; raises ValueError otherwise."""
        # Imported here: the compound parser knows every packet module, and they all build on
        # this one, so a top-level import would be a cycle.
        from agent.rtc.rtcp import parse_compound

        packets = parse_compound(data)
        if len(packets) != 1:
            raise ValueError(f"expected one RTCP packet, found {len(packets)}")
        packet = packets[0]
        if not isinstance(packet, cls):
            raise ValueError(f"expected {cls.__name__}, found {type(packet).__name__}")
        return packet
