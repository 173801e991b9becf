"""RFC 4585 / 5104 feedback: generic NACK, PLI, FIR, and REMB (PSFB application layer)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Self

from .header import (
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    PT_PSFB,
    PT_RTPFB,
    RtcpPacketBase,
    build_packet,
    pack_fields,
)

_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")
_NACK_FCI = struct.Struct("!HH")
_FIR_FCI = struct.Struct("!IB3x")


def _feedback_ssrcs(body: bytes, what: str) -> tuple[int, int]:
    if len(body) < 8:
        raise ValueError(f"RTCP {what} too short for its SSRCs")
    sender, media = _TWO_U32.unpack_from(body)
    return sender, media


@dataclass(frozen=True, slots=True)
class PictureLossIndication(RtcpPacketBase):
    """PLI (RFC 4585 section 6.3.1): the receiver lost picture data and needs a keyframe."""

    PACKET_TYPE: ClassVar[int] = PT_PSFB
    FMT: ClassVar[int | None] = FMT_PLI

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def _from_body(cls, fmt: int, body: bytes) -> Self:
        if len(body) != 8:
            raise ValueError("RTCP PLI must have no FCI")
        return cls(*_feedback_ssrcs(body, "PLI"))

    def serialize(self) -> bytes:
        """The PLI packet bytes."""
        return build_packet(
            FMT_PLI, PT_PSFB, pack_fields(_TWO_U32, self.sender_ssrc, self.media_ssrc)
        )


@dataclass(frozen=True, slots=True)
class FullIntraRequest(RtcpPacketBase):
    """FIR (RFC 5104 section 4.3.1): ``entries`` are (media SSRC, command sequence number)."""

    PACKET_TYPE: ClassVar[int] = PT_PSFB
    FMT: ClassVar[int | None] = FMT_FIR

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
        body = pack_fields(_TWO_U32, self.sender_ssrc, self.media_ssrc)
        body += b"".join(pack_fields(_FIR_FCI, ssrc, seq) for ssrc, seq in self.entries)
        return build_packet(FMT_FIR, PT_PSFB, body)


@dataclass(frozen=True, slots=True)
class GenericNack(RtcpPacketBase):
    """Generic NACK (RFC 4585 section 6.2.1) with the PID/BLP pairs expanded into ``lost``.

    ``serialize`` packs ``lost`` in the given order, as libwebrtc and aiortc do, so their
    packets round-trip; ``from_lost`` orders the numbers so that packing is minimal.
    """

    PACKET_TYPE: ClassVar[int] = PT_RTPFB
    FMT: ClassVar[int | None] = FMT_NACK

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
        body = pack_fields(_TWO_U32, self.sender_ssrc, self.media_ssrc)
        body += b"".join(_NACK_FCI.pack(pid, blp) for pid, blp in pairs)
        return build_packet(FMT_NACK, PT_RTPFB, body)


@dataclass(frozen=True, slots=True)
class Remb(RtcpPacketBase):
    """REMB (draft-alvestrand-rmcat-remb): PSFB fmt 15 with the 'REMB' identifier.

    The wire form is an 18-bit mantissa and a 6-bit exponent, so ``serialize`` keeps the top
    18 significant bits of ``bitrate`` (with the smallest exponent, as libwebrtc does).
    """

    PACKET_TYPE: ClassVar[int] = PT_PSFB
    FMT: ClassVar[int | None] = FMT_AFB

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

    @classmethod
    def matches(cls, fmt: int, packet_type: int, body: bytes) -> bool:
        """PSFB application-layer feedback whose identifier is 'REMB'."""
        return (packet_type, fmt) == (PT_PSFB, FMT_AFB) and body[8:12] == b"REMB"

    def serialize(self) -> bytes:
        """The REMB packet bytes."""
        if self.bitrate < 0 or len(self.ssrcs) > 255:
            raise ValueError("RTCP REMB bitrate negative or too many SSRCs")
        exponent = max(0, self.bitrate.bit_length() - 18)
        if exponent > 63:
            raise ValueError(f"RTCP REMB bitrate {self.bitrate} too large")
        body = pack_fields(_TWO_U32, self.sender_ssrc, self.media_ssrc) + b"REMB"
        body += _U32.pack(len(self.ssrcs) << 24 | exponent << 18 | self.bitrate >> exponent)
        body += b"".join(pack_fields(_U32, ssrc) for ssrc in self.ssrcs)
        return build_packet(FMT_AFB, PT_PSFB, body)
