"""RTP packets (RFC 3550) with RFC 8285 header extensions, and the sender's hot-path stamper.

``RtpHeader`` / ``RtpPacket`` are the wire formats for parsing what arrives and for tests.
Sending goes through ``RtpHeaderStamper``: fan-out packetizes a frame once and each peer only
stamps its own sequence number, timestamp and marker into a pre-built header, so the per-packet
cost is one ``struct.pack_into`` and one allocation.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

ONE_BYTE_PROFILE = 0xBEDE
# RFC 8285 section 4.3: 0x100 in the top 12 bits, the low 4 bits are "appbits".
TWO_BYTE_PROFILE = 0x1000
_TWO_BYTE_MASK = 0xFFF0

_FIXED = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_VARIABLE = struct.Struct("!BHI")  # marker|pt, sequence number, timestamp at offset 1


def is_rtcp(data: bytes) -> bool:
    """True when an RTP/RTCP datagram (first byte 128-191) is RTCP (RFC 5761 section 4).

    With rtcp-mux, RTCP packet types 192-223 occupy the second byte where RTP has marker and
    payload type; payload types 64-95 are therefore never used for RTP.
    """
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The RTP fixed header, CSRC list and raw header extension block.

    ``extensions`` is the extension data after the 4-byte profile/length word, kept raw so a
    parsed header serializes back byte for byte; ``extension_elements()`` decodes it.
    ``padding`` is the P bit; the padding itself belongs to ``RtpPacket``.
    """

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    marker: bool = False
    padding: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extensions: bytes = b""

    @property
    def size(self) -> int:
        """Length of the serialized header: the payload starts at this offset."""
        size = RTP_HEADER_SIZE + 4 * len(self.csrcs)
        if self.extension_profile is not None:
            size += 4 + len(self.extensions)
        return size

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse the header at the start of ``data``; what follows ``size`` is the payload."""
        if len(data) < RTP_HEADER_SIZE:
            raise ValueError(f"RTP packet too short: {len(data)} bytes")
        first, second, seq, timestamp, ssrc = _FIXED.unpack_from(data)
        if first >> 6 != RTP_VERSION:
            raise ValueError(f"RTP version {first >> 6}, expected 2")
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        if offset > len(data):
            raise ValueError(f"RTP CSRC list ({csrc_count}) runs past the end of the packet")
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE)
        profile: int | None = None
        extensions = b""
        if first & 0x10:
            if offset + 4 > len(data):
                raise ValueError("RTP extension header runs past the end of the packet")
            profile, words = _EXT_HEADER.unpack_from(data, offset)
            end = offset + 4 + 4 * words
            if end > len(data):
                raise ValueError(f"RTP extension length ({words} words) runs past the end")
            extensions = bytes(data[offset + 4 : end])
        return cls(
            payload_type=second & 0x7F,
            sequence_number=seq,
            timestamp=timestamp,
            ssrc=ssrc,
            marker=bool(second & 0x80),
            padding=bool(first & 0x20),
            csrcs=csrcs,
            extension_profile=profile,
            extensions=extensions,
        )

    def serialize(self) -> bytes:
        """The header bytes; raises ValueError when a field does not fit its wire width."""
        if len(self.csrcs) > 15:
            raise ValueError(f"RTP allows at most 15 CSRCs, got {len(self.csrcs)}")
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"RTP payload type {self.payload_type} out of range")
        has_ext = self.extension_profile is not None
        if len(self.extensions) % 4 or (self.extensions and not has_ext):
            raise ValueError("RTP extension block must be whole words and have a profile")
        first = RTP_VERSION << 6 | self.padding << 5 | has_ext << 4 | len(self.csrcs)
        second = self.marker << 7 | self.payload_type
        try:
            out = _FIXED.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)
            out += struct.pack(f"!{len(self.csrcs)}I", *self.csrcs)
            if self.extension_profile is not None:
                out += _EXT_HEADER.pack(self.extension_profile, len(self.extensions) // 4)
        except struct.error as exc:
            raise ValueError(f"RTP header field out of range: {exc}") from None
        return out + self.extensions

    def extension_elements(self) -> tuple[tuple[int, bytes], ...]:
        """The RFC 8285 elements as (id, data); () when the profile is neither form."""
        if self.extension_profile is None:
            return ()
        return parse_extension_elements(self.extension_profile, self.extensions)


def parse_extension_elements(profile: int, block: bytes) -> tuple[tuple[int, bytes], ...]:
    """Decode an RFC 8285 one-byte (0xBEDE) or two-byte (0x100x) extension block.

    Other profiles are not RFC 8285 and yield (). Padding bytes are skipped; in the one-byte
    form ID 15 ends processing, as the RFC requires. An element running past the block raises
    ValueError.
    """
    if profile == ONE_BYTE_PROFILE:
        return _parse_one_byte(block)
    if profile & _TWO_BYTE_MASK == TWO_BYTE_PROFILE:
        return _parse_two_byte(block)
    return ()


def _parse_one_byte(block: bytes) -> tuple[tuple[int, bytes], ...]:
    elements: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(block):
        byte = block[pos]
        if byte == 0:
            pos += 1
            continue
        ext_id, length = byte >> 4, (byte & 0x0F) + 1
        if ext_id == 15:
            break
        end = pos + 1 + length
        if end > len(block):
            raise ValueError(f"RTP extension element {ext_id} runs past the extension block")
        elements.append((ext_id, bytes(block[pos + 1 : end])))
        pos = end
    return tuple(elements)


def _parse_two_byte(block: bytes) -> tuple[tuple[int, bytes], ...]:
    elements: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(block):
        ext_id = block[pos]
        if ext_id == 0:
            pos += 1
            continue
        if pos + 2 > len(block):
            raise ValueError(f"RTP extension element {ext_id} has no length byte")
        end = pos + 2 + block[pos + 1]
        if end > len(block):
            raise ValueError(f"RTP extension element {ext_id} runs past the extension block")
        elements.append((ext_id, bytes(block[pos + 2 : end])))
        pos = end
    return tuple(elements)


def serialize_extension_elements(
    elements: Iterable[tuple[int, bytes]], *, two_byte: bool = False
) -> tuple[int, bytes]:
    """Encode elements as (profile, block), padded to whole words.

    The one-byte form is used unless ``two_byte`` is set or an element needs it (ID above 14,
    empty data, or more than 16 bytes). Raises ValueError for IDs or lengths neither form allows.
    """
    items = list(elements)
    for ext_id, data in items:
        if not 1 <= ext_id <= 255 or len(data) > 255:
            raise ValueError(f"RTP extension element {ext_id} ({len(data)} bytes) not encodable")
    if not two_byte:
        two_byte = any(ext_id > 14 or not 1 <= len(data) <= 16 for ext_id, data in items)
    out = bytearray()
    for ext_id, data in items:
        if two_byte:
            out += bytes((ext_id, len(data)))
        else:
            out.append(ext_id << 4 | (len(data) - 1))
        out += data
    out += bytes(-len(out) % 4)
    return (TWO_BYTE_PROFILE if two_byte else ONE_BYTE_PROFILE), bytes(out)


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """A whole RTP packet; ``padding_size`` counts the padding octets removed on parse.

    Padding is written back as zeros ending in the count octet, which is what senders put
    there (RFC 3550 leaves the other padding octets unspecified).
    """

    header: RtpHeader
    payload: bytes = b""
    padding_size: int = 0

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse one RTP packet; raises ValueError on anything malformed."""
        header = RtpHeader.parse(data)
        end = len(data)
        padding_size = 0
        if header.padding:
            padding_size = data[-1] if end > header.size else 0
            if padding_size == 0 or header.size + padding_size > end:
                raise ValueError(f"RTP padding length {padding_size} is invalid")
            end -= padding_size
        return cls(header, bytes(data[header.size : end]), padding_size)

    def serialize(self) -> bytes:
        """The packet bytes; the P bit must agree with ``padding_size``."""
        if self.header.padding != (self.padding_size > 0) or self.padding_size > 255:
            raise ValueError(
                f"RTP padding bit {self.header.padding} and padding size {self.padding_size} "
                "disagree"
            )
        padding = b""
        if self.padding_size:
            padding = bytes(self.padding_size - 1) + bytes((self.padding_size,))
        return self.header.serialize() + self.payload + padding


class RtpHeaderStamper:
    """Pre-built header for one outgoing stream (payload type, SSRC, optional extensions).

    ``stamp`` writes only the per-packet fields into the template and returns header plus
    payload as one new ``bytes``: this is the per-peer, per-packet hot path of the fan-out.
    Sequence number and timestamp wrap (they are masked to 16 and 32 bits), so callers can
    add their offsets without reducing them first.
    """

    __slots__ = ("_header", "_payload_type")

    def __init__(
        self,
        payload_type: int,
        ssrc: int,
        extension_profile: int | None = None,
        extensions: bytes = b"",
    ) -> None:
        template = RtpHeader(
            payload_type=payload_type,
            sequence_number=0,
            timestamp=0,
            ssrc=ssrc,
            extension_profile=extension_profile,
            extensions=extensions,
        )
        self._header = bytearray(template.serialize())
        self._payload_type = payload_type

    @property
    def header_size(self) -> int:
        """Bytes the stamped header adds in front of each payload."""
        return len(self._header)

    def header(self, sequence_number: int, timestamp: int, marker: bool) -> bytearray:
        """The template with these fields written in; valid until the next call."""
        header = self._header
        _VARIABLE.pack_into(
            header,
            1,
            self._payload_type | 0x80 if marker else self._payload_type,
            sequence_number & 0xFFFF,
            timestamp & 0xFFFFFFFF,
        )
        return header

    def stamp(self, sequence_number: int, timestamp: int, marker: bool, payload: bytes) -> bytes:
        """Return one RTP packet: the template with these fields, followed by ``payload``."""
        header = self._header
        _VARIABLE.pack_into(
            header,
            1,
            self._payload_type | 0x80 if marker else self._payload_type,
            sequence_number & 0xFFFF,
            timestamp & 0xFFFFFFFF,
        )
        return b"".join((header, payload))
