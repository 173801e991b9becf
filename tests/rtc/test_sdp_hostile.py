"""Hostile offers against agent/rtc/sdp: the caps, and work bounded by the offer's size.

Issue 12 break 1: a 65 KB offer listing payload type 96 7,250 times, with 1,250 distinct
a=rtcp-fb:* and 1,250 a=rtcp-fb:96 lines, kept the event loop busy for 62 s (the per-format
feedback merge compared every pair). The bound here is on work counted by tests/rtc/cost.py,
never on time.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.rtc import sdp
from agent.rtc.sdp import NegotiationError, Offer
from tests.rtc.cost import assert_linear, count_work

DATA = Path(__file__).parent / "data"
# Opcodes per character of SDP, and a constant: the real fixtures need about 25 per char.
K, C = 60, 20_000


def chromium_lines() -> list[str]:
    return (DATA / "chromium_offer_video_dc.sdp").read_text().replace("\r\n", "\n").split("\n")


def with_video(formats: str, extra: list[str]) -> str:
    """The Chromium fixture with its video m= line's formats replaced and `extra` a= lines."""
    out: list[str] = []
    for line in chromium_lines():
        if line.startswith("m=video"):
            line = "m=video 9 UDP/TLS/RTP/SAVPF " + formats
        out.append(line)
        if line == "a=mid:0":
            out += extra
    return "\r\n".join(out)


def issue_12_offer() -> str:
    """The shape of issue 12's offer, at its size."""
    fb = [f"a=rtcp-fb:* {i}" for i in range(1250)] + [f"a=rtcp-fb:96 {i}" for i in range(1250)]
    return with_video(" ".join(["96"] * 7250), fb)


def test_issue_12_offer_is_refused_with_bounded_work_naming_the_cap() -> None:
    text = issue_12_offer()
    assert 60_000 < len(text) < 72_000  # the issue: 65,483 bytes
    result = assert_linear(Offer.parse, text, K, C)
    assert isinstance(result, NegotiationError) and "(the cap)" in str(result)


def test_repeated_formats_are_parsed_once() -> None:
    offer = Offer.parse(with_video("96 96 96 97 96", []))
    video = next(s for s in offer.sections if s.kind == "video")
    assert video.formats == ["96", "97"]
    assert [c.payload_type for c in video.codecs] == [96, 97]


def test_repeated_feedback_lines_merge_into_one_entry() -> None:
    extra = ["a=rtcp-fb:* nack"] * 400 + ["a=rtcp-fb:96 nack pli"] * 400
    offer = Offer.parse(with_video("96 97", extra))
    codec = next(s for s in offer.sections if s.kind == "video").codecs[0]
    assert codec.rtcp_fb.count("nack") == 1 and codec.rtcp_fb.count("nack pli") == 1


@pytest.mark.parametrize(
    ("text", "cap"),
    [
        (with_video(" ".join(["96"] * (sdp.MAX_FORMATS + 1)), []), "formats"),
        (with_video("96", ["a=x-junk"] * sdp.MAX_ATTRIBUTES_PER_SECTION), "a= lines"),
        (with_video("96", ["a=x-long:" + "y" * sdp.MAX_LINE_LENGTH]), "longer than"),
        (
            with_video(
                "96", [f"a=rtcp-fb:96 z-{i}" for i in range(sdp.MAX_RTCP_FB_PER_PAYLOAD_TYPE)]
            ),
            "rtcp-fb",
        ),
        (
            "\r\n".join(chromium_lines()[:-1] + ["m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:x"] * 64),
            "m= sections",
        ),
    ],
)
def test_each_cap_is_refused_by_name(text: str, cap: str) -> None:
    with pytest.raises(NegotiationError, match=cap) as caught:
        Offer.parse(text)
    assert "(the cap)" in str(caught.value)


def test_offers_just_under_the_caps_parse() -> None:
    fb = [f"a=rtcp-fb:96 z-{i}" for i in range(sdp.MAX_RTCP_FB_PER_PAYLOAD_TYPE - 8)]
    assert Offer.parse(with_video(" ".join(str(pt) for pt in range(128)), fb)).video is not None


def test_real_offers_cost_well_under_the_bound() -> None:
    for path in sorted(DATA.glob("*_offer_*.sdp")):
        text = path.read_text()
        work, result = count_work(Offer.parse, text)
        assert isinstance(result, Offer), path.name
        assert work <= K * len(text) // 2, (path.name, work, len(text))
