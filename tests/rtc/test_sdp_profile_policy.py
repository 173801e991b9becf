"""The H.264 profile policy of agent/rtc/sdp/negotiate.py (PROTOCOL.md section 4, issue 8.6).

The answer uses the stream's own profile where the offer has it, else an offered profile that
decodes the stream (constrained baseline: baseline, main, high; main: high), never one that
cannot. Offers are the captured Chromium one with its video m= line cut down to the payload
types a case wants: 102 baseline, 108 constrained baseline, 116 main (or high, rewritten),
41 predictive high 4:4:4.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.rtc.sdp import NegotiationError, Offer, select_h264
from tests.rtc.test_sdp import answer_for

DATA = Path(__file__).parent / "data"
HIGH = "high"  # marker: offer 116 as High (64001f) instead of Main


def offer_with(payload_types: str) -> Offer:
    text = (DATA / "chromium_offer_video_dc.sdp").read_text().replace("\r\n", "\n")
    lines = []
    for line in text.split("\n"):
        if line.startswith("m=video"):
            line = "m=video 9 UDP/TLS/RTP/SAVPF " + payload_types.replace(HIGH, "116")
        if HIGH in payload_types and line.startswith("a=fmtp:116 "):
            line = line.replace("profile-level-id=4d001f", "profile-level-id=64001f")
        lines.append(line)
    return Offer.parse("\r\n".join(lines))


@pytest.mark.parametrize(
    ("stream", "offered", "chosen"),
    [
        ("42e01f", "102 108 116", 108),  # its own profile wherever it is listed
        ("42e01f", "116 102", 102),  # closest that decodes it: baseline before main
        ("42e01f", "116", 116),  # Main only (Chromium setCodecPreferences): -32004 before
        ("42e01f", HIGH, 116),
        ("4d001f", f"{HIGH} 108", 116),  # main as high
        ("4d001f", "116 108", 116),
        ("42001f", "102 108", 102),
        ("f4001f", "41 116", 41),
        # Debian's Chromium has no High but f4001f (High 4:4:4 Predictive), whose decoders
        # decode High and so constrained baseline and main too (H.264 A.2).
        ("42e01f", "41", 41),
        ("4d001f", "41 102", 41),
    ],
)
def test_answers_a_profile_that_decodes_the_stream(stream: str, offered: str, chosen: int) -> None:
    video = offer_with(offered).video
    assert video is not None and select_h264(video, stream).payload_type == chosen


@pytest.mark.parametrize(
    ("stream", "offered"),
    [
        ("4d001f", "108 102"),  # a main stream does not play in a baseline decoder
        ("42001f", "108 116"),  # baseline (FMO/ASO allowed) is no constrained baseline
        ("64001f", "116"),  # high does not fit main
        ("640c1f", "108 116"),
    ],
)
def test_never_answers_a_profile_that_cannot_decode_it(stream: str, offered: str) -> None:
    video = offer_with(offered).video
    assert video is not None
    with pytest.raises(NegotiationError, match=f"no H.264 payload type with profile {stream[:4]}"):
        select_h264(video, stream)


def test_main_only_answer_names_main_at_the_streams_level() -> None:
    answer = answer_for(offer_with("116"), stream_profile_level_id="42e028")
    assert answer.h264 is not None and answer.h264.payload_type == 116
    assert "a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d0028" in (
        answer.sdp
    )


def test_no_usable_h264_names_why() -> None:
    # Only packetization-mode=0 payload types: none usable, and the error says what is missing.
    with pytest.raises(NegotiationError) as caught:
        answer_for(offer_with("104 114"))
    message = str(caught.value)
    also = "baseline, main, constrained-high, high, predictive-high-444"
    assert f"42e0 (constrained baseline) or one that decodes it ({also})" in message
    assert "packetization-mode=1" in message and "m=video section (mid 0)" in message
