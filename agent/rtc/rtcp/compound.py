"""The one dispatcher: an RTCP compound split and each packet parsed by its family.

It imports the families (reports, feedback, twcc); they never import it. Types it does not
know come back as UnknownRtcp rather than failing the whole datagram.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Self, TypeAlias

from .feedback import FullIntraRequest, GenericNack, PictureLossIndication, Remb
from .header import (
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
    build_packet,
    split_packet,
)
from .reports import Bye, ReceiverReport, SenderReport, SourceDescription
from .twcc import TransportWideCC


@dataclass(frozen=True, slots=True)
class UnknownRtcp:
    """A packet type or feedback format this package does not decode, kept as its body."""

    packet_type: int
    fmt: int
    body: bytes

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Parse one RTCP packet that no family decodes; raises ValueError otherwise."""
        packets = parse_compound(data)
        if len(packets) != 1:
            raise ValueError(f"expected one RTCP packet, found {len(packets)}")
        packet = packets[0]
        if not isinstance(packet, cls):
            raise ValueError(f"expected {cls.__name__}, found {type(packet).__name__}")
        return packet

    def serialize(self) -> bytes:
        """The packet bytes, the body padded to a word if needed."""
        if not 0 <= self.packet_type <= 255:
            raise ValueError(f"RTCP packet type {self.packet_type} out of range")
        return build_packet(self.fmt, self.packet_type, self.body)


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
    if Remb.matches(fmt, packet_type, body):
        return Remb._from_body(FMT_AFB, body)
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
        fmt, packet_type, body, pos = split_packet(data, pos)
        packets.append(_parse_one(fmt, packet_type, body))
    return packets


def serialize_compound(packets: Iterable[RtcpPacket]) -> bytes:
    """Concatenate the packets' serializations into one compound."""
    return b"".join(packet.serialize() for packet in packets)
