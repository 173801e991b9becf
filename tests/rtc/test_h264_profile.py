"""Tests for agent/rtc/h264_profile.py: the libwebrtc profile table and H.264 fmtp handling."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.rtc.h264_profile import (
    DEFAULT_PROFILE_LEVEL_ID,
    H264Format,
    answer_format,
    choose_format,
    fmtp,
    h264_format,
    h264_formats,
    h264_profile,
    profile_level_id_level,
)
from agent.rtc.sdp import RtpCodec


@pytest.mark.parametrize(
    ("profile_level_id", "profile"),
    [
        ("42e01f", "constrained-baseline"),
        ("42E01F", "constrained-baseline"),
        ("42f00b", "constrained-baseline"),  # level 1b: constraint_set3 is a don't-care bit
        ("42c01f", "constrained-baseline"),
        ("42401f", "constrained-baseline"),
        ("4d801f", "constrained-baseline"),
        ("58c01f", "constrained-baseline"),
        ("42001f", "baseline"),
        ("42801f", "baseline"),
        ("58801f", "baseline"),
        ("4d001f", "main"),
        ("4d4028", "main"),
        ("64001f", "high"),
        ("640032", "high"),
        ("640c1f", "constrained-high"),
        ("f4001f", "predictive-high-444"),
    ],
)
def test_h264_profile_table(profile_level_id: str, profile: str) -> None:
    assert h264_profile(profile_level_id) == profile


@pytest.mark.parametrize(
    "profile_level_id", ["42081f", "58001f", "4d201f", "64081f", "6e001f", "000000", "42e0", "zz"]
)
def test_h264_profile_unknown_or_malformed(profile_level_id: str) -> None:
    with pytest.raises(ValueError):
        h264_profile(profile_level_id)


@given(st.text(alphabet="0123456789abcdefABCDEFx", max_size=8) | st.text(max_size=8))
def test_h264_profile_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        assert h264_profile(text) in {
            "constrained-baseline",
            "baseline",
            "main",
            "high",
            "constrained-high",
            "predictive-high-444",
        }


def test_level_byte() -> None:
    assert profile_level_id_level("42e01f") == 0x1F
    assert profile_level_id_level("640028") == 40


def test_h264_format_defaults_and_validation() -> None:
    fmt = h264_format(96, {}, ("nack",), None)
    assert fmt == H264Format(96, DEFAULT_PROFILE_LEVEL_ID, 0, False, ("nack",), None)
    fmt = h264_format(
        102,
        {"profile-level-id": "42E01F", "packetization-mode": "1", "level-asymmetry-allowed": "1"},
        (),
        103,
    )
    assert (fmt.profile_level_id, fmt.packetization_mode, fmt.level_asymmetry_allowed) == (
        "42e01f",
        1,
        True,
    )
    assert fmt.profile == "constrained-baseline" and fmt.rtx_payload_type == 103
    for params, name in [
        ({"profile-level-id": "42e01"}, "profile-level-id"),
        ({"packetization-mode": "x"}, "packetization-mode"),
        ({"level-asymmetry-allowed": "yes"}, "level-asymmetry-allowed"),
    ]:
        with pytest.raises(ValueError, match=name):
            h264_format(96, params, (), None)
    assert h264_format(96, {"profile-level-id": "58001f"}, (), None).profile is None


def test_h264_formats_pairs_rtx_by_apt() -> None:
    codecs = [
        RtpCodec(96, "VP8", 90000, None, {}, ()),
        RtpCodec(97, "rtx", 90000, None, {"apt": "96"}, ()),
        RtpCodec(102, "h264", 90000, None, {"packetization-mode": "1"}, ("nack",)),
        RtpCodec(103, "rtx", 90000, None, {"apt": "102"}, ()),
        RtpCodec(104, "H264", 8000, None, {}, ()),  # wrong clock: not H.264 video
    ]
    formats = h264_formats(codecs)
    assert [(f.payload_type, f.rtx_payload_type) for f in formats] == [(102, 103)]
    with pytest.raises(ValueError, match="apt"):
        h264_formats([RtpCodec(97, "rtx", 90000, None, {"apt": "200"}, ())])


def test_choose_and_answer_format() -> None:
    mode0 = H264Format(104, "42e01f", 0, True, ("nack", "nack pli"), 105)
    plain = H264Format(106, "42e01f", 1, True, ("goog-remb",), None)
    full = H264Format(108, "42c01f", 1, True, ("transport-cc", "nack", "nack pli"), 109)
    assert choose_format([mode0, plain, full], "constrained-baseline") is full
    assert choose_format([mode0, plain], "constrained-baseline") is plain
    assert choose_format([mode0, plain, full], "high") is None
    answered = answer_format(full, "42e033", ("nack", "nack pli", "ccm fir"))
    assert answered == H264Format(108, "42c033", 1, True, ("nack", "nack pli"), None)
    assert fmtp(answered) == (
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c033"
    )


@pytest.mark.parametrize(
    ("offered", "stream", "message"),
    [
        ("42e01f", "42e028", "stream level 4.0 is above the offered 3.1"),
        ("42e01f", "42e020", "stream level 3.2 is above the offered 3.1"),
        ("42f00b", "42e00b", "stream level 1.1 is above the offered 1b"),  # constraint_set3
        ("64000a", "640009", "stream level 1b is above the offered 1.0"),  # High: level_idc 9
    ],
)
def test_answer_level_above_the_offer_needs_level_asymmetry(
    offered: str, stream: str, message: str
) -> None:
    fmt = H264Format(102, offered, 1, False, ("nack",), None)
    with pytest.raises(
        ValueError, match=f"^{message} and the offer does not allow level asymmetry$"
    ):
        answer_format(fmt, stream, ("nack",))
    allowed = answer_format(replace(fmt, level_asymmetry_allowed=True), stream, ("nack",))
    assert allowed.level_asymmetry_allowed
    assert allowed.profile_level_id == offered[:4] + stream[4:]


@pytest.mark.parametrize(
    ("offered", "stream"),
    [("42e01f", "42e01f"), ("42e01f", "42e015"), ("42e00b", "42f00b"), ("64000b", "640009")],
)
def test_answer_level_within_the_offer_echoes_no_level_asymmetry(offered: str, stream: str) -> None:
    answered = answer_format(H264Format(102, offered, 1, False, (), None), stream, ())
    assert not answered.level_asymmetry_allowed
    assert answered.profile_level_id == offered[:4] + stream[4:]
    assert fmtp(answered) == (
        f"level-asymmetry-allowed=0;packetization-mode=1;profile-level-id={offered[:4]}{stream[4:]}"
    )
