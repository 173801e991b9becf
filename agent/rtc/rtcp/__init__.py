"""RTCP: RFC 3550 reports, RFC 4585/5104 feedback, REMB and transport-wide CC (pion's shape).

`header` holds what every packet shares (types, common header, RtcpPacketBase); one module
per family (`reports`, `feedback`, `twcc`) builds on it; `compound` is the one dispatcher
(`parse_compound`) and imports the families, never the other way; `ntp` the SR/RR clock
maths. Every class serializes back to the bytes it was parsed from for the encodings real
senders produce (libwebrtc and aiortc fixtures in the tests).
"""

from .compound import RtcpPacket, UnknownRtcp, parse_compound, serialize_compound
from .feedback import FullIntraRequest, GenericNack, PictureLossIndication, Remb
from .header import (
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    FMT_TWCC,
    PT_APP,
    PT_BYE,
    PT_PSFB,
    PT_RR,
    PT_RTPFB,
    PT_SDES,
    PT_SR,
    RTCP_VERSION,
    RtcpPacketBase,
)
from .ntp import (
    NTP_UNIX_OFFSET,
    ntp_from_unix,
    ntp_middle32,
    ntp_short_from_seconds,
    rtt_from_report_block,
    unix_from_ntp,
)
from .reports import (
    SDES_CNAME,
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
)
from .twcc import TWCC_LARGE_DELTA, TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA, TransportWideCC

__all__ = [
    "FMT_AFB",
    "FMT_FIR",
    "FMT_NACK",
    "FMT_PLI",
    "FMT_TWCC",
    "NTP_UNIX_OFFSET",
    "PT_APP",
    "PT_BYE",
    "PT_PSFB",
    "PT_RR",
    "PT_RTPFB",
    "PT_SDES",
    "PT_SR",
    "RTCP_VERSION",
    "SDES_CNAME",
    "TWCC_LARGE_DELTA",
    "TWCC_NOT_RECEIVED",
    "TWCC_SMALL_DELTA",
    "Bye",
    "FullIntraRequest",
    "GenericNack",
    "PictureLossIndication",
    "ReceiverReport",
    "Remb",
    "ReportBlock",
    "RtcpPacket",
    "RtcpPacketBase",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "TransportWideCC",
    "UnknownRtcp",
    "ntp_from_unix",
    "ntp_middle32",
    "ntp_short_from_seconds",
    "parse_compound",
    "rtt_from_report_block",
    "serialize_compound",
    "unix_from_ntp",
]
