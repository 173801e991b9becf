"""Serial number arithmetic (RFC 1982) for 32-bit TSNs and 16-bit stream sequence numbers."""

from __future__ import annotations

TSN_MASK = 0xFFFFFFFF
SSN_MASK = 0xFFFF


def tsn_add(tsn: int, delta: int) -> int:
    return (tsn + delta) & TSN_MASK


def tsn_distance(later: int, earlier: int) -> int:
    """``later - earlier`` as a signed number in (-2**31, 2**31]."""
    diff = (later - earlier) & TSN_MASK
    return diff - (1 << 32) if diff > 0x80000000 else diff


def tsn_gt(a: int, b: int) -> bool:
    return tsn_distance(a, b) > 0


def tsn_ge(a: int, b: int) -> bool:
    return tsn_distance(a, b) >= 0


def ssn_gt(a: int, b: int) -> bool:
    diff = (a - b) & SSN_MASK
    return 0 < diff < 0x8000


def ssn_add(ssn: int, delta: int) -> int:
    return (ssn + delta) & SSN_MASK
