"""agent/rtc/rtp.py against real RTP packets and aiortc's own RTP parser as a second opinion.

Fixtures in data/ are plaintext packets captured (before SRTP) from real sessions:
- rtp_aiortc_h264.bin: aiortc 1.16 sending H.264 to another aiortc peer (mid and
  abs-send-time one-byte extensions).
- rtp_chromium_h264.bin, rtp_chromium_padding.bin: headless Chromium sending H.264 to aiortc
  (abs-send-time and transport-wide sequence number extensions; the second is one of
  Chromium's padding-only bandwidth probes, 255 bytes of RTP padding).
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from aiortc import rtp as aiortc_rtp
from hypothesis import given
from hypothesis import strategies as st

from agent.rtc.rtcp import PictureLossIndication
from agent.rtc.rtp import (
    ONE_BYTE_PROFILE,
    TWO_BYTE_PROFILE,
    RtpHeader,
    RtpHeaderStamper,
    RtpPacket,
    is_rtcp,
    parse_extension_elements,
    serialize_extension_elements,
)

DATA = Path(__file__).parent / "data"
FIXTURES = {path.name: path.read_bytes() for path in sorted(DATA.glob("rtp_*.bin"))}
AIORTC = FIXTURES["rtp_aiortc_h264.bin"]
CHROMIUM = FIXTURES["rtp_chromium_h264.bin"]
PADDING = FIXTURES["rtp_chromium_padding.bin"]


def test_fixtures_are_present() -> None:
    assert set(FIXTURES) == {
        "rtp_aiortc_h264.bin",
        "rtp_chromium_h264.bin",
        "rtp_chromium_padding.bin",
    }


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_round_trips_byte_for_byte(name: str) -> None:
    data = FIXTURES[name]
    assert RtpPacket.parse(data).serialize() == data


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_fields_match_aiortc_parser(name: str) -> None:
    data = FIXTURES[name]
    ours = RtpPacket.parse(data)
    theirs = aiortc_rtp.RtpPacket.parse(data)
    assert ours.header.payload_type == theirs.payload_type
    assert ours.header.sequence_number == theirs.sequence_number
    assert ours.header.timestamp == theirs.timestamp
    assert ours.header.ssrc == theirs.ssrc
    assert ours.header.marker == bool(theirs.marker)
    assert list(ours.header.csrcs) == theirs.csrc
    assert ours.payload == theirs.payload
    assert ours.padding_size == theirs.padding_size
    assert ours.header.size + len(ours.payload) + ours.padding_size == len(data)


def test_aiortc_fixture_extensions() -> None:
    header = RtpPacket.parse(AIORTC).header
    assert header.extension_profile == ONE_BYTE_PROFILE
    elements = dict(header.extension_elements())
    # aiortc's video extmap: 1 = sdes:mid, 3 = abs-send-time (24-bit 6.18 fixed point).
    assert elements[1] == b"0"
    assert len(elements[3]) == 3


def test_chromium_fixtures_carry_transport_wide_sequence_numbers() -> None:
    # The session negotiated 3 = abs-send-time and 5 = transport-wide-cc.
    media = dict(RtpPacket.parse(CHROMIUM).header.extension_elements())
    probe = RtpPacket.parse(PADDING)
    probe_ext = dict(probe.header.extension_elements())
    assert len(media[3]) == 3 and len(media[5]) == 2
    assert len(probe_ext[5]) == 2
    assert probe.header.padding and probe.padding_size == 255 and probe.payload == b""
    # Probes come from the same SSRC and use the transport sequence number space too.
    assert probe.header.ssrc == RtpPacket.parse(CHROMIUM).header.ssrc


def test_is_rtcp_demultiplexes_by_second_byte() -> None:
    rtcp = PictureLossIndication(1, 2).serialize()
    assert is_rtcp(rtcp)
    assert not any(is_rtcp(data) for data in FIXTURES.values())
    assert not is_rtcp(b"\x80")
    assert is_rtcp(b"\x80\xc0") and is_rtcp(b"\x80\xdf")
    assert not is_rtcp(b"\x80\xbf") and not is_rtcp(b"\x80\xe0")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (AIORTC[:11], "too short"),
        (b"\x40" + AIORTC[1:], "version"),
        (b"\x83" + bytes(11) + bytes(8), "CSRC"),
        (b"\x90" + bytes(11) + b"\xbe\xde", "extension header"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00\x02" + bytes(4), "extension length"),
        (b"\xa0" + bytes(11), "padding"),
        (b"\xa0" + bytes(11) + b"\x01\x02\x00", "padding"),
        (b"\xa0" + bytes(11) + b"\x05\x04", "padding"),
    ],
)
def test_malformed_packets_raise_value_error(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        RtpPacket.parse(data)


def test_padding_size_may_cover_the_whole_payload() -> None:
    packet = RtpPacket.parse(b"\xa0" + bytes(11) + b"\x00\x00\x03")
    assert packet.payload == b"" and packet.padding_size == 3


def test_csrcs_round_trip() -> None:
    header = RtpHeader(96, 1, 2, 3, marker=True, csrcs=(10, 20, 30))
    packet = RtpPacket(header, b"payload")
    data = packet.serialize()
    assert data[0] & 0x0F == 3
    assert RtpPacket.parse(data) == packet
    assert header.size == 12 + 12


def test_one_byte_extension_parsing_skips_padding_and_stops_at_id_15() -> None:
    block = b"\x10\xaa\x00\x00\x21\xbb\xcc\xf0\x31\xdd"
    assert parse_extension_elements(ONE_BYTE_PROFILE, block) == ((1, b"\xaa"), (2, b"\xbb\xcc"))


def test_two_byte_extension_parsing_accepts_appbits_and_empty_elements() -> None:
    block = b"\x01\x00\x00\x0f\x02\xab\xcd\x00"
    assert parse_extension_elements(TWO_BYTE_PROFILE | 0x7, block) == (
        (1, b""),
        (15, b"\xab\xcd"),
    )


def test_other_extension_profiles_have_no_elements() -> None:
    header = RtpHeader(96, 1, 2, 3, extension_profile=0x1234, extensions=b"\x10\xaa\x00\x00")
    assert header.extension_elements() == ()
    assert RtpHeader(96, 1, 2, 3).extension_elements() == ()


@pytest.mark.parametrize(
    ("profile", "block"),
    [
        (ONE_BYTE_PROFILE, b"\x13\xaa\x00\x00"),
        (TWO_BYTE_PROFILE, b"\x01\x05\xaa\x00"),
        (TWO_BYTE_PROFILE, b"\x00\x00\x00\x01"),
    ],
)
def test_extension_element_past_block_raises(profile: int, block: bytes) -> None:
    with pytest.raises(ValueError, match="extension"):
        parse_extension_elements(profile, block)


def test_extension_serialization_picks_the_form_rfc_8285_allows() -> None:
    assert serialize_extension_elements([(1, b"0"), (3, b"\x01\x02\x03")]) == (
        ONE_BYTE_PROFILE,
        b"\x100\x32\x01\x02\x03\x00\x00",
    )
    # ID 15 and empty data only exist in the two-byte form.
    assert serialize_extension_elements([(15, b"\xaa")])[0] == TWO_BYTE_PROFILE
    assert serialize_extension_elements([(1, b"")])[0] == TWO_BYTE_PROFILE
    assert serialize_extension_elements([(1, bytes(17))])[0] == TWO_BYTE_PROFILE
    assert serialize_extension_elements([(1, b"x")], two_byte=True) == (
        TWO_BYTE_PROFILE,
        b"\x01\x01x\x00",
    )
    for bad in ([(0, b"x")], [(256, b"x")], [(1, bytes(256))]):
        with pytest.raises(ValueError, match="not encodable"):
            serialize_extension_elements(bad)


@pytest.mark.parametrize(
    "header",
    [
        RtpHeader(128, 1, 2, 3),
        RtpHeader(96, 0x10000, 2, 3),
        RtpHeader(96, 1, 1 << 32, 3),
        RtpHeader(96, 1, 2, -1),
        RtpHeader(96, 1, 2, 3, csrcs=tuple(range(16))),
        RtpHeader(96, 1, 2, 3, extension_profile=ONE_BYTE_PROFILE, extensions=b"\x10\xaa"),
        RtpHeader(96, 1, 2, 3, extensions=b"\x10\xaa\x00\x00"),
    ],
)
def test_header_fields_that_do_not_fit_raise_value_error(header: RtpHeader) -> None:
    with pytest.raises(ValueError):
        header.serialize()


def test_padding_bit_and_size_must_agree() -> None:
    with pytest.raises(ValueError, match="padding"):
        RtpPacket(RtpHeader(96, 1, 2, 3, padding=True), b"x").serialize()
    with pytest.raises(ValueError, match="padding"):
        RtpPacket(RtpHeader(96, 1, 2, 3), b"x", padding_size=4).serialize()


def test_stamper_matches_a_serialized_packet() -> None:
    stamper = RtpHeaderStamper(payload_type=102, ssrc=0xDEADBEEF)
    assert stamper.header_size == 12
    for seq, ts, marker in ((0, 0, False), (65535, 0xFFFFFFFF, True), (7, 90_000, False)):
        expected = RtpPacket(RtpHeader(102, seq, ts, 0xDEADBEEF, marker=marker), b"nal").serialize()
        assert stamper.stamp(seq, ts, marker, b"nal") == expected


def test_stamper_wraps_sequence_number_and_timestamp() -> None:
    stamper = RtpHeaderStamper(96, 1)
    header = RtpHeader.parse(stamper.stamp(65536 + 5, (1 << 32) + 9, False, b""))
    assert (header.sequence_number, header.timestamp) == (5, 9)


def test_stamper_outputs_are_independent_of_later_stamps() -> None:
    stamper = RtpHeaderStamper(96, 1)
    first = stamper.stamp(1, 100, True, b"a")
    stamper.stamp(2, 200, False, b"b")
    header = RtpHeader.parse(first)
    assert (header.sequence_number, header.timestamp, header.marker) == (1, 100, True)


def test_stamper_with_extension_template() -> None:
    profile, block = serialize_extension_elements([(1, b"0")])
    stamper = RtpHeaderStamper(96, 42, extension_profile=profile, extensions=block)
    packet = RtpPacket.parse(stamper.stamp(3, 4, True, b"payload"))
    assert stamper.header_size == 16 + len(block)
    assert packet.header.extension_elements() == ((1, b"0"),)
    assert (packet.header.ssrc, packet.header.marker, packet.payload) == (42, True, b"payload")


def test_stamper_rejects_invalid_template() -> None:
    with pytest.raises(ValueError):
        RtpHeaderStamper(200, 1)
    with pytest.raises(ValueError):
        RtpHeaderStamper(96, 1 << 32)


# --------------------------------------------------------------------------------------------
# Fuzzing


def _check_parse(data: bytes) -> None:
    """Only ValueError may escape; whatever parses must survive a serialize/parse cycle."""
    try:
        packet = RtpPacket.parse(data)
    except ValueError:
        return
    assert RtpPacket.parse(packet.serialize()) == packet
    with contextlib.suppress(ValueError):
        packet.header.extension_elements()


@given(st.binary(max_size=80))
def test_arbitrary_bytes_raise_only_value_error(data: bytes) -> None:
    _check_parse(data)


@given(st.binary(min_size=12, max_size=60))
def test_version_2_bytes_raise_only_value_error(data: bytes) -> None:
    # Force version 2 so the fuzzing reaches CSRC, extension and padding handling.
    _check_parse(bytes((0x80 | data[0] & 0x3F,)) + data[1:])


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(sorted(FIXTURES.values()))))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "cut", "insert"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if action == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


@given(mutated_fixtures())
def test_mutated_fixtures_raise_only_value_error(data: bytes) -> None:
    _check_parse(data)


@given(st.binary(max_size=40), st.sampled_from([ONE_BYTE_PROFILE, TWO_BYTE_PROFILE | 3]))
def test_arbitrary_extension_blocks_raise_only_value_error(block: bytes, profile: int) -> None:
    with contextlib.suppress(ValueError):
        parse_extension_elements(profile, block)


extension_elements = st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=6)


@given(extension_elements, st.booleans())
def test_extension_elements_round_trip(elements: list[tuple[int, bytes]], two_byte: bool) -> None:
    profile, block = serialize_extension_elements(elements, two_byte=two_byte)
    assert len(block) % 4 == 0
    assert parse_extension_elements(profile, block) == tuple(elements)


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    extension_profile: int | None = None
    extensions = b""
    if draw(st.booleans()):
        extension_profile, extensions = serialize_extension_elements(draw(extension_elements))
    padding_size = draw(st.sampled_from([0, 1, 4, 255]))
    header = RtpHeader(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(st.integers(0, 0xFFFFFFFF)),
        ssrc=draw(st.integers(0, 0xFFFFFFFF)),
        marker=draw(st.booleans()),
        padding=padding_size > 0,
        csrcs=tuple(draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=15))),
        extension_profile=extension_profile,
        extensions=extensions,
    )
    return RtpPacket(header, draw(st.binary(max_size=64)), padding_size)


@given(rtp_packets())
def test_generated_packets_round_trip(packet: RtpPacket) -> None:
    data = packet.serialize()
    assert RtpPacket.parse(data) == packet
    assert RtpHeader.parse(data).size == packet.header.size
    # aiortc reads the same packet the same way.
    theirs = aiortc_rtp.RtpPacket.parse(data)
    assert (theirs.sequence_number, theirs.payload) == (
        packet.header.sequence_number,
        packet.payload,
    )


@given(
    st.integers(0, 127),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.booleans(),
    st.binary(max_size=32),
)
def test_stamper_agrees_with_rtp_packet(
    pt: int, ssrc: int, seq: int, ts: int, marker: bool, payload: bytes
) -> None:
    stamped = RtpHeaderStamper(pt, ssrc).stamp(seq, ts, marker, payload)
    assert stamped == RtpPacket(RtpHeader(pt, seq, ts, ssrc, marker=marker), payload).serialize()
    assert struct.unpack_from("!H", stamped, 2)[0] == seq
