"""H.264 Annex-B byte streams: the project's one splitter of access units into NAL units.

Every capture source splits each access unit here, once, on its own thread; the frame then
travels as NAL units (``EncodedFrame.nal_units``) and nothing downstream (fan-out, RTP
packetizer) scans Annex-B again.
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


def split_nal_units(data: bytes) -> tuple[bytes, ...]:
    """The NAL units of an Annex-B buffer, without their start codes.

    Accepts 3- and 4-byte start codes. Bytes before the first start code are ignored (some
    encoders emit a stray prefix; a viewer cannot use it anyway), as are empty NAL units; the
    zero bytes before a start code (the 4-byte start code's first byte, trailing_zero_8bits)
    are removed: a NAL unit never ends in 0x00, its last byte holds the rbsp stop bit.
    Never raises, and runs in time linear in ``len(data)``.
    """
    units: list[bytes] = []
    view = memoryview(data)
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        begin = start + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        # Usually at most one zero to trim; long zero runs (padding) go to rstrip's C loop.
        for _ in range(4):
            if end == begin or data[end - 1] != 0:
                break
            end -= 1
        else:
            end = begin + len(bytes(view[begin:end]).rstrip(b"\x00"))
        if end > begin:
            units.append(data[begin:end])
        start = nxt
    return tuple(units)


def nal_type(unit: bytes) -> int:
    """The nal_unit_type of a NAL unit (its first byte's low five bits); -1 when empty."""
    return unit[0] & 0x1F if unit else -1


def join_nal_units(units: Iterable[bytes]) -> bytes:
    """An Annex-B buffer with a 4-byte start code before each NAL unit."""
    return b"".join(START_CODE + unit for unit in units)


def contains_idr(units: Iterable[bytes]) -> bool:
    """Whether an access unit's NAL units hold an IDR slice."""
    return any(nal_type(unit) == NAL_IDR for unit in units)


class ParameterSetCache:
    """The latest SPS and PPS seen, to put in front of an IDR that arrives without them."""

    def __init__(self, extradata: bytes | None) -> None:
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        # Annex-B extradata (TS, raw) holds them directly; avcC extradata is the BSF's business.
        if extradata and (
            extradata.startswith(b"\x00\x00\x01") or extradata.startswith(b"\x00\x00\x00\x01")
        ):
            self.observe(split_nal_units(extradata))

    def observe(self, units: tuple[bytes, ...]) -> None:
        for unit in units:
            if nal_type(unit) == NAL_SPS:
                self.sps = unit
            elif nal_type(unit) == NAL_PPS:
                self.pps = unit

    def complete(self, data: bytes) -> tuple[tuple[bytes, ...], bool]:
        """The access unit's NAL units, SPS/PPS inserted if it is an IDR lacking them; is-IDR."""
        units = split_nal_units(data)
        types = [nal_type(unit) for unit in units]
        self.observe(units)
        if NAL_IDR not in types:
            return units, False
        missing = [
            ps
            for ps, kind in ((self.sps, NAL_SPS), (self.pps, NAL_PPS))
            if ps is not None and kind not in types
        ]
        if not missing:
            return units, True
        # After an access unit delimiter, which must stay first.
        at = 1 if types and types[0] == NAL_AUD else 0
        return (*units[:at], *missing, *units[at:]), True
