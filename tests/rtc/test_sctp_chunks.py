"""Chunk and packet wire formats: round trips, every parser under hypothesis (ValueError or
a value, nothing else), and bad input aborting only the association that got it."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.rtc.sctp import Closed, State
from agent.rtc.sctp.chunks import (
    Abort,
    CookieAck,
    CookieEcho,
    Error,
    Heartbeat,
    HeartbeatAck,
    Init,
    InitAck,
    Shutdown,
    ShutdownAck,
    ShutdownComplete,
)
from agent.rtc.sctp.cookie import StateCookie
from agent.rtc.sctp.data_chunks import Data, ForwardTsn, Sack
from agent.rtc.sctp.handshake import our_params
from agent.rtc.sctp.packet import Packet, parse_chunk, serialize_packet
from agent.rtc.sctp.params import PARAM_STATE_COOKIE, Tlv, parse_tlvs
from agent.rtc.sctp.reconfig import (
    IncomingResetRequest,
    OutgoingResetRequest,
    ReConfig,
    ReconfigResponse,
)
from tests.rtc.sctp_helpers import connected_pair

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)

SAMPLES = [
    Data(7, 1, 2, 51, b"hello", begin=True, end=False, unordered=True),
    Sack(100, 65536, ((2, 3), (5, 9)), (99, 98)),
    ForwardTsn(200, ((1, 5), (2, 7))),
    Init(0x1234, 1 << 20, 65535, 65535, 42, our_params()),
    InitAck(0x1234, 1 << 20, 10, 10, 42, (Tlv(PARAM_STATE_COOKIE, b"cookie"), *our_params())),
    CookieEcho(b"cookie"),
    CookieAck(),
    Heartbeat(b"info1234"),
    HeartbeatAck(b"info1234"),
    Abort((Tlv(12, b"bye"),), reflected=True),
    Error((Tlv(6, b"\x55\x00\x00\x04"),)),
    Shutdown(77),
    ShutdownAck(),
    ShutdownComplete(reflected=False),
    ReConfig((OutgoingResetRequest(1, 2, 3, (4, 6)), IncomingResetRequest(9, (1,)))),
    ReConfig((ReconfigResponse(5, 1),)),
]


@pytest.mark.parametrize("chunk", SAMPLES, ids=lambda c: type(c).__name__)
def test_round_trip(chunk: object) -> None:
    encoded = chunk.serialize()  # type: ignore[attr-defined]
    assert len(encoded) % 4 == 0
    assert parse_chunk(encoded) == chunk


def test_packet_crc32c_round_trip_and_detects_corruption() -> None:
    packet = Packet(5000, 5000, 0xDEADBEEF, (CookieAck(), Sack(1, 2)))
    data = packet.serialize()
    assert Packet.parse(data) == packet
    corrupted = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(ValueError, match="CRC32c"):
        Packet.parse(corrupted)


def test_crc32c_matches_rfc_byte_order() -> None:
    # An INIT captured from aiortc 1.16 (which browsers interoperate with): its checksum
    # validates only with the CRC stored least significant byte first.
    raw = serialize_packet(5000, 5000, 0, [Init(1, 2, 3, 4, 5).serialize()])
    (stored,) = struct.unpack_from("<I", raw, 8)
    import crc32c

    assert stored == crc32c.crc32c(raw[:8] + b"\x00" * 4 + raw[12:])


PARSERS = [
    Data.parse,
    Sack.parse,
    ForwardTsn.parse,
    Init.parse,
    InitAck.parse,
    CookieEcho.parse,
    Heartbeat.parse,
    Abort.parse,
    Shutdown.parse,
    ShutdownComplete.parse,
    ReConfig.parse,
    parse_chunk,
    Packet.parse,
    parse_tlvs,
]


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: getattr(p, "__qualname__", str(p)))
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_parsers_raise_only_value_error(parser: object, data: bytes) -> None:
    with contextlib.suppress(ValueError):
        parser(data)  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from([0, 1, 2, 3, 4, 6, 7, 10, 130, 192]), body=st.binary(max_size=64))
def test_well_framed_chunks_parse_or_raise_value_error(kind: int, body: bytes) -> None:
    raw = struct.pack("!BBH", kind, 0, 4 + len(body)) + body + b"\x00" * (-len(body) % 4)
    try:
        chunk = parse_chunk(raw)
    except ValueError:
        return
    assert parse_chunk(chunk.serialize()) == chunk


def test_many_tiny_parameters_parse_in_one_pass() -> None:
    # 16000 empty TLVs: a reader that re-sliced the rest of the buffer per TLV would be
    # quadratic (about 2 GB of copying here) and hit the test timeout.
    params = b"".join(Tlv(0x9000, b"").serialize() for _ in range(16000))
    assert len(parse_tlvs(params)) == 16000


@settings(max_examples=40, deadline=None)
@given(
    tsn=u32,
    stream=u16,
    ssn=u16,
    ppid=u32,
    data=st.binary(min_size=1, max_size=50),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans()),
)
def test_data_round_trip(
    tsn: int, stream: int, ssn: int, ppid: int, data: bytes, flags: tuple[bool, bool, bool]
) -> None:
    chunk = Data(tsn, stream, ssn, ppid, data, begin=flags[0], end=flags[1], unordered=flags[2])
    assert Data.parse(chunk.serialize()) == chunk


def test_cookie_rejects_tampering_and_age() -> None:
    cookie = StateCookie(10.0, 1, 2, 3, 4, 5, 6, True, False)
    signed = cookie.sign(b"k" * 32)
    assert StateCookie.verify(signed, b"k" * 32, 11.0) == cookie
    with pytest.raises(ValueError, match="signature"):
        StateCookie.verify(signed[:-1] + bytes([signed[-1] ^ 1]), b"k" * 32, 11.0)
    with pytest.raises(ValueError, match="stale"):
        StateCookie.verify(signed, b"k" * 32, 100.0)


def _inject(chunks: list[bytes] | str) -> tuple[object, object, object]:
    """A connected pair; ``chunks`` arrive at b in a packet with a valid tag and CRC."""
    a, b, net = connected_pair(delay=0.01)
    if isinstance(chunks, str):  # relative to where the association's TSNs are
        ours, theirs = b.association.initial_tsn, a.association.initial_tsn
        chunks = {
            "sack-ahead": [Sack((ours + 1000) & 0xFFFFFFFF, 1000).serialize()],
            "data-ahead": [Data((theirs + 0x20000) & 0xFFFFFFFF, 0, 0, 53, b"x").serialize()],
            "forward-ahead": [ForwardTsn((theirs + 0x20000) & 0xFFFFFFFF).serialize()],
        }[chunks]
    packet = serialize_packet(5000, 5000, b.association.local_tag, chunks)
    b.receive(packet, net.now)
    return a, b, net


@pytest.mark.parametrize(
    ("chunks", "reason"),
    [
        ([b"\x00\x03\x00\x08\x00\x00"], "bad chunk length"),  # truncated DATA
        ([struct.pack("!BBHI", 3, 0, 8, 1)], "truncated SACK"),
        ("sack-ahead", "never sent"),
        ("data-ahead", "out of window"),
        ("forward-ahead", "out of window"),
        ([struct.pack("!BBH", 0, 3, 16) + b"\x00" * 12], "without user data"),
    ],
)
def test_bad_chunks_abort_only_that_association(chunks: list[bytes] | str, reason: str) -> None:
    # Another, healthy pair runs beside it and must not notice.
    other_a, other_b, other_net = connected_pair(delay=0.01)
    a, b, net = _inject(chunks)
    assert b.association.state is State.TERMINATED  # type: ignore[attr-defined]
    closed = b.events[-1]  # type: ignore[attr-defined]
    assert isinstance(closed, Closed) and reason in closed.reason
    net.run(lambda: a.association.state is State.TERMINATED)  # type: ignore[attr-defined]
    other_a.association.send(0, 53, b"still fine", now=other_net.now)
    other_net.run(lambda: bool(other_b.messages()))
    assert other_b.messages()[0].data == b"still fine"


@settings(max_examples=60, deadline=None)
@given(garbage=st.binary(min_size=0, max_size=200))
def test_garbage_never_raises_to_the_caller(garbage: bytes) -> None:
    _a, b, net = connected_pair(delay=0.01)
    b.receive(garbage, net.now)  # type: ignore[attr-defined]
    packet = serialize_packet(5000, 5000, b.association.local_tag, [garbage])  # type: ignore[attr-defined]
    b.receive(packet, net.now)  # type: ignore[attr-defined]
    assert b.association.state in (State.ESTABLISHED, State.TERMINATED)  # type: ignore[attr-defined]
