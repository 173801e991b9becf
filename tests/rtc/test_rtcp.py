"""agent/rtc/rtcp.py against real RTCP from aiortc and Chromium, with aiortc's parser as a
second opinion where it understands the packet. TWCC details: tests/rtc/test_twcc.py.

Fixtures in data/ are plaintext compounds captured (before SRTCP) from real sessions:
- rtcp_aiortc_*.bin: aiortc 1.16 sending H.264 to another aiortc peer, with a few RTP packets
  dropped on the way (the receiver NACKed them, then sent a PLI for one dropped forever).
  The RR was sent after the SR in rtcp_aiortc_sr_sdes.bin, so its LSR refers to that SR.
- rtcp_chromium_twcc_*.bin, rtcp_chromium_rr_nack.bin, rtcp_chromium_sr_sdes.bin: headless
  Chromium exchanging H.264 with aiortc, transport-cc negotiated. aiortc stamped transport
  sequence numbers and dropped numbers 199, 200, 299, 349 and 499, and paused ~70 ms before
  a few packets (large receive deltas).
- rtcp_chromium_sr_sdes_remb.bin: the same without transport-cc, so Chromium sends REMB.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from aiortc import rtp as aiortc_rtp
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.rtcp import (
    SDES_CNAME,
    Bye,
    FullIntraRequest,
    GenericNack,
    PictureLossIndication,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    TransportWideCC,
    UnknownRtcp,
    ntp_from_unix,
    ntp_middle32,
    ntp_short_from_seconds,
    parse_compound,
    rtt_from_report_block,
    serialize_compound,
    unix_from_ntp,
)

DATA = Path(__file__).parent / "data"
FIXTURES = {path.name: path.read_bytes() for path in sorted(DATA.glob("rtcp_*.bin"))}

EXPECTED_TYPES: dict[str, list[type]] = {
    "rtcp_aiortc_bye.bin": [Bye],
    "rtcp_aiortc_nack.bin": [GenericNack],
    "rtcp_aiortc_pli.bin": [PictureLossIndication],
    "rtcp_aiortc_remb.bin": [Remb],
    "rtcp_aiortc_rr.bin": [ReceiverReport],
    "rtcp_aiortc_sr_sdes.bin": [SenderReport, SourceDescription],
    "rtcp_chromium_rr_nack.bin": [ReceiverReport, GenericNack],
    "rtcp_chromium_sr_sdes.bin": [SenderReport, SourceDescription],
    "rtcp_chromium_sr_sdes_remb.bin": [SenderReport, SourceDescription, Remb],
    "rtcp_chromium_twcc_loss.bin": [TransportWideCC],
    "rtcp_chromium_twcc_mixed.bin": [TransportWideCC],
    "rtcp_chromium_twcc_run.bin": [TransportWideCC],
}


def packets(name: str) -> list[RtcpPacket]:
    return parse_compound(FIXTURES[name])


def test_fixtures_are_present() -> None:
    assert set(FIXTURES) == set(EXPECTED_TYPES)


@pytest.mark.parametrize("name", sorted(EXPECTED_TYPES))
def test_fixture_parses_into_expected_types_and_round_trips(name: str) -> None:
    parsed = packets(name)
    assert [type(packet) for packet in parsed] == EXPECTED_TYPES[name]
    assert serialize_compound(parsed) == FIXTURES[name]
    for packet in parsed:
        assert type(packet).parse(packet.serialize()) == packet


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED_TYPES if "twcc" not in n))
def test_fixture_fields_match_aiortc_parser(name: str) -> None:
    theirs_all = aiortc_rtp.RtcpPacket.parse(FIXTURES[name])
    for ours, theirs in zip(packets(name), theirs_all, strict=True):
        if isinstance(ours, SenderReport):
            assert isinstance(theirs, aiortc_rtp.RtcpSrPacket)
            assert ours.ssrc == theirs.ssrc
            assert ours.ntp_timestamp == theirs.sender_info.ntp_timestamp
            assert ours.rtp_timestamp == theirs.sender_info.rtp_timestamp
            assert ours.packet_count == theirs.sender_info.packet_count
            assert ours.octet_count == theirs.sender_info.octet_count
            assert len(ours.reports) == len(theirs.reports)
        elif isinstance(ours, ReceiverReport):
            assert isinstance(theirs, aiortc_rtp.RtcpRrPacket)
            assert ours.ssrc == theirs.ssrc
            for block, info in zip(ours.reports, theirs.reports, strict=True):
                assert (block.ssrc, block.fraction_lost, block.cumulative_lost) == (
                    info.ssrc,
                    info.fraction_lost,
                    info.packets_lost,
                )
                assert (block.highest_sequence, block.jitter, block.lsr, block.dlsr) == (
                    info.highest_sequence,
                    info.jitter,
                    info.lsr,
                    info.dlsr,
                )
        elif isinstance(ours, SourceDescription):
            assert isinstance(theirs, aiortc_rtp.RtcpSdesPacket)
            assert [(c.ssrc, list(c.items)) for c in ours.chunks] == [
                (c.ssrc, c.items) for c in theirs.chunks
            ]
        elif isinstance(ours, Bye):
            assert isinstance(theirs, aiortc_rtp.RtcpByePacket)
            assert list(ours.ssrcs) == theirs.sources
        elif isinstance(ours, GenericNack):
            assert isinstance(theirs, aiortc_rtp.RtcpRtpfbPacket)
            assert (ours.sender_ssrc, ours.media_ssrc) == (theirs.ssrc, theirs.media_ssrc)
            assert list(ours.lost) == theirs.lost
        elif isinstance(ours, PictureLossIndication):
            assert isinstance(theirs, aiortc_rtp.RtcpPsfbPacket)
            assert (ours.sender_ssrc, ours.media_ssrc) == (theirs.ssrc, theirs.media_ssrc)
        else:
            assert isinstance(ours, Remb) and isinstance(theirs, aiortc_rtp.RtcpPsfbPacket)
            assert (ours.bitrate, list(ours.ssrcs)) == aiortc_rtp.unpack_remb_fci(theirs.fci)
            assert ours.sender_ssrc == theirs.ssrc


def test_aiortc_sr_sdes_values() -> None:
    sr, sdes = packets("rtcp_aiortc_sr_sdes.bin")
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert sr.reports == () and sr.packet_count > 0 and sr.octet_count > sr.packet_count
    # Captured in 2025 or later: a plausible wall clock, not garbage.
    assert unix_from_ntp(sr.ntp_timestamp) > 1_735_689_600
    assert [chunk.ssrc for chunk in sdes.chunks] == [sr.ssrc]
    assert sdes.chunks[0].items[0][0] == SDES_CNAME


def test_aiortc_rr_refers_to_the_captured_sr() -> None:
    (sr, _), (rr,) = packets("rtcp_aiortc_sr_sdes.bin"), packets("rtcp_aiortc_rr.bin")
    assert isinstance(sr, SenderReport) and isinstance(rr, ReceiverReport)
    (block,) = rr.reports
    assert block.ssrc == sr.ssrc
    assert block.lsr == ntp_middle32(sr.ntp_timestamp)
    # The SR came back after DLSR plus a 10 ms network round trip.
    now = (block.lsr + block.dlsr + ntp_short_from_seconds(0.010)) & 0xFFFFFFFF
    rtt = rtt_from_report_block(block, now)
    assert rtt == pytest.approx(0.010, abs=1 / 65536)


def test_aiortc_nack_and_pli_name_the_sender() -> None:
    (nack,), (pli,), (sr, _) = (
        packets("rtcp_aiortc_nack.bin"),
        packets("rtcp_aiortc_pli.bin"),
        packets("rtcp_aiortc_sr_sdes.bin"),
    )
    assert isinstance(nack, GenericNack) and isinstance(pli, PictureLossIndication)
    assert isinstance(sr, SenderReport)
    assert nack.media_ssrc == pli.media_ssrc == sr.ssrc
    # Three consecutive packets were dropped: one PID with two BLP bits.
    assert nack.lost == tuple((nack.lost[0] + i) & 0xFFFF for i in range(3))
    assert len(FIXTURES["rtcp_aiortc_nack.bin"]) == 16


def test_remb_values() -> None:
    (aiortc_remb,) = packets("rtcp_aiortc_remb.bin")
    *_, chromium_remb = packets("rtcp_chromium_sr_sdes_remb.bin")
    assert isinstance(aiortc_remb, Remb) and isinstance(chromium_remb, Remb)
    for remb in (aiortc_remb, chromium_remb):
        assert 50_000 < remb.bitrate < 100_000_000
        assert len(remb.ssrcs) == 1 and remb.media_ssrc == 0


def test_chromium_rr_nack_names_the_packets_after_the_highest_received() -> None:
    rr, nack = packets("rtcp_chromium_rr_nack.bin")
    assert isinstance(rr, ReceiverReport) and isinstance(nack, GenericNack)
    assert nack.media_ssrc == rr.reports[0].ssrc
    highest = rr.reports[0].highest_sequence & 0xFFFF
    assert nack.lost == ((highest + 1) & 0xFFFF, (highest + 2) & 0xFFFF)


# --------------------------------------------------------------------------------------------
# Constructed packets (formats no real peer here sends, and encoder edge cases)


def test_single_packet_parse_checks_type_and_count() -> None:
    assert PictureLossIndication.parse(FIXTURES["rtcp_aiortc_pli.bin"]) == PictureLossIndication(
        *struct.unpack_from("!II", FIXTURES["rtcp_aiortc_pli.bin"], 4)
    )
    with pytest.raises(ValueError, match="one RTCP packet"):
        SenderReport.parse(FIXTURES["rtcp_aiortc_sr_sdes.bin"])
    with pytest.raises(ValueError, match="expected ReceiverReport"):
        ReceiverReport.parse(FIXTURES["rtcp_aiortc_pli.bin"])


def test_full_intra_request_round_trips() -> None:
    fir = FullIntraRequest(sender_ssrc=1, entries=((0xAABBCCDD, 7), (5, 255)))
    data = fir.serialize()
    assert data[:4] == b"\x84\xce\x00\x06"
    assert data[12:20] == b"\xaa\xbb\xcc\xdd\x07\x00\x00\x00"
    assert parse_compound(data) == [fir]


def test_nack_from_lost_packs_minimal_pairs() -> None:
    nack = GenericNack.from_lost(1, 2, range(100, 117))
    assert len(nack.serialize()) == 12 + 4
    assert GenericNack.from_lost(1, 2, range(100, 118)).serialize()[12:] == (
        b"\x00\x64\xff\xff\x00\x75\x00\x00"
    )
    wrapped = GenericNack.from_lost(1, 2, [1, 65535, 0, 65534, 1])
    assert wrapped.lost == (65534, 65535, 0, 1)
    assert wrapped.serialize()[12:] == b"\xff\xfe\x00\x07"
    assert parse_compound(wrapped.serialize()) == [wrapped]


def test_nack_keeps_any_order_it_is_given() -> None:
    nack = GenericNack(1, 2, (5, 7, 6, 6, 40))
    assert parse_compound(nack.serialize()) == [nack]
    with pytest.raises(ValueError, match="at least one"):
        GenericNack(1, 2, ()).serialize()


def test_remb_uses_the_smallest_exponent_and_truncates() -> None:
    assert Remb(1, 0x3FFFF).serialize()[16:20] == b"\x00\x03\xff\xff"
    remb = Remb(1, 1_000_001, (7, 8))
    (parsed,) = parse_compound(remb.serialize())
    assert isinstance(parsed, Remb)
    assert parsed.bitrate == 1_000_000 and parsed.ssrcs == (7, 8)
    with pytest.raises(ValueError, match="too large"):
        Remb(1, 1 << 90).serialize()


def test_unknown_packets_are_kept() -> None:
    app = bytes.fromhex("81cc0003") + b"\x00\x00\x00\x01" + b"NAME" + b"data"
    afb = bytes.fromhex("8fce0003") + bytes(8) + b"XYZW"
    tmmbr = bytes.fromhex("83cd0004") + bytes(16)
    parsed = parse_compound(app + afb + tmmbr)
    assert parsed == [
        UnknownRtcp(204, 1, app[4:]),
        UnknownRtcp(206, 15, afb[4:]),
        UnknownRtcp(205, 3, tmmbr[4:]),
    ]
    assert serialize_compound(parsed) == app + afb + tmmbr


def test_padding_is_stripped() -> None:
    padded = bytes.fromhex("a1ce0003") + b"\x00\x00\x00\x01\x00\x00\x00\x02" + b"\x00\x00\x00\x04"
    assert parse_compound(padded) == [PictureLossIndication(1, 2)]
    assert UnknownRtcp(204, 0, b"abcde").serialize() == bytes.fromhex("a0cc0002") + b"abcde\0\0\3"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (b"\x80\xc8\x00", "too short"),
        (bytes.fromhex("40ce0002") + bytes(8), "version"),
        (bytes.fromhex("81ce0002") + bytes(4), "runs past"),
        (FIXTURES["rtcp_aiortc_pli.bin"] + b"\x80", "trailing"),
        (bytes.fromhex("a1ce0002") + bytes(8), "padding"),
        (bytes.fromhex("a1ce0002") + bytes(7) + b"\x09", "padding"),
        (bytes.fromhex("a1ce0000"), "padding"),
        (bytes.fromhex("81c80006") + bytes(24), "report"),
        (bytes.fromhex("80c80001") + bytes(4), "sender info"),
        (bytes.fromhex("80c90000"), "RR too short"),
        (bytes.fromhex("81ca0002") + b"\x00\x00\x00\x01\x01\x09abc", "SDES item"),
        (bytes.fromhex("81ca0002") + b"\x00\x00\x00\x01\x01\x02ab", "end item"),
        (bytes.fromhex("82ca0002") + b"\x00\x00\x00\x01\x00\x00\x00\x00", "ends inside"),
        (bytes.fromhex("81ca0003") + b"\x00\x00\x00\x01" + bytes(8), "SDES length"),
        (bytes.fromhex("82cb0001") + bytes(4), "BYE too short"),
        (bytes.fromhex("81cb0002") + bytes(3) + b"\x01\x09abc", "BYE reason"),
        (bytes.fromhex("81cd0002") + bytes(8), "no FCI"),
        (bytes.fromhex("a1cd0003") + bytes(8) + b"\x00\x00\x00\x03", "partial"),
        (bytes.fromhex("81cd0001") + bytes(4), "too short"),
        (bytes.fromhex("81ce0003") + bytes(12), "no FCI"),
        (bytes.fromhex("84ce0002") + bytes(8), "FIR"),
        (bytes.fromhex("84ce0003") + bytes(12), "FIR"),
        (bytes.fromhex("8fce0004") + bytes(8) + b"REMB\x02\x00\x00\x00", "REMB"),
    ],
)
def test_malformed_compounds_raise_value_error(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_compound(data)


@pytest.mark.parametrize(
    "packet",
    [
        ReportBlock(1, fraction_lost=256),
        ReportBlock(1, cumulative_lost=1 << 23),
        ReportBlock(1 << 32),
        ReceiverReport(1, tuple(ReportBlock(i) for i in range(32))),
        SourceDescription((SdesChunk(1, ((0, b"x"),)),)),
        SourceDescription((SdesChunk(1, ((1, bytes(256)),)),)),
        Bye((1,), bytes(256)),
        FullIntraRequest(1, ((1, 256),)),
        Remb(1, -1),
        UnknownRtcp(256, 0, b""),
        UnknownRtcp(204, 32, b""),
        UnknownRtcp(204, 0, bytes(0x40000)),
    ],
)
def test_fields_that_do_not_fit_raise_value_error(packet: RtcpPacket | ReportBlock) -> None:
    with pytest.raises(ValueError):
        packet.serialize()


def test_report_block_signed_cumulative_lost() -> None:
    block = ReportBlock(1, 2, -3, 4, 5, 6, 7)
    data = block.serialize()
    assert data[4:8] == b"\x02\xff\xff\xfd"
    assert ReportBlock.parse(data) == block
    with pytest.raises(ValueError, match="24 bytes"):
        ReportBlock.parse(data[:-1])


# --------------------------------------------------------------------------------------------
# NTP time


def test_ntp_from_unix() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(1.5) == (2_208_988_801 << 32) | 0x8000_0000
    assert unix_from_ntp(ntp_from_unix(1_700_000_000.25)) == 1_700_000_000.25
    assert ntp_middle32(0x1122_3344_5566_7788) == 0x3344_5566
    assert ntp_short_from_seconds(1.0) == 65536
    assert ntp_short_from_seconds(-1.0) == 0


def test_rtt_from_report_block() -> None:
    sent = ntp_middle32(ntp_from_unix(1_700_000_000.0))
    block = ReportBlock(1, lsr=sent, dlsr=ntp_short_from_seconds(0.5))
    now = ntp_middle32(ntp_from_unix(1_700_000_000.0 + 0.5 + 0.042))
    assert rtt_from_report_block(block, now) == pytest.approx(0.042, abs=2 / 65536)
    assert rtt_from_report_block(ReportBlock(1), now) is None
    # Rounding can put "now" a hair before LSR + DLSR: that is a zero RTT, not 18 hours.
    assert rtt_from_report_block(block, (sent + block.dlsr - 1) & 0xFFFFFFFF) == 0.0


def test_rtt_across_the_32_bit_wrap() -> None:
    block = ReportBlock(1, lsr=0xFFFF_0000, dlsr=0x8000)
    assert rtt_from_report_block(block, 0x0000_1000) == pytest.approx((0x9000) / 65536)


# --------------------------------------------------------------------------------------------
# Fuzzing


def _check_parse(data: bytes) -> None:
    """Only ValueError may escape; whatever parses must survive a serialize/parse cycle."""
    try:
        parsed = parse_compound(data)
    except ValueError:
        return
    assert parse_compound(serialize_compound(parsed)) == parsed


@given(st.binary(max_size=120))
def test_arbitrary_bytes_raise_only_value_error(data: bytes) -> None:
    _check_parse(data)


@st.composite
def rtcp_headed_bytes(draw: st.DrawFn) -> bytes:
    """Valid headers over random bodies, so the fuzzing reaches every type's parser."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.binary(max_size=60))
        body += bytes(-len(body) % 4)
        packet_type = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206]))
        first = 0x80 | draw(st.booleans()) << 5 | draw(st.sampled_from([0, 1, 2, 4, 15, 31]))
        out += bytes((first, packet_type)) + struct.pack("!H", len(body) // 4) + body
    return out


@settings(max_examples=300)
@given(rtcp_headed_bytes())
def test_headed_random_bodies_raise_only_value_error(data: bytes) -> None:
    _check_parse(data)


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


@settings(max_examples=300)
@given(mutated_fixtures())
def test_mutated_fixtures_raise_only_value_error(data: bytes) -> None:
    _check_parse(data)


u32 = st.integers(0, 0xFFFFFFFF)
report_blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-(1 << 23), (1 << 23) - 1),
    u32,
    u32,
    u32,
    u32,
)
blocks = st.lists(report_blocks, max_size=3).map(tuple)


@st.composite
def twcc_packets(draw: st.DrawFn) -> TransportWideCC:
    statuses = tuple(draw(st.lists(st.sampled_from([0, 1, 1, 1, 2]), min_size=1, max_size=60)))
    deltas = tuple(
        draw(st.integers(0, 255) if s == 1 else st.integers(-32768, 32767)) for s in statuses if s
    )
    return TransportWideCC(
        draw(u32),
        draw(u32),
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 0xFFFFFF)),
        draw(st.integers(0, 255)),
        statuses,
        deltas,
    )


rtcp_packets = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, (1 << 64) - 1), u32, u32, u32, blocks),
    st.builds(ReceiverReport, u32, blocks),
    st.builds(
        SourceDescription,
        st.lists(
            st.builds(
                SdesChunk,
                u32,
                st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=3).map(
                    tuple
                ),
            ),
            max_size=3,
        ).map(tuple),
    ),
    st.builds(Bye, st.lists(u32, max_size=3).map(tuple), st.none() | st.binary(max_size=12)),
    st.builds(PictureLossIndication, u32, u32),
    st.builds(
        FullIntraRequest,
        u32,
        st.lists(st.tuples(u32, st.integers(0, 255)), min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        GenericNack,
        u32,
        u32,
        st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=20).map(tuple),
    ),
    st.builds(
        Remb,
        u32,
        st.builds(lambda m, e: m << e, st.integers(0, 0x3FFFF), st.integers(0, 63)),
        st.lists(u32, max_size=4).map(tuple),
    ),
    twcc_packets(),
    st.builds(
        UnknownRtcp,
        st.sampled_from([204, 207, 210]),
        st.integers(0, 31),
        st.binary(max_size=16),
    ),
)


@settings(max_examples=300)
@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_generated_compounds_round_trip(compound: list[RtcpPacket]) -> None:
    assert parse_compound(serialize_compound(compound)) == compound


@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=40))
def test_nack_from_lost_round_trips_as_a_set(lost: list[int]) -> None:
    nack = GenericNack.from_lost(1, 2, lost)
    (parsed,) = parse_compound(nack.serialize())
    assert parsed == nack and set(nack.lost) == set(lost)
