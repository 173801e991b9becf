"""NTP time for SR/RR round-trip estimation (RFC 3550 section 6.4.1)."""

from __future__ import annotations

import math

from .reports import ReportBlock

# Seconds from the NTP epoch (1900) to the Unix epoch (1970).
NTP_UNIX_OFFSET = 2_208_988_800


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
