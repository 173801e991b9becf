"""RTCP compound packets: RFC 3550 reports, RFC 4585/5104 feedback, REMB and transport-wide CC.

``parse_compound`` splits a (possibly reduced-size, RFC 5506) compound packet and parses each
part into a frozen dataclass; types this module does not know come back as ``UnknownRtcp``
rather than failing the whole datagram. Every class serializes back to the bytes it was
parsed from for the encodings real senders produce (libwebrtc and aiortc fixtures in the
tests): NACK lists and TWCC chunks are re-encoded the way libwebrtc encodes them.
Transport-wide CC feedback (``TransportWideCC``) lives in ``twcc``, the shared header and
base class in ``rtcp_base``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self, TypeAlias

from agent.rtc.rtcp_base import (
    _HEADER,
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    FMT_TWCC,
    PT_BYE,
    PT_PSFB,
    PT_RR,
    PT_RTPFB,
    PT_SDES,
    PT_SR,
    RTCP_VERSION,
    _pack,
    _packet,
    _Rtcp,
)
from agent.rtc.twcc import TransportWideCC

SDES_CNAME = 1

# Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET = 2_208_988_800

_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_NACK_FCI = struct.Struct("!HH")
_FIR_FCI = struct.Struct("!IB3x")


# --------------------------------------------------------------------------------------------
# RFC 3550 reports


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (RFC 3550 section 6.4.1); ``cumulative_lost`` is signed 24-bit.

    ``lsr`` and ``dlsr`` are in NTP short format (1/65536 s), as on the wire.
    """

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0
    highest_sequence: int = 0
    jitter: int = 0
    lsr: int = 0
    dlsr: int = 0

    SIZE: ClassVar[int] = 24

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse exactly one 24-byte report block."""
        if len(data) != cls.SIZE:
            raise ValueError(f"RTCP report block must be 24 bytes, got {len(data)}")
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack(data)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        """The 24 wire bytes."""
        if not 0 <= self.fraction_lost <= 255 or not -(1 << 23) <= self.cumulative_lost < 1 << 23:
            raise ValueError("RTCP report block loss fields out of range")
        lost_word = self.fraction_lost << 24 | self.cumulative_lost & 0xFFFFFF
        return _pack(
            _REPORT_BLOCK,
            self.ssrc,
            lost_word,
            self.highest_sequence,
            self.jitter,
            self.lsr,
            self.dlsr,
        )


def _parse_blocks(data: bytes, count: int) -> tuple[ReportBlock, ...]:
    if len(data) != count * ReportBlock.SIZE:
        raise ValueError(f"RTCP report length does not match its {count} report blocks")
    return tuple(ReportBlock.parse(data[i : i + 24]) for i in range(0, len(data), 24))


def _check_count(items: Sequence[object], what: str) -> int:
    if len(items) > 31:
        raise ValueError(f"RTCP packet holds at most 31 {what}, got {len(items)}")
    return len(items)


@dataclass(frozen=True, slots=True)
class SenderReport(_Rtcp):
    """SR (RFC 3550 section 6.4.1); ``ntp_timestamp`` is the full 64-bit NTP time."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Self:
        if len(body) < _SENDER_INFO.size:
            raise ValueError("RTCP SR too short for its sender info")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        return cls(ssrc, ntp, rtp_ts, packets, octets, _parse_blocks(body[24:], count))

    def serialize(self) -> bytes:
        """The SR packet bytes."""
        body = _pack(
            _SENDER_INFO,
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        body += b"".join(block.serialize() for block in self.reports)
        return _packet(_check_count(self.reports, "report blocks"), PT_SR, body)


@dataclass(frozen=True, slots=True)
class ReceiverReport(_Rtcp):
    """RR (RFC 3550 section 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Self:
        if len(body) < 4:
            raise ValueError("RTCP RR too short for its SSRC")
        return cls(_U32.unpack_from(body)[0], _parse_blocks(body[4:], count))

    def serialize(self) -> bytes:
        """The RR packet bytes."""
        body = _pack(_U32, self.ssrc) + b"".join(block.serialize() for block in self.reports)
        return _packet(_check_count(self.reports, "report blocks"), PT_RR, body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its (item type, value) pairs, e.g. (SDES_CNAME, b"...")."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription(_Rtcp):
    """SDES (RFC 3550 section 6.5)."""

    chunks: tuple[SdesChunk, ...] = ()

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Self:
        chunks: list[SdesChunk] = []
        pos = 0
        for _ in range(count):
            if pos + 4 > len(body):
                raise ValueError(f"RTCP SDES ends inside chunk {len(chunks)}")
            ssrc = _U32.unpack_from(body, pos)[0]
            pos += 4
            items: list[tuple[int, bytes]] = []
            while True:
                if pos >= len(body):
                    raise ValueError("RTCP SDES chunk has no end item")
                item_type = body[pos]
                if item_type == 0:
                    # The end item is followed by null octets up to the next word boundary.
                    pos += 4 - pos % 4
                    break
                if pos + 2 > len(body) or pos + 2 + body[pos + 1] > len(body):
                    raise ValueError(f"RTCP SDES item {item_type} runs past the packet")
                end = pos + 2 + body[pos + 1]
                items.append((item_type, bytes(body[pos + 2 : end])))
                pos = end
            chunks.append(SdesChunk(ssrc, tuple(items)))
        if pos != len(body):
            raise ValueError("RTCP SDES length does not match its chunks")
        return cls(tuple(chunks))

    def serialize(self) -> bytes:
        """The SDES packet bytes."""
        body = bytearray()
        for chunk in self.chunks:
            body += _pack(_U32, chunk.ssrc)
            for item_type, value in chunk.items:
                if not 1 <= item_type <= 255 or len(value) > 255:
                    raise ValueError(f"RTCP SDES item {item_type} ({len(value)} bytes) invalid")
                body += bytes((item_type, len(value))) + value
            body += bytes(4 - len(body) % 4)
        return _packet(_check_count(self.chunks, "SDES chunks"), PT_SDES, bytes(body))


@dataclass(frozen=True, slots=True)
class Bye(_Rtcp):
    """BYE (RFC 3550 section 6.6); ``reason`` is None when the packet carries none."""

    ssrcs: tuple[int, ...] = ()
    reason: bytes | None = None

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Self:
        end = 4 * count
        if end > len(body):
            raise ValueError(f"RTCP BYE too short for its {count} SSRCs")
        ssrcs = struct.unpack_from(f"!{count}I", body)
        reason: bytes | None = None
        if end < len(body):
            reason_end = end + 1 + body[end]
            if reason_end > len(body) or len(body) - reason_end > 3:
                raise ValueError("RTCP BYE reason length does not match the packet")
            reason = bytes(body[end + 1 : reason_end])
        return cls(ssrcs, reason)

    def serialize(self) -> bytes:
        """The BYE packet bytes; the reason is zero-padded to a word boundary."""
        body = b"".join(_pack(_U32, ssrc) for ssrc in self.ssrcs)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise ValueError("RTCP BYE reason longer than 255 bytes")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _packet(_check_count(self.ssrcs, "SSRCs"), PT_BYE, body)


# --------------------------------------------------------------------------------------------
# RFC 4585 / 5104 feedback


def _feedback_ssrcs(body: bytes, what: str) -> tuple[int, int]:
    if len(body) < 8:
        raise ValueError(f"RTCP {what} too short for its SSRCs")
    sender, media = _TWO_U32.unpack_from(body)
    return sender, media


@dataclass(frozen=True, slots=True)
class PictureLossIndication(_Rtcp):
    """PLI (RFC 4585 section 6.3.1): the receiver lost picture data and needs a keyframe."""

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        if len(body) != 8:
            raise ValueError("RTCP PLI must have no FCI")
        return cls(*_feedback_ssrcs(body, "PLI"))

    def serialize(self) -> bytes:
        """The PLI packet bytes."""
        return _packet(FMT_PLI, PT_PSFB, _pack(_TWO_U32, self.sender_ssrc, self.media_ssrc))


@dataclass(frozen=True, slots=True)
class FullIntraRequest(_Rtcp):
    """FIR (RFC 5104 section 4.3.1): ``entries`` are (media SSRC, command sequence number)."""

    sender_ssrc: int
    entries: tuple[tuple[int, int], ...]
    media_ssrc: int = 0  # unused by FIR, and required to be 0

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        sender, media = _feedback_ssrcs(body, "FIR")
        if len(body) == 8 or len(body) % 8:
            raise ValueError("RTCP FIR must have whole 8-byte FCI entries")
        entries = tuple(
            _FIR_FCI.unpack_from(body, pos) for pos in range(8, len(body), _FIR_FCI.size)
        )
        return cls(sender, entries, media)

    def serialize(self) -> bytes:
        """The FIR packet bytes."""
        body = _pack(_TWO_U32, self.sender_ssrc, self.media_ssrc)
        body += b"".join(_pack(_FIR_FCI, ssrc, seq) for ssrc, seq in self.entries)
        return _packet(FMT_FIR, PT_PSFB, body)


@dataclass(frozen=True, slots=True)
class GenericNack(_Rtcp):
    """Generic NACK (RFC 4585 section 6.2.1) with the PID/BLP pairs expanded into ``lost``.

    ``serialize`` packs ``lost`` in the given order, as libwebrtc and aiortc do, so their
    packets round-trip; ``from_lost`` orders the numbers so that packing is minimal.
    """

    sender_ssrc: int
    media_ssrc: int
    lost: tuple[int, ...]

    @classmethod
    def from_lost(cls, sender_ssrc: int, media_ssrc: int, lost: Iterable[int]) -> Self:
        """A NACK for these sequence numbers, deduplicated and sorted across a wrap."""
        seqs = sorted({seq & 0xFFFF for seq in lost})
        if len(seqs) > 1:
            # Start after the widest gap, so a run through 65535 -> 0 stays one run.
            gaps = [(seqs[(i + 1) % len(seqs)] - seqs[i]) % 0x10000 for i in range(len(seqs))]
            start = (gaps.index(max(gaps)) + 1) % len(seqs)
            seqs = seqs[start:] + seqs[:start]
        return cls(sender_ssrc, media_ssrc, tuple(seqs))

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        sender, media = _feedback_ssrcs(body, "NACK")
        if len(body) == 8 or len(body) % 4:
            raise ValueError("RTCP NACK has no FCI or a partial one")
        lost: list[int] = []
        for pos in range(8, len(body), 4):
            pid, blp = _NACK_FCI.unpack_from(body, pos)
            lost.append(pid)
            lost.extend((pid + bit + 1) & 0xFFFF for bit in range(16) if blp >> bit & 1)
        return cls(sender, media, tuple(lost))

    def serialize(self) -> bytes:
        """The NACK packet bytes; raises ValueError for an empty list."""
        if not self.lost:
            raise ValueError("RTCP NACK needs at least one lost packet")
        # A number joins the current pair only above its highest bit, so that parsing gives
        # back exactly this order (and sorted input packs minimally, like libwebrtc).
        pairs: list[list[int]] = []
        top = 0
        for seq in self.lost:
            if not 0 <= seq <= 0xFFFF:
                raise ValueError(f"RTCP NACK sequence number {seq} out of range")
            offset = (seq - pairs[-1][0]) % 0x10000 if pairs else 0
            if top < offset <= 16:
                pairs[-1][1] |= 1 << (offset - 1)
                top = offset
            else:
                pairs.append([seq, 0])
                top = 0
        body = _pack(_TWO_U32, self.sender_ssrc, self.media_ssrc)
        body += b"".join(_NACK_FCI.pack(pid, blp) for pid, blp in pairs)
        return _packet(FMT_NACK, PT_RTPFB, body)


@dataclass(frozen=True, slots=True)
class Remb(_Rtcp):
    """REMB (draft-alvestrand-rmcat-remb): PSFB fmt 15 with the 'REMB' identifier.

    The wire form is an 18-bit mantissa and a 6-bit exponent, so ``serialize`` keeps the top
    18 significant bits of ``bitrate`` (with the smallest exponent, as libwebrtc does).
    """

    sender_ssrc: int
    bitrate: int
    ssrcs: tuple[int, ...] = ()
    media_ssrc: int = 0  # unused by REMB, and required to be 0

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        sender, media = _feedback_ssrcs(body, "REMB")
        if len(body) < 16 or len(body) != 16 + 4 * body[12]:
            raise ValueError("RTCP REMB length does not match its SSRC count")
        word = _U32.unpack_from(body, 12)[0]
        bitrate = (word & 0x3FFFF) << (word >> 18 & 0x3F)
        return cls(sender, bitrate, struct.unpack_from(f"!{body[12]}I", body, 16), media)

    def serialize(self) -> bytes:
        """The REMB packet bytes."""
        if self.bitrate < 0 or len(self.ssrcs) > 255:
            raise ValueError("RTCP REMB bitrate negative or too many SSRCs")
        exponent = max(0, self.bitrate.bit_length() - 18)
        if exponent > 63:
            raise ValueError(f"RTCP REMB bitrate {self.bitrate} too large")
        body = _pack(_TWO_U32, self.sender_ssrc, self.media_ssrc) + b"REMB"
        body += _U32.pack(len(self.ssrcs) << 24 | exponent << 18 | self.bitrate >> exponent)
        body += b"".join(_pack(_U32, ssrc) for ssrc in self.ssrcs)
        return _packet(FMT_AFB, PT_PSFB, body)


# --------------------------------------------------------------------------------------------
# Unknown packets and the compound


@dataclass(frozen=True, slots=True)
class UnknownRtcp(_Rtcp):
    """A packet type or feedback format this module does not decode, kept as its body."""

    packet_type: int
    fmt: int
    body: bytes

    def serialize(self) -> bytes:
        """The packet bytes, the body padded to a word if needed."""
        if not 0 <= self.packet_type <= 255:
            raise ValueError(f"RTCP packet type {self.packet_type} out of range")
        return _packet(self.fmt, self.packet_type, self.body)


RtcpPacket: TypeAlias = (
    SenderReport
    | ReceiverReport
    | SourceDescription
    | Bye
    | PictureLossIndication
    | FullIntraRequest
    | GenericNack
    | Remb
    | TransportWideCC
    | UnknownRtcp
)


# Reports carry a count in the first byte, feedback a format that selects the message.
_REPORT_PARSERS: dict[int, Callable[[int, bytes], RtcpPacket]] = {
    PT_SR: SenderReport._from_body,
    PT_RR: ReceiverReport._from_body,
    PT_SDES: SourceDescription._from_body,
    PT_BYE: Bye._from_body,
}
_FEEDBACK_PARSERS: dict[tuple[int, int], Callable[[int, bytes], RtcpPacket]] = {
    (PT_RTPFB, FMT_NACK): GenericNack._from_body,
    (PT_RTPFB, FMT_TWCC): TransportWideCC._from_body,
    (PT_PSFB, FMT_PLI): PictureLossIndication._from_body,
    (PT_PSFB, FMT_FIR): FullIntraRequest._from_body,
}


def _parse_one(fmt: int, packet_type: int, body: bytes) -> RtcpPacket:
    parser = _REPORT_PARSERS.get(packet_type) or _FEEDBACK_PARSERS.get((packet_type, fmt))
    if parser is not None:
        return parser(fmt, body)
    if packet_type == PT_PSFB and fmt == FMT_AFB and body[8:12] == b"REMB":
        return Remb._from_body(fmt, body)
    return UnknownRtcp(packet_type, fmt, body)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Parse every packet of an RTCP compound (or a single, reduced-size packet).

    Raises ValueError when the data is empty, a header is not version 2, a length runs past
    the end or leaves bytes over, padding is inconsistent, or a known packet is malformed.
    """
    if len(data) < 4:
        raise ValueError(f"RTCP data too short: {len(data)} bytes")
    packets: list[RtcpPacket] = []
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError(f"RTCP compound has {len(data) - pos} trailing bytes")
        first, packet_type, words = _HEADER.unpack_from(data, pos)
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
        packets.append(_parse_one(first & 0x1F, packet_type, bytes(data[pos + 4 : body_end])))
        pos = end
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate the packets' serializations into one compound."""
    return b"".join(packet.serialize() for packet in packets)


# --------------------------------------------------------------------------------------------
# NTP time for SR/RR round-trip estimation (RFC 3550 section 6.4.1)


def ntp_from_unix(seconds: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point since 1900) for a Unix time in seconds."""
    whole = math.floor(seconds)
    fraction = int((seconds - whole) * (1 << 32))
    return ((whole + NTP_UNIX_OFFSET) << 32 | fraction) & 0xFFFF_FFFF_FFFF_FFFF


def unix_from_ntp(ntp: int) -> float:
    """Unix time in seconds for a 64-bit NTP timestamp (era 0, until 2036)."""
    return (ntp >> 32) - NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / (1 << 32)


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field and the "now" of RTT maths."""
    return ntp >> 16 & 0xFFFFFFFF


def ntp_short_from_seconds(seconds: float) -> int:
    """A duration in NTP short format (1/65536 s), as the DLSR field wants it."""
    return min(max(round(seconds * 65536), 0), 0xFFFFFFFF)


def rtt_from_report_block(block: ReportBlock, now_ntp_middle32: int) -> float | None:
    """Round-trip time in seconds from a report block about our stream, or None.

    None when the block has no LSR (the peer has not received an SR yet). A result below zero,
    from clock granularity on a very short path, is reported as 0.
    """
    if block.lsr == 0:
        return None
    rtt = (now_ntp_middle32 - block.lsr - block.dlsr) & 0xFFFFFFFF
    if rtt >= 1 << 31:
        return 0.0
    return rtt / 65536
