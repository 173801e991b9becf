"""Tests for the agent/rtc/sdp/ package (parse, negotiate, write) and agent/rtc/h264_profile.py.

Fixtures in tests/rtc/data/*_offer_*.sdp are offers captured from real peers, loopback only:
- aiortc 1.16 (aioice host addresses limited to 127.0.0.1): video recvonly; video + audio +
  datachannel "control"; datachannel only.
- Debian Chromium 156 headless (Playwright, `unshare -n` with only lo, media permission granted
  through a fake getUserMedia, without which Chromium gathers no loopback candidate): video
  recvonly + datachannel; video + audio + datachannel; datachannel only. Later, the same way
  but through tests/tools/isolated.sh and tests.infra.browsers.open_page (which grants the
  permission), each after ICE gathering completed: bundlePolicy max-bundle with audio then
  video recvonly (maxbundle_audio_video); max-bundle re-offer with the datachannel first
  (maxbundle_dc_video: the datachannel was negotiated alone with a second in-page
  RTCPeerConnection, then a video recvonly transceiver added, since Chromium's first offer
  always puts the datachannel last); video sendonly then video recvonly.
- Debian Firefox ESR headless (prefs ice.loopback, no host obfuscation; SDP written with
  dump()): video recvonly + datachannel (no H.264 here: OpenH264 is not installed) and
  datachannel only. Firefox puts a=fingerprint and a direction at session level.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.rtc import h264_profile as h264_profile_module
from agent.rtc import sdp as sdp_module
from agent.rtc.sdp import (
    ANSWER_MAX_MESSAGE_SIZE,
    TRANSPORT_CC_URI,
    Answer,
    Fingerprint,
    LocalUsageError,
    NegotiationError,
    Offer,
    PreferredSetup,
    answer_setup,
    build_answer,
    is_end_of_candidates,
    select_h264,
)

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(p.name for p in DATA.glob("*_offer_*.sdp"))
# A real certificate's fingerprint (aiortc's RTCCertificate), used as "ours" in answers.
OUR_FINGERPRINT = Fingerprint(
    "sha-256",
    "40:F2:34:A0:E1:1F:1A:CB:99:02:B6:47:D1:D9:37:F3:18:16:55:71:A2:3A:83:89:AA:46:0A:6D:8E:7E:3D:CA",
)
OUR_CANDIDATE = "1 1 udp 2130706431 127.0.0.1 50000 typ host"


def load(name: str) -> str:
    # CRLF as captured, even if a checkout converted line endings
    return (DATA / name).read_bytes().decode().replace("\r\n", "\n").replace("\n", "\r\n")


def edit(text: str, change: str) -> str:
    """The fixture changed: "-REGEX" drops matching lines, "OLD => NEW" replaces OLD once."""
    if change.startswith("-"):
        return "\r\n".join(x for x in text.split("\r\n") if not re.search(change[1:], x))
    old, new = change.split(" => ")
    assert old in text, f"fixture lacks {old!r}"
    return text.replace(old, new, 1)


def answer_for(offer: Offer, **overrides: object) -> Answer:
    args: dict[str, object] = dict(
        ice_ufrag="dev1",
        ice_pwd="abcdefghijklmnopqrstuv",
        fingerprint=OUR_FINGERPRINT,
        setup="active",
        candidates=[OUR_CANDIDATE],
        end_of_candidates=True,
        stream_profile_level_id="42e01f",
        ssrc=0x12345678,
        cname="edgecam",
        msid=("edgecam", "video0"),
        session_id=4242,
        accept_datachannel=True,
    )
    args.update(overrides)
    return build_answer(offer, **args)  # type: ignore[arg-type]


def sections_of(sdp: str) -> list[list[str]]:
    """The answer's lines split into session block + one block per m= line."""
    blocks: list[list[str]] = [[]]
    for line in sdp.split("\r\n")[:-1]:
        if line.startswith("m="):
            blocks.append([])
        blocks[-1].append(line)
    return blocks


# --- the real fixtures --------------------------------------------------------------------


@pytest.mark.parametrize("name", FIXTURES)
def test_every_fixture_parses_with_its_own_lines(name: str) -> None:
    text = load(name)
    offer = Offer.parse(text)
    mlines = [line for line in text.split("\r\n") if line.startswith("m=")]
    assert [f"m={s.kind} {s.port} {s.protocol} {' '.join(s.formats)}" for s in offer.sections] == (
        mlines
    )
    assert offer.setup == "actpass"
    assert f"a=ice-ufrag:{offer.ice_ufrag}" in text
    assert f"a=ice-pwd:{offer.ice_pwd}" in text
    for fingerprint in offer.fingerprints:
        assert f"a=fingerprint:{fingerprint.serialize()}" in text
    offered = [line[12:] for line in text.split("\r\n") if line.startswith("a=candidate:")]
    assert [c for s in offer.sections for c in s.candidates] == offered
    assert all(s.end_of_candidates for s in offer.sections) == ("a=end-of-candidates" in text)
    assert offer.bundle == [s.mid for s in offer.sections]


def test_chromium_offer_details() -> None:
    offer = Offer.parse(load("chromium_offer_video_audio_dc.sdp"))
    assert [(s.kind, s.mid) for s in offer.sections] == [
        ("video", "0"),
        ("audio", "1"),
        ("application", "2"),
    ]
    video = offer.video
    assert video is not None and video.direction == "recvonly" and video.rtcp_mux
    h264 = [
        (f.payload_type, f.profile_level_id, f.packetization_mode, f.rtx_payload_type)
        for f in video.h264
    ]
    assert h264 == [
        (102, "42001f", 1, 103),
        (104, "42001f", 0, 107),
        (108, "42e01f", 1, 109),
        (114, "42e01f", 0, 115),
        (116, "4d001f", 1, 117),
        (39, "4d001f", 0, 40),
        (41, "f4001f", 1, 42),
        (43, "f4001f", 0, 44),
    ]
    assert all(f.level_asymmetry_allowed for f in video.h264)
    assert video.h264[0].rtcp_fb == ("goog-remb", "transport-cc", "ccm fir", "nack", "nack pli")
    assert [e.id for e in video.extmaps] == list(range(1, 12))
    assert video.extmaps[3].uri.endswith("transport-wide-cc-extensions-01")
    assert len(video.candidates) == 2 and "127.0.0.1" in video.candidates[0]
    assert offer.fingerprints[0].algorithm == "sha-256"
    assert offer.ice_options == ("trickle",)
    app = offer.application
    assert app is not None and app.sctp_port == 5000 and app.max_message_size == 262144
    assert app.formats == ["webrtc-datachannel"] and app.codecs == []


def test_aiortc_offer_details() -> None:
    offer = Offer.parse(load("aiortc_offer_video_audio_dc.sdp"))
    assert [f.algorithm for f in offer.fingerprints] == ["sha-256", "sha-384", "sha-512"]
    video = offer.video
    assert video is not None
    assert [(f.payload_type, f.profile_level_id, f.rtx_payload_type) for f in video.h264] == [
        (99, "42001f", 100),
        (101, "42e01f", 102),
    ]
    assert video.h264[1].rtcp_fb == ("nack", "nack pli", "goog-remb")
    assert [c.name for c in video.codecs] == ["VP8", "rtx", "H264", "rtx", "H264", "rtx"]
    audio = offer.sections[1]
    assert audio.kind == "audio" and [c.name for c in audio.codecs] == [
        "opus",
        "G722",
        "PCMU",
        "PCMA",
    ]
    assert audio.codecs[0].channels == 2 and audio.codecs[0].clock_rate == 48000


def test_firefox_session_level_attributes_apply_to_sections() -> None:
    text = load("firefox_offer_video_dc.sdp")
    offer = Offer.parse(text)
    video, app = offer.video, offer.application
    assert video is not None and app is not None
    # a=fingerprint and a=sendrecv are only at session level in Firefox's offer.
    assert video.fingerprints == app.fingerprints == offer.fingerprints
    assert len(offer.fingerprints) == 1
    assert video.direction == "recvonly" and app.direction == "sendrecv"
    assert video.h264 == [] and [c.name for c in video.codecs][:2] == ["VP8", "rtx"]
    # component 2 (RTCP) candidates are kept: choosing components is the ICE layer's job
    assert len(video.candidates) == 4
    assert video.extmaps[3].direction == "recvonly"
    assert app.max_message_size == 1073741823


# --- answers ------------------------------------------------------------------------------

ANSWERABLE = [n for n in FIXTURES if not n.startswith("firefox_offer_video")]


@pytest.mark.parametrize("name", ANSWERABLE)
def test_answer_is_well_formed_and_mirrors_the_offer(name: str) -> None:
    offer = Offer.parse(load(name))
    answer = answer_for(offer)
    sdp = answer.sdp
    assert sdp.endswith("\r\n") and "\n" not in sdp.replace("\r\n", "")
    session, *blocks = sections_of(sdp)
    assert session[:4] == ["v=0", "o=- 4242 1 IN IP4 0.0.0.0", "s=-", "t=0 0"]
    assert f"a=group:BUNDLE {' '.join(answer.mids)}" in session
    assert [b[0].split()[0] for b in blocks] == [f"m={s.kind}" for s in offer.sections]
    assert [next(x for x in b if x.startswith("a=mid:")) for b in blocks] == [
        f"a=mid:{s.mid}" for s in offer.sections
    ]
    for section, block in zip(offer.sections, blocks, strict=True):
        port = block[0].split()[1]
        if section.mid not in answer.mids:
            assert port == "0" and "a=inactive" in block and section.kind != "video"
            continue
        assert port == "9" and block[1] == "c=IN IP4 0.0.0.0"
        for attribute in (
            "a=ice-ufrag:dev1",
            "a=ice-pwd:abcdefghijklmnopqrstuv",
            "a=ice-options:trickle",
            f"a=fingerprint:{OUR_FINGERPRINT.serialize()}",
            "a=setup:active",
        ):
            assert attribute in block
        has_candidates = f"a=candidate:{OUR_CANDIDATE}" in block
        assert has_candidates == (section.mid == answer.transport_mid)
        assert ("a=end-of-candidates" in block) == has_candidates
        extmaps = [line for line in block if line.startswith("a=extmap")]
        if section.mid == answer.video_mid and answer.transport_cc_id is not None:
            assert extmaps == [f"a=extmap:{answer.transport_cc_id} {TRANSPORT_CC_URI}"]
        else:
            assert extmaps == []
    assert answer.transport_mid == answer.mids[0]
    transport = offer.section(answer.transport_mid)
    assert transport is not None and answer.remote_candidates == transport.candidates


@pytest.mark.parametrize("name", ANSWERABLE)
def test_answer_round_trips_through_our_parser(name: str) -> None:
    offer = Offer.parse(load(name))
    answer = answer_for(offer)
    parsed = Offer.parse(answer.sdp)
    assert [(s.kind, s.mid) for s in parsed.sections] == [(s.kind, s.mid) for s in offer.sections]
    assert parsed.bundle == answer.mids
    assert (parsed.ice_ufrag, parsed.ice_pwd, parsed.setup) == (
        "dev1",
        "abcdefghijklmnopqrstuv",
        "active",
    )
    assert parsed.fingerprints == [OUR_FINGERPRINT]
    assert [s.mid for s in parsed.sections if not s.rejected] == answer.mids
    if answer.video_mid is None:
        assert answer.h264 is None and parsed.video is None
    else:
        video = parsed.section(answer.video_mid)
        assert video is not None and video.h264 == [answer.h264]
        assert video.direction == "sendonly"
        assert [(e.id, e.uri) for e in video.extmaps] == (
            [] if answer.transport_cc_id is None else [(answer.transport_cc_id, TRANSPORT_CC_URI)]
        )
    if answer.datachannel_mid is not None:
        app = parsed.application
        assert app is not None and (app.sctp_port, app.max_message_size) == (
            5000,
            ANSWER_MAX_MESSAGE_SIZE,
        )


def test_video_section_of_the_answer() -> None:
    offer = Offer.parse(load("chromium_offer_video_audio_dc.sdp"))
    answer = answer_for(offer, stream_profile_level_id="42e028")
    video = sections_of(answer.sdp)[1]
    assert video == [
        "m=video 9 UDP/TLS/RTP/SAVPF 108",
        "c=IN IP4 0.0.0.0",
        f"a=candidate:{OUR_CANDIDATE}",
        "a=end-of-candidates",
        "a=ice-ufrag:dev1",
        "a=ice-pwd:abcdefghijklmnopqrstuv",
        "a=ice-options:trickle",
        f"a=fingerprint:{OUR_FINGERPRINT.serialize()}",
        "a=setup:active",
        "a=mid:0",
        "a=sendonly",
        "a=msid:edgecam video0",
        f"a=extmap:4 {TRANSPORT_CC_URI}",
        "a=rtcp-mux",
        "a=rtpmap:108 H264/90000",
        "a=rtcp-fb:108 nack",
        "a=rtcp-fb:108 nack pli",
        "a=rtcp-fb:108 ccm fir",
        "a=rtcp-fb:108 goog-remb",
        "a=rtcp-fb:108 transport-cc",
        "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e028",
        "a=ssrc:305419896 cname:edgecam",
    ]
    assert answer.h264 is not None
    assert answer.h264.rtcp_fb == ("nack", "nack pli", "ccm fir", "goog-remb", "transport-cc")
    assert answer.transport_cc_id == 4 and answer.rtx_ssrc is None
    assert answer.h264.rtx_payload_type is None and answer.send_video
    assert "rtx" not in answer.sdp
    assert (answer.video_mid, answer.datachannel_mid, answer.remote_sctp_port) == ("0", "2", 5000)


def test_rtx_is_answered_with_its_own_ssrc_when_asked_for() -> None:
    offer = Offer.parse(load("chromium_offer_video_audio_dc.sdp"))
    answer = answer_for(offer, stream_profile_level_id="42e028", rtx_ssrc=0x0BADCAFE)
    video = sections_of(answer.sdp)[1]
    assert answer.h264 is not None and answer.h264.rtx_payload_type == 109
    assert answer.rtx_ssrc == 0x0BADCAFE
    assert video[0] == "m=video 9 UDP/TLS/RTP/SAVPF 108 109"
    assert video[-5:] == [
        "a=rtpmap:109 rtx/90000",
        "a=fmtp:109 apt=108",
        f"a=ssrc-group:FID 305419896 {0x0BADCAFE}",
        "a=ssrc:305419896 cname:edgecam",
        f"a=ssrc:{0x0BADCAFE} cname:edgecam",
    ]
    parsed = Offer.parse(answer.sdp).section("0")
    assert parsed is not None and parsed.h264 == [answer.h264]


def test_transport_cc_feedback_is_not_answered_without_a_usable_extension() -> None:
    # Id 15 and above need the two-byte header form, which the stamper does not write.
    text = load("chromium_offer_video_audio_dc.sdp").replace(
        f"a=extmap:4 {TRANSPORT_CC_URI}", f"a=extmap:40 {TRANSPORT_CC_URI}"
    )
    answer = answer_for(Offer.parse(text))
    assert answer.transport_cc_id is None
    assert answer.h264 is not None and "transport-cc" not in answer.h264.rtcp_fb
    assert "transport-cc" not in answer.sdp and "a=extmap" not in answer.sdp


def test_aiortc_offer_without_transport_cc_keeps_goog_remb() -> None:
    answer = answer_for(Offer.parse(load("aiortc_offer_video.sdp")))
    assert answer.transport_cc_id is None
    assert answer.h264 is not None
    assert answer.h264.rtcp_fb == ("nack", "nack pli", "goog-remb")


def test_rejected_audio_section_is_minimal_and_out_of_bundle() -> None:
    answer = answer_for(Offer.parse(load("chromium_offer_video_audio_dc.sdp")))
    assert sections_of(answer.sdp)[2] == [
        "m=audio 0 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=inactive",
    ]
    assert answer.mids == ["0", "2"] and "a=group:BUNDLE 0 2" in answer.sdp


def test_answer_feedback_is_only_what_the_offer_had() -> None:
    answer = answer_for(Offer.parse(load("aiortc_offer_video.sdp")))
    assert answer.h264 is not None and answer.h264.payload_type == 101
    assert answer.h264.rtcp_fb == ("nack", "nack pli", "goog-remb")
    assert "ccm fir" not in answer.sdp


def test_answer_level_is_the_streams_with_the_offered_profile_bytes() -> None:
    # 42c0 (constraint_set0+1) is constrained baseline like the offered 42e0.
    answer = answer_for(
        Offer.parse(load("chromium_offer_video_dc.sdp")), stream_profile_level_id="42c033"
    )
    assert answer.h264 is not None and answer.h264.profile_level_id == "42e033"
    assert "profile-level-id=42e033" in answer.sdp


def test_datachannel_refused_when_not_accepted() -> None:
    answer = answer_for(Offer.parse(load("chromium_offer_video_dc.sdp")), accept_datachannel=False)
    assert answer.mids == ["0"] and answer.datachannel_mid is None
    assert answer.remote_sctp_port is None
    assert sections_of(answer.sdp)[2] == [
        "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=inactive",
    ]
    assert "sctp-port" not in answer.sdp


@pytest.mark.parametrize("name", ["chromium_offer_dc.sdp", "firefox_offer_dc.sdp"])
def test_datachannel_only_offer_gets_datachannel_only_answer(name: str) -> None:
    answer = answer_for(Offer.parse(load(name)))
    assert answer.h264 is None and answer.video_mid is None and not answer.send_video
    assert answer.mids == ["0"] and answer.datachannel_mid == "0"
    assert "m=video" not in answer.sdp and "a=ssrc" not in answer.sdp
    assert "a=sctp-port:5000" in answer.sdp
    assert f"a=max-message-size:{ANSWER_MAX_MESSAGE_SIZE}" in answer.sdp


@pytest.mark.parametrize(
    ("offered", "answered", "sends"),
    [
        ("recvonly", "sendonly", True),
        ("sendrecv", "sendonly", True),
        ("sendonly", "inactive", False),
        ("inactive", "inactive", False),
    ],
)
def test_video_direction(offered: str, answered: str, sends: bool) -> None:
    text = edit(load("chromium_offer_video_dc.sdp"), f"a=recvonly => a={offered}")
    answer = answer_for(Offer.parse(text))
    video = sections_of(answer.sdp)[1]
    assert f"a={answered}" in video and answer.send_video is sends
    assert any(line.startswith("a=ssrc:") for line in video) is sends
    assert any(line.startswith("a=msid:") for line in video) is sends


def test_answer_setup_rules() -> None:
    assert answer_setup("actpass") == "active"
    assert answer_setup("actpass", "passive") == "passive"
    assert answer_setup("actpass", "active") == "active"
    assert answer_setup("active") == answer_setup("active", "passive") == "passive"
    assert answer_setup("passive") == answer_setup("passive", "active") == "active"
    with pytest.raises(NegotiationError, match="needs answer a=setup:passive"):
        answer_setup("active", "active")
    with pytest.raises(NegotiationError, match="needs answer a=setup:active"):
        answer_setup("passive", "passive")
    with pytest.raises(NegotiationError, match="holdconn"):
        answer_setup("holdconn")
    # Our own bad preference is our bug, never reported as the peer's fault.
    with pytest.raises(LocalUsageError, match="actpass"):
        answer_setup("actpass", "actpass")


@pytest.mark.parametrize(
    ("offered", "answered"), [("actpass", "active"), ("active", "passive"), ("passive", "active")]
)
def test_auto_preference_answers_every_answerable_setup(offered: str, answered: str) -> None:
    # The documented config value webrtc.dtls_role = "auto" used to raise a bare ValueError
    # here, so every offer failed with -32603.
    assert answer_setup(offered, "auto") == answer_setup(offered, PreferredSetup.AUTO) == answered


def test_build_answer_with_auto_against_an_actpass_offer() -> None:
    offer = Offer.parse(load("chromium_offer_video_dc.sdp"))
    assert offer.setup == "actpass"
    for setup in (PreferredSetup.AUTO, "auto"):
        answer = answer_for(offer, setup=setup)
        assert answer.setup == "active" and answer.sdp.count("a=setup:active\r\n") == 2


def test_offer_setup_roles_reach_the_answer() -> None:
    text = load("aiortc_offer_video.sdp")
    passive = Offer.parse(text.replace("a=setup:actpass", "a=setup:passive"))
    assert answer_for(passive, setup=None).setup == "active"
    active = Offer.parse(text.replace("a=setup:actpass", "a=setup:active"))
    with pytest.raises(NegotiationError, match="needs answer a=setup:passive"):
        answer_for(active, setup="active")
    assert "a=setup:passive" in answer_for(active, setup="passive").sdp
    # RFC 4145: an offer without a=setup is active
    assert Offer.parse(edit(text, "-^a=setup")).setup == "active"


@pytest.mark.parametrize(
    "bad",
    [
        {"ice_ufrag": "a b"},
        {"ice_pwd": "short"},
        {"candidates": ["1 1 udp 1 127.0.0.1 9 typ host\r\na=inject"]},
        {"msid": ("a b", "c")},
        {"ssrc": 2**32},
        {"stream_profile_level_id": "xyz"},
        {"setup": "actpass"},
    ],
)
def test_bad_local_arguments_are_usage_errors_not_the_peers_fault(bad: dict[str, object]) -> None:
    with pytest.raises(LocalUsageError) as caught:
        answer_for(Offer.parse(load("aiortc_offer_video.sdp")), **bad)
    assert not isinstance(caught.value, ValueError)  # so never a NegotiationError (-32004)


# --- the offerer's BUNDLE tag ---------------------------------------------------------------

MAXBUNDLE_AUDIO = "chromium_offer_maxbundle_audio_video.sdp"
MAXBUNDLE_DC = "chromium_offer_maxbundle_dc_video.sdp"
TWO_VIDEOS = "chromium_offer_video_sendonly_recvonly.sdp"
TRANSPORT_LINES = [
    "a=ice-ufrag:dev1",
    "a=ice-pwd:abcdefghijklmnopqrstuv",
    "a=ice-options:trickle",
    f"a=fingerprint:{OUR_FINGERPRINT.serialize()}",
    "a=setup:active",
]


def test_unwanted_audio_tag_is_accepted_inactive_and_carries_the_transport() -> None:
    offer = Offer.parse(load(MAXBUNDLE_AUDIO))
    assert offer.bundle_tag is offer.sections[0] and offer.sections[0].kind == "audio"
    answer = answer_for(offer)
    session, audio, video = sections_of(answer.sdp)
    assert "a=group:BUNDLE 0 1" in session
    assert audio == [
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        f"a=candidate:{OUR_CANDIDATE}",
        "a=end-of-candidates",
        *TRANSPORT_LINES,
        "a=mid:0",
        "a=inactive",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
    ]
    assert "a=sendonly" in video and not any(x.startswith("a=candidate") for x in video)
    assert (answer.mids, answer.transport_mid, answer.video_mid) == (["0", "1"], "0", "1")
    assert answer.send_video and answer.h264 is not None and answer.h264.payload_type == 108
    # the offer's candidates are in the tag section (Chromium trickles for mid 0 as well)
    assert answer.remote_candidates == offer.sections[0].candidates
    assert len(answer.remote_candidates) == 2 and offer.sections[1].candidates == []


def test_unwanted_datachannel_tag_is_accepted_but_not_served() -> None:
    offer = Offer.parse(load(MAXBUNDLE_DC))
    assert [s.kind for s in offer.sections] == ["application", "video"]
    answer = answer_for(offer, accept_datachannel=False)
    session, app, _video = sections_of(answer.sdp)
    assert "a=group:BUNDLE 0 1" in session
    assert app == [
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        f"a=candidate:{OUR_CANDIDATE}",
        "a=end-of-candidates",
        *TRANSPORT_LINES,
        "a=mid:0",
        "a=sctp-port:5000",
        f"a=max-message-size:{ANSWER_MAX_MESSAGE_SIZE}",
    ]
    assert answer.datachannel_mid is None and answer.remote_sctp_port is None
    assert (answer.mids, answer.transport_mid) == (["0", "1"], "0")
    assert answer.remote_candidates == offer.sections[0].candidates != []
    served = answer_for(offer)  # accepted as a datachannel: the ordinary answer
    assert (served.datachannel_mid, served.remote_sctp_port, served.transport_mid) == (
        "0",
        5000,
        "0",
    )


def test_a_datachannel_that_is_not_the_tag_is_still_rejected() -> None:
    answer = answer_for(Offer.parse(load(CHROME)), accept_datachannel=False)
    assert sections_of(answer.sdp)[3][0] == "m=application 0 UDP/DTLS/SCTP webrtc-datachannel"
    assert answer.mids == ["0"] and "a=group:BUNDLE 0\r\n" in answer.sdp


def test_tag_that_cannot_share_the_transport_is_rejected_as_before() -> None:
    # Without a=rtcp-mux the audio section cannot be answered on the muxed transport.
    offer = Offer.parse(edit(load(MAXBUNDLE_AUDIO), "a=rtcp-mux\r\n => "))
    assert not offer.sections[0].rtcp_mux and offer.sections[1].rtcp_mux
    answer = answer_for(offer)
    assert sections_of(answer.sdp)[1][0] == "m=audio 0 UDP/TLS/RTP/SAVPF 111"
    assert (answer.mids, answer.transport_mid) == (["1"], "1")


def test_bundle_order_not_section_order_names_the_tag() -> None:
    offer = Offer.parse(edit(load(MAXBUNDLE_AUDIO), "BUNDLE 0 1 => BUNDLE 1 0"))
    assert offer.bundle_tag is offer.sections[1]
    answer = answer_for(offer)
    assert sections_of(answer.sdp)[1][0] == "m=audio 0 UDP/TLS/RTP/SAVPF 111"
    assert (answer.mids, answer.transport_mid) == (["1"], "1")


def test_video_prefers_a_section_that_receives() -> None:
    offer = Offer.parse(load(TWO_VIDEOS))
    assert [s.direction for s in offer.sections] == ["sendonly", "recvonly"]
    assert offer.video is offer.sections[1]
    answer = answer_for(offer)
    _session, first, second = sections_of(answer.sdp)
    # the sendonly one is the BUNDLE tag: accepted inactive, its first payload type (VP8)
    assert first[0] == "m=video 9 UDP/TLS/RTP/SAVPF 96"
    assert first[-3:] == ["a=inactive", "a=rtcp-mux", "a=rtpmap:96 VP8/90000"]
    assert second[0] == "m=video 9 UDP/TLS/RTP/SAVPF 108" and "a=sendonly" in second
    assert (answer.video_mid, answer.send_video, answer.transport_mid) == ("1", True, "0")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("a=recvonly => a=sendonly", 0),  # nothing receives: the first
        ("a=sendonly => a=sendrecv", 0),
        ("recvonly video rejected", 0),  # rejected by the offerer: never chosen
    ],
)
def test_video_choice_falls_back_to_the_first(change: str, expected: int) -> None:
    text = load(TWO_VIDEOS)
    if change == "recvonly video rejected":
        change = f"m=video {Offer.parse(text).sections[1].port} => m=video 0"
    offer = Offer.parse(edit(text, change))
    assert offer.video is offer.sections[expected]


@pytest.mark.parametrize("where", ["session", "media"])
def test_ice_lite_offers_are_refused(where: str) -> None:
    anchor = "a=msid-semantic" if where == "session" else "a=mid:0"
    offer = Offer.parse(edit(load(CHROME), f"{anchor} => a=ice-lite\r\n{anchor}"))
    assert offer.ice_lite
    with pytest.raises(NegotiationError, match=r"^ice-lite offers are not supported: the device"):
        answer_for(offer)
    assert not Offer.parse(load(CHROME)).ice_lite


def test_level_above_the_offer_without_level_asymmetry_is_refused() -> None:
    text = load("aiortc_offer_video.sdp").replace("level-asymmetry-allowed=1;", "")
    offer = Offer.parse(text)
    with pytest.raises(
        NegotiationError,
        match=r"stream level 4\.0 is above the offered 3\.1 and the offer does not allow level "
        "asymmetry",
    ):
        answer_for(offer, stream_profile_level_id="42e028")
    answer = answer_for(offer, stream_profile_level_id="42e01e")  # 3.0: within the offer
    assert answer.h264 is not None and not answer.h264.level_asymmetry_allowed
    assert "a=fmtp:101 level-asymmetry-allowed=0;packetization-mode=1;profile-level-id=42e01e" in (
        answer.sdp
    )
    # with level asymmetry (as every captured offer has) the stream's higher level is fine
    allowed = answer_for(
        Offer.parse(load("aiortc_offer_video.sdp")), stream_profile_level_id="42e028"
    )
    assert allowed.h264 is not None and allowed.h264.level_asymmetry_allowed
    assert "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e028" in allowed.sdp


# --- H.264 profiles -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "payload_type"),
    [("42e01f", 108), ("42e034", 108), ("42001f", 102), ("4d0032", 116), ("f4001f", 41)],
)
def test_select_h264_matches_profile_not_level(stream: str, payload_type: int) -> None:
    video = Offer.parse(load("chromium_offer_video_dc.sdp")).video
    assert video is not None
    chosen = select_h264(video, stream)
    assert chosen.payload_type == payload_type and chosen.packetization_mode == 1


def test_select_h264_prefers_nack_and_pli() -> None:
    # Strip nack feedback from 42001f PT 99 and mark 101 as baseline too: 101 wins.
    text = edit(load("aiortc_offer_video.sdp"), "-^a=rtcp-fb:99 nack")
    text = text.replace("profile-level-id=42e01f", "profile-level-id=42001f")
    video = Offer.parse(text).video
    assert video is not None
    assert select_h264(video, "42001f").payload_type == 101
    without = edit(text, "-^a=rtcp-fb:101 nack")
    video = Offer.parse(without).video
    assert video is not None and select_h264(video, "42001f").payload_type == 99


def test_select_h264_names_the_missing_profile() -> None:
    video = Offer.parse(load("chromium_offer_video_dc.sdp")).video
    assert video is not None
    with pytest.raises(NegotiationError, match=r"profile 640c \(constrained high\)"):
        select_h264(video, "640c1f")
    with pytest.raises(NegotiationError, match="stream profile-level-id"):
        select_h264(video, "58001f")


def test_firefox_without_h264_is_a_negotiation_error() -> None:
    offer = Offer.parse(load("firefox_offer_video_dc.sdp"))
    with pytest.raises(
        NegotiationError, match=r"no H\.264 payload type with profile 42e0 \(constrained baseline\)"
    ):
        answer_for(offer)


def test_missing_profile_level_id_defaults_like_libwebrtc() -> None:
    text = load("aiortc_offer_video.sdp").replace(";profile-level-id=42e01f", "")
    video = Offer.parse(text).video
    assert video is not None and video.h264[1].profile_level_id == "42e01f"


# --- negotiation errors -------------------------------------------------------------------

CHROME = "chromium_offer_video_audio_dc.sdp"
AIORTC = "aiortc_offer_video_audio_dc.sdp"
FIREFOX = "firefox_offer_video_dc.sdp"


@pytest.mark.parametrize(
    ("fixture", "change", "message"),
    [
        (CHROME, "-^a=ice-ufrag", "offer has no a=ice-ufrag"),
        (CHROME, "-^a=ice-pwd", "offer has no a=ice-pwd"),
        (CHROME, "-^a=fingerprint", "no a=fingerprint"),
        (FIREFOX, "-^a=fingerprint", "no a=fingerprint"),
        ("chromium_offer_dc.sdp", "sha-256 => md5", "no a=fingerprint with a supported hash"),
        (CHROME, "ufrag:s+FK => ufrag:zzzz", "bundled sections disagree on ice-ufrag"),
        (AIORTC, "actpass\r\nm=audio => passive\r\nm=audio", "bundled sections disagree on setup"),
        (AIORTC, "sha-512 35 => sha-512 36", "bundled sections disagree on fingerprint"),
        (AIORTC, "a=setup:actpass => a=setup:actpass\r\na=setup:active", "conflicting a=setup"),
        (AIORTC, "a=recvonly => a=recvonly\r\na=sendrecv", "conflicting direction"),
        (AIORTC, "a=setup:actpass => a=setup:bogus", "a=setup:bogus"),
        (AIORTC, "-^a=mid:1", "has no a=mid"),
        (AIORTC, "a=mid:1 => a=mid:0", "same a=mid"),
        (AIORTC, "a=mid:1 => a=mid:one two", "a=mid"),
        (AIORTC, "BUNDLE 0 1 2 => BUNDLE 0 1 7", "names mid '7'"),
        (AIORTC, "BUNDLE 0 1 2 => BUNDLE 0 1 2 2", "twice"),
        (AIORTC, "v=0 => v=1", "v=0"),
        (AIORTC, "-^o=", "no o= line"),
        (AIORTC, "-^(m|a|c)=", "no m= section"),
        (AIORTC, "m=video 40319 => m=video 40319/2", "port"),
        (AIORTC, "m=video 40319 => m=video 99999", "port"),
        (AIORTC, "SAVPF 97 98 => SAVPF 97 x98", "payload type"),
        (AIORTC, "SAVPF 97 98 => SAVPF 97 128", "payload type"),
        (AIORTC, "profile-level-id=42e01f => profile-level-id=42e01", "profile-level-id"),
        (AIORTC, "packetization-mode=1 => packetization-mode=3", "packetization-mode"),
        (AIORTC, "99 H264/90000 => 99 H264/90000\r\na=rtpmap:99 VP8/90000", "conflicting a=rtpmap"),
        (AIORTC, "a=rtpmap:99 H264/90000 => a=rtpmap:99 H264", "a=rtpmap"),
        (AIORTC, "a=fmtp:100 apt=99 => a=fmtp:100 apt=x", "apt"),
        (AIORTC, "a=extmap:1 => a=extmap:15", "extmap"),
        (AIORTC, "a=extmap:1 => a=extmap:1/bogus", "extmap direction"),
        (AIORTC, "a=ice-ufrag:nq7q => a=ice-ufrag:n q", "a=ice-ufrag"),
        (AIORTC, "a=ice-pwd:mVXN => a=ice-pwd:mV", "a=ice-pwd"),
        (AIORTC, "sha-256 FC:98 => sha-256 FC:9", "a=fingerprint"),
        (AIORTC, "a=sctp-port:5000 => a=sctp-port:0", "a=sctp-port"),
        (AIORTC, "a=max-message-size:262144 => a=max-message-size:-1", "max-message-size"),
        (AIORTC, "a=mid:0 => a=mid:0\x00", "control character"),
        (AIORTC, "s=- => s", "not '<letter>=<value>'"),
        (AIORTC, "a=rtcp-mux => a=rtcp-fb:* ", "rtcp-fb"),
    ],
)
def test_malformed_or_contradictory_offers(fixture: str, change: str, message: str) -> None:
    with pytest.raises(NegotiationError, match=message):
        Offer.parse(edit(load(fixture), change))


@pytest.mark.parametrize("empty", ["a=candidate:", "a=candidate: "])
def test_empty_candidate_is_end_of_candidates_not_an_error(empty: str) -> None:
    # Firefox's per-section end-of-candidates is an empty candidate (PROTOCOL.md section 4);
    # an empty a=candidate used to be refused as "a=candidate has no value".
    text = edit(edit(load(AIORTC), "-^a=end-of-candidates"), f"a=mid:0 => a=mid:0\r\n{empty}")
    video = Offer.parse(text).sections[0]
    assert video.end_of_candidates and video.candidates and all(video.candidates)
    assert (
        not Offer.parse(edit(load(AIORTC), "-^a=end-of-candidates")).sections[0].end_of_candidates
    )


@pytest.mark.parametrize("text", [None, "", "  ", "candidate:", "a=candidate:"])
def test_is_end_of_candidates(text: str | None) -> None:
    assert is_end_of_candidates(text)


def test_a_real_candidate_is_not_the_end() -> None:
    assert not is_end_of_candidates("candidate:1 1 udp 2130706431 127.0.0.1 9 typ host")
    assert not is_end_of_candidates("1 1 udp 2130706431 127.0.0.1 9 typ host")


def test_all_sections_rejected_by_offerer() -> None:
    text = re.sub(r"^m=(\w+) \d+", r"m=\1 0", load(AIORTC), flags=re.M)
    with pytest.raises(NegotiationError, match="no active m= section"):
        Offer.parse(text)


def test_bundle_only_section_with_port_zero_is_active() -> None:
    text = load("chromium_offer_video_dc.sdp")
    text = text.replace("m=application 33199", "m=application 0").replace(
        "a=mid:1", "a=mid:1\r\na=bundle-only"
    )
    offer = Offer.parse(text)
    assert offer.application is not None and offer.application.bundle_only
    assert answer_for(offer).mids == ["0", "1"]


def test_non_utf8_bytes() -> None:
    with pytest.raises(NegotiationError, match="UTF-8"):
        Offer.parse(load(AIORTC).encode() + b"\xff")
    assert Offer.parse(load(AIORTC).encode()).bundle == ["0", "1", "2"]


def test_lf_only_line_endings_are_accepted() -> None:
    offer = Offer.parse(load(CHROME).replace("\r\n", "\n"))
    assert offer.ice_ufrag == "s+FK"


@pytest.mark.parametrize(
    ("fixture", "change", "message"),
    [
        ("chromium_offer_video_dc.sdp", "-^a=group", "not bundled"),
        ("chromium_offer_video_dc.sdp", "BUNDLE 0 1 => BUNDLE 0", "not bundled"),
        ("aiortc_offer_video.sdp", "-^a=rtcp-mux", "no a=rtcp-mux"),
        ("aiortc_offer_video.sdp", "UDP/TLS/RTP/SAVPF => RTP/SAVPF", "need UDP/TLS/RTP"),
        ("chromium_offer_dc.sdp", "SCTP webrtc => SCTP x-webrtc", "is not webrtc-datachannel"),
        ("chromium_offer_dc.sdp", "UDP/DTLS/SCTP => DTLS/SCTP", "need UDP/DTLS/SCTP"),
    ],
)
def test_unanswerable_offers(fixture: str, change: str, message: str) -> None:
    offer = Offer.parse(edit(load(fixture), change))
    with pytest.raises(NegotiationError, match=message):
        answer_for(offer)


def test_offer_with_nothing_acceptable() -> None:
    offer = Offer.parse(load("chromium_offer_dc.sdp"))
    with pytest.raises(NegotiationError, match="no video or datachannel section"):
        answer_for(offer, accept_datachannel=False)
    audio_only = Offer.parse(
        edit(load(AIORTC), "-^a=group").split("m=audio")[0].replace("m=video", "m=audio", 1)
    )
    with pytest.raises(NegotiationError, match="no video or datachannel section"):
        answer_for(audio_only)


# --- aiortc accepts our answers -----------------------------------------------------------


@pytest.mark.parametrize("media", [("video",), ("video", "datachannel"), ("datachannel",)])
async def test_aiortc_accepts_our_answer(
    media: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcdtlstransport import RTCCertificate

    # loopback only, and no STUN server (aiortc's default is a public one)
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    fingerprint = RTCCertificate.generateCertificate().getFingerprints()[0]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        if "video" in media:
            pc.addTransceiver("video", direction="recvonly")
        if "datachannel" in media:
            pc.createDataChannel("control")
        await pc.setLocalDescription(await pc.createOffer())
        offer = Offer.parse(pc.localDescription.sdp)
        answer = answer_for(
            offer,
            fingerprint=Fingerprint(fingerprint.algorithm, fingerprint.value),
            candidates=[],
            end_of_candidates=False,
        )
        await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        assert pc.signalingState == "stable"
        transceivers = pc.getTransceivers()
        if "video" in media:
            assert answer.h264 is not None
            assert transceivers[0].currentDirection == "recvonly"
            codec = transceivers[0]._codecs[0]  # what aiortc will decode
            assert (codec.mimeType, codec.payloadType) == ("video/H264", answer.h264.payload_type)
        else:
            assert transceivers == [] and answer.h264 is None
    finally:
        await pc.close()


async def test_aiortc_accepts_an_inactive_audio_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.rtcdtlstransport import RTCCertificate

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    fingerprint = RTCCertificate.generateCertificate().getFingerprints()[0]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = Offer.parse(pc.localDescription.sdp)
        assert offer.bundle_tag is offer.sections[0] and offer.sections[0].kind == "audio"
        answer = answer_for(
            offer,
            fingerprint=Fingerprint(fingerprint.algorithm, fingerprint.value),
            candidates=[],
            end_of_candidates=False,
        )
        assert answer.transport_mid == "0" and sections_of(answer.sdp)[1][0].startswith("m=audio 9")
        await pc.setRemoteDescription(RTCSessionDescription(answer.sdp, "answer"))
        audio, video = pc.getTransceivers()
        assert (audio.currentDirection, video.currentDirection) == ("inactive", "recvonly")
    finally:
        await pc.close()


# --- fuzzing ------------------------------------------------------------------------------

FIXTURE_LINES = {name: load(name).split("\r\n") for name in FIXTURES}


def _parse_and_answer(text: str | bytes) -> None:
    try:
        offer = Offer.parse(text)
    except ValueError:
        return
    try:
        answer = answer_for(offer)
    except ValueError:
        return
    Offer.parse(answer.sdp)  # whatever we accept, our own answer must parse


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400) | st.binary(max_size=400))
def test_fuzz_arbitrary_input(data: str | bytes) -> None:
    _parse_and_answer(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIXTURES),
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=200),
            st.sampled_from(["delete", "duplicate", "truncate", "replace", "insert"]),
            st.text(alphabet=st.sampled_from("am=:0123456789 /;.*-\t\rxAZ" + "\x00é"), max_size=30),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_mutated_fixture_lines(name: str, edits: list[tuple[int, str, str]]) -> None:
    lines = list(FIXTURE_LINES[name])
    for position, action, text in edits:
        index = position % len(lines)
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "truncate":
            lines[index] = lines[index][: len(text)]
        elif action == "replace":
            prefix = lines[index].partition(":")[0]
            lines[index] = f"{prefix}:{text}" if ":" in lines[index] else text
        else:
            lines.insert(index, text)
        if not lines:
            lines = [""]
    _parse_and_answer("\r\n".join(lines))


# --- sans-IO ------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [sdp_module, h264_profile_module])
def test_modules_do_no_io(module: object) -> None:
    source = Path(str(getattr(module, "__file__", ""))).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "threading", "time", "selectors"}
