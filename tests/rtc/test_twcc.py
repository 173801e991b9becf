"""agent/rtc/rtcp/twcc.py: transport-wide CC feedback, against real feedback from Chromium.

Fixtures data/rtcp_chromium_twcc_*.bin (see tests/rtc/test_rtcp.py for how they were
captured): headless Chromium receiving H.264 from aiortc with transport-cc negotiated. aiortc
stamped transport sequence numbers and dropped numbers 199, 200, 299, 349 and 499, and paused
~70 ms before a few packets (large receive deltas).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from agent.rtc.rtcp import (
    TWCC_LARGE_DELTA,
    TWCC_NOT_RECEIVED,
    TWCC_SMALL_DELTA,
    ReceiverReport,
    RtcpPacket,
    TransportWideCC,
    parse_compound,
)

DATA = Path(__file__).parent / "data"
FIXTURES = {path.name: path.read_bytes() for path in sorted(DATA.glob("rtcp_chromium_*.bin"))}
DROPPED_TRANSPORT_SEQS = {199, 200, 299, 349, 499}


def packets(name: str) -> list[RtcpPacket]:
    return parse_compound(FIXTURES[name])


@pytest.mark.parametrize("name", [n for n in sorted(FIXTURES) if "twcc" in n])
def test_twcc_fixture_values(name: str) -> None:
    (twcc,) = packets(name)
    assert isinstance(twcc, TransportWideCC)
    raw = FIXTURES[name]
    base, status_count = struct.unpack_from("!HH", raw, 12)
    assert (twcc.base_sequence, len(twcc.statuses)) == (base, status_count)
    received = [s for s in twcc.statuses if s != TWCC_NOT_RECEIVED]
    assert len(twcc.deltas) == len(received)
    for status, delta in zip(received, twcc.deltas, strict=True):
        assert (0 <= delta <= 255) if status == TWCC_SMALL_DELTA else status == TWCC_LARGE_DELTA
    arrivals = twcc.arrivals()
    lost = {seq for seq, at in arrivals if at is None}
    covered = {seq for seq, _ in arrivals}
    # Exactly the packets aiortc dropped are reported missing.
    assert lost == DROPPED_TRANSPORT_SEQS & covered
    times = [at for _, at in arrivals if at is not None]
    assert times[0] >= twcc.reference_time * 64_000


def test_twcc_fixtures_cover_every_chunk_kind() -> None:
    kinds: set[str] = set()
    for name in (
        "rtcp_chromium_twcc_loss.bin",
        "rtcp_chromium_twcc_mixed.bin",
        "rtcp_chromium_twcc_run.bin",
    ):
        raw = FIXTURES[name]
        (twcc,) = packets(name)
        assert isinstance(twcc, TransportWideCC)
        pos, covered = 20, 0
        while covered < len(twcc.statuses):
            (chunk,) = struct.unpack_from("!H", raw, pos)
            pos += 2
            if not chunk & 0x8000:
                kinds.add("run")
                covered += chunk & 0x1FFF
            else:
                kinds.add("two-bit" if chunk & 0x4000 else "one-bit")
                covered += 7 if chunk & 0x4000 else 14
    assert kinds == {"run", "one-bit", "two-bit"}
    (mixed,) = packets("rtcp_chromium_twcc_mixed.bin")
    assert isinstance(mixed, TransportWideCC) and TWCC_LARGE_DELTA in mixed.statuses
    (first,) = packets("rtcp_chromium_twcc_run.bin")
    assert isinstance(first, TransportWideCC)
    assert (first.base_sequence, first.feedback_count) == (0, 0)


def test_twcc_media_ssrc_is_the_aiortc_sender() -> None:
    (twcc,), (rr, _) = packets("rtcp_chromium_twcc_loss.bin"), packets("rtcp_chromium_rr_nack.bin")
    assert isinstance(twcc, TransportWideCC) and isinstance(rr, ReceiverReport)
    assert twcc.media_ssrc == rr.reports[0].ssrc


# --------------------------------------------------------------------------------------------
# Constructed packets and encoder edge cases


def test_twcc_negative_and_large_deltas_round_trip() -> None:
    twcc = TransportWideCC(1, 2, 65530, 0xFFFFFF, 255, (2, 0, 1, 2, 0, 0), (-5, 255, 4000))
    assert parse_compound(twcc.serialize()) == [twcc]
    assert [seq for seq, _ in twcc.arrivals()] == [65530, 65531, 65532, 65533, 65534, 65535]


@pytest.mark.parametrize(
    ("statuses", "chunks"),
    [
        ((1,) * 20, [0x2014]),
        ((1, 0) * 7, [0xAAAA]),
        ((2, 1, 1), [0xE500]),
        ((1,) * 7 + (2,), [0x2007, 0x4001]),
        ((1, 0) * 4 + (2,), [0xD111, 0xC800]),
    ],
)
def test_twcc_chunks_follow_libwebrtc(statuses: tuple[int, ...], chunks: list[int]) -> None:
    deltas = tuple(1 for s in statuses if s)
    data = TransportWideCC(1, 2, 0, 0, 0, statuses, deltas).serialize()
    assert list(struct.unpack_from(f"!{len(chunks)}H", data, 20)) == chunks


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("8fcd0003") + bytes(12), "TWCC too short"),
        (bytes.fromhex("8fcd0004") + bytes(8) + b"\x00\x00\x00\x00" + bytes(4), "no packets"),
        (bytes.fromhex("8fcd0004") + bytes(8) + b"\x00\x00\x00\x02" + bytes(4), "chunks"),
        (
            bytes.fromhex("8fcd0005")
            + bytes(8)
            + b"\x00\x00\x00\x03"
            + bytes(4)
            + b"\x20\x03\x00\x00",
            "deltas",
        ),
        (
            bytes.fromhex("8fcd0005")
            + bytes(8)
            + b"\x00\x00\x00\x01"
            + bytes(4)
            + b"\x60\x01\x00\x00",
            "reserved",
        ),
        (
            bytes.fromhex("8fcd0006")
            + bytes(8)
            + b"\x00\x00\x00\x01"
            + bytes(4)
            + b"\x20\x01\x05\x00"
            + bytes(4),
            "after",
        ),
        (
            bytes.fromhex("8fcd0005")
            + bytes(8)
            + b"\x00\x00\x00\x01"
            + bytes(4)
            + b"\x20\x01\x05\x01",
            "after",
        ),
    ],
)
def test_malformed_twcc_raises_value_error(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_compound(data)


@pytest.mark.parametrize(
    "packet",
    [
        TransportWideCC(1, 2, 0, 0, 0, (), ()),
        TransportWideCC(1, 2, 0, 0, 0, (3,), (1,)),
        TransportWideCC(1, 2, 0, 0, 0, (1,), ()),
        TransportWideCC(1, 2, 0, 0, 0, (1,), (256,)),
        TransportWideCC(1, 2, 0, 0, 0, (2,), (1 << 15,)),
        TransportWideCC(1, 2, 0, 1 << 24, 0, (0,), ()),
    ],
)
def test_fields_that_do_not_fit_raise_value_error(packet: TransportWideCC) -> None:
    with pytest.raises(ValueError):
        packet.serialize()
