"""H.264 Annex-B byte streams: splitting an access unit into NAL units and back.

The capture sources need just enough of this to flag IDR access units and to make sure every
IDR carries its SPS and PPS inline; the RTP packetizer has its own, fuller view of H.264.
"""

from __future__ import annotations

from collections.abc import Iterable

START_CODE = b"\x00\x00\x00\x01"

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9


def split_nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B buffer, without their start codes.

    Bytes before the first start code are ignored, as are empty NAL units; the trailing zero
    bytes that belong to a following 4-byte start code (or to trailing_zero_8bits) are removed.
    Never raises: arbitrary bytes give whatever NAL units they happen to contain.
    """
    units: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        unit = data[begin:end].rstrip(b"\x00")
        if unit:
            units.append(unit)
        start = nxt
    return units


def nal_type(unit: bytes) -> int:
    """The nal_unit_type of a NAL unit (its first byte's low five bits); -1 when empty."""
    return unit[0] & 0x1F if unit else -1


def join_nal_units(units: Iterable[bytes]) -> bytes:
    """An Annex-B buffer with a 4-byte start code before each NAL unit."""
    return b"".join(START_CODE + unit for unit in units)


def contains_idr(data: bytes) -> bool:
    """Whether an Annex-B access unit holds an IDR slice."""
    return any(nal_type(unit) == NAL_IDR for unit in split_nal_units(data))
