"""hw/annexb.py: splitting Annex-B access units into NAL units."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType
from hypothesis import given
from hypothesis import strategies as st

from hw.annexb import (
    NAL_IDR,
    NAL_PPS,
    NAL_SLICE,
    NAL_SPS,
    START_CODE,
    contains_idr,
    join_nal_units,
    nal_type,
    split_nal_units,
)
from hw.frame import EncodedFrame

FIXTURES = Path(__file__).parents[1] / "rtc" / "data"


def libx264_access_units(count: int) -> list[bytes]:
    source = av.open("testsrc2=size=160x120:rate=30,format=yuv420p", format="lavfi")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 160, 120, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency"}
    units: list[bytes] = []
    for index, frame in enumerate(source.decode(video=0)):
        if index == count:
            break
        frame.pict_type = PictureType.NONE
        frame.pts = index
        units.extend(bytes(packet) for packet in encoder.encode(frame))
    source.close()
    return units


def test_real_libx264_access_units_split_and_rejoin() -> None:
    first, second = libx264_access_units(2)
    types = [nal_type(unit) for unit in split_nal_units(first)]
    assert types[:2] == [NAL_SPS, NAL_PPS]
    assert types[-1] == NAL_IDR
    assert contains_idr(split_nal_units(first))
    # zerolatency's sliced threads may cut a picture into several slices.
    assert {nal_type(unit) for unit in split_nal_units(second)} == {NAL_SLICE}
    assert not contains_idr(split_nal_units(second))
    # libx264 mixes 3- and 4-byte start codes; a rejoin uses 4-byte ones and keeps the units.
    rejoined = join_nal_units(split_nal_units(first))
    assert split_nal_units(rejoined) == split_nal_units(first)
    assert len(rejoined) - len(first) == first.count(b"\x00\x00\x01") - first.count(START_CODE)


def test_three_and_four_byte_start_codes_and_trailing_zeros() -> None:
    data = b"\xff\x00\x00\x01\x67\x42\x00\x00\x00\x00\x01\x68\xce\x00\x00\x01\x65\x88\x00"
    assert split_nal_units(data) == (b"\x67\x42", b"\x68\xce", b"\x65\x88")
    assert split_nal_units(b"") == ()
    assert split_nal_units(b"\x00\x00\x01") == ()
    assert split_nal_units(b"\x00\x00\x01\x00\x00\x01\x67") == (b"\x67",)  # empty NAL skipped
    assert split_nal_units(b"\x00" * 9 + b"\x01\x67" + b"\x00" * 50) == (b"\x67",)
    assert nal_type(b"") == -1


@given(st.lists(st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\x00", b"\x01"))))
def test_split_inverts_join(units: list[bytes]) -> None:
    assert split_nal_units(join_nal_units(units)) == tuple(units)


@given(st.binary(max_size=300))
def test_split_never_raises_and_yields_clean_units(data: bytes) -> None:
    for unit in split_nal_units(data):
        assert unit
        assert not unit.endswith(b"\x00")
        assert b"\x00\x00\x01" not in unit
    contains_idr(split_nal_units(data))
    assert join_nal_units([]) == b"" and START_CODE == b"\x00\x00\x00\x01"


def test_real_idr_fixture_keeps_every_nal_unit() -> None:
    data = (FIXTURES / "h264_baseline_320x240_idr.h264").read_bytes()
    units = split_nal_units(data)
    assert [nal_type(unit) for unit in units] == [9, 7, 8, 6, 5, 5]
    # libx264 mixes 4-byte start codes (first NAL, SPS, PPS) with 3-byte ones.
    start_code_bytes = len(data) - sum(len(unit) for unit in units)
    assert 3 * len(units) < start_code_bytes < 4 * len(units)


def test_leading_garbage_is_dropped_and_the_frame_keeps_its_idr() -> None:
    data = (FIXTURES / "h264_baseline_320x240_idr.h264").read_bytes()
    frame = EncodedFrame.from_annexb(b"\x17\x42garbage" + data, 0)
    assert frame.keyframe
    assert frame.nal_units == split_nal_units(data)
    assert frame.size == sum(len(unit) for unit in frame.nal_units)
    assert split_nal_units(frame.annexb()) == frame.nal_units
