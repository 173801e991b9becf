"""RFC 3550 reports: SR, RR (with their report blocks), SDES and BYE."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from .header import PT_BYE, PT_RR, PT_SDES, PT_SR, RtcpPacketBase, build_packet, pack_fields

SDES_CNAME = 1

_U32 = struct.Struct("!I")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")


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
        return pack_fields(
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
class SenderReport(RtcpPacketBase):
    """SR (RFC 3550 section 6.4.1); ``ntp_timestamp`` is the full 64-bit NTP time."""

    PACKET_TYPE: ClassVar[int] = PT_SR

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
        body = pack_fields(
            _SENDER_INFO,
            self.ssrc,
            self.ntp_timestamp,
            self.rtp_timestamp,
            self.packet_count,
            self.octet_count,
        )
        body += b"".join(block.serialize() for block in self.reports)
        return build_packet(_check_count(self.reports, "report blocks"), PT_SR, body)


@dataclass(frozen=True, slots=True)
class ReceiverReport(RtcpPacketBase):
    """RR (RFC 3550 section 6.4.2)."""

    PACKET_TYPE: ClassVar[int] = PT_RR

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    @classmethod
    def _from_body(cls, count: int, body: bytes) -> Self:
        if len(body) < 4:
            raise ValueError("RTCP RR too short for its SSRC")
        return cls(_U32.unpack_from(body)[0], _parse_blocks(body[4:], count))

    def serialize(self) -> bytes:
        """The RR packet bytes."""
        body = pack_fields(_U32, self.ssrc) + b"".join(block.serialize() for block in self.reports)
        return build_packet(_check_count(self.reports, "report blocks"), PT_RR, body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk: an SSRC and its (item type, value) pairs, e.g. (SDES_CNAME, b"...")."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class SourceDescription(RtcpPacketBase):
    """SDES (RFC 3550 section 6.5)."""

    PACKET_TYPE: ClassVar[int] = PT_SDES

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
            body += pack_fields(_U32, chunk.ssrc)
            for item_type, value in chunk.items:
                if not 1 <= item_type <= 255 or len(value) > 255:
                    raise ValueError(f"RTCP SDES item {item_type} ({len(value)} bytes) invalid")
                body += bytes((item_type, len(value))) + value
            body += bytes(4 - len(body) % 4)
        return build_packet(_check_count(self.chunks, "SDES chunks"), PT_SDES, bytes(body))


@dataclass(frozen=True, slots=True)
class Bye(RtcpPacketBase):
    """BYE (RFC 3550 section 6.6); ``reason`` is None when the packet carries none."""

    PACKET_TYPE: ClassVar[int] = PT_BYE

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
        body = b"".join(pack_fields(_U32, ssrc) for ssrc in self.ssrcs)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise ValueError("RTCP BYE reason longer than 255 bytes")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return build_packet(_check_count(self.ssrcs, "SSRCs"), PT_BYE, body)
