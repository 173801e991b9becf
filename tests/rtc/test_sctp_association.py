"""The association in virtual time: handshake (with each packet lost), data under loss and
reordering, flow control, timers with exact deadlines, partial reliability, resets, endings."""

from __future__ import annotations

import os
import re

import pytest

from agent.rtc.sctp import Closed, SendBufferFull, State, StreamsReset
from agent.rtc.sctp.packet import Packet
from agent.rtc.sctp.rto import RTO_MAX
from tests.rtc.sctp_helpers import chunk_names, connected_pair, make_pair
from tests.rtc.sctp_net import Sent


@pytest.mark.parametrize(
    ("lost", "t1_fires_at"),
    [("Init", 1.0), ("InitAck", 1.0), ("CookieEcho", 1.02), ("CookieAck", 1.02)],
)
def test_handshake_survives_losing_any_one_packet(lost: str, t1_fires_at: float) -> None:
    seen: list[str] = []

    def drop(sent: Sent) -> bool:
        names = chunk_names(sent)
        first = names[0] == lost and lost not in seen
        seen.extend(names)
        return first

    a, b, net = make_pair(delay=0.01, drop=drop)
    a.association.connect(0.0)
    net.run(lambda: a.connected and b.connected)
    assert [chunk_names(d)[0] for d in net.dropped] == [lost]
    # The initiator's T1-init or T1-cookie (1 s, RFC 9260 RTO.Initial) brings it back.
    assert net.timers_fired[0] == (pytest.approx(t1_fires_at), 0)
    a.association.send(0, 53, b"after", now=net.now)
    net.run(lambda: bool(b.messages()))
    assert b.messages()[0].data == b"after"


def test_t1_init_doubles_and_gives_up() -> None:
    a, _b, net = make_pair(drop=lambda sent: True)
    a.association.connect(0.0)
    net.run(lambda: any(isinstance(e, Closed) for e in a.events))
    inits = [s.now for s in net.sent if s.sender == 0]
    assert inits == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0]
    assert a.events[-1] == Closed("handshake timed out")


def test_init_collision_both_sides_connect() -> None:
    a, b, net = make_pair(delay=0.01)
    a.association.connect(0.0)
    b.association.connect(0.0)
    net.run(lambda: a.connected and b.connected)
    b.association.send(1, 51, b"hi", now=net.now)
    net.run(lambda: bool(a.messages()))
    assert a.messages()[0].data == b"hi"


def test_one_megabyte_across_loss_and_reordering_arrives_intact() -> None:
    a, b, net = connected_pair(delay=0.02, jitter=0.01, loss=0.05, seed=7)
    message = os.urandom(1024 * 1024)
    a.association.send(3, 53, message, now=net.now)
    net.run(lambda: bool(b.messages()), max_time=300)
    assert [m.data for m in b.messages()] == [message]
    assert len(net.dropped) > 0
    assert a.association.outbound.rtx.retransmissions_sent > 0


def test_four_megabyte_message_both_ways() -> None:
    a, b, net = connected_pair(delay=0.005)
    one, two = os.urandom(4_000_000), os.urandom(4_000_000)
    a.association.send(0, 53, one, now=net.now)
    b.association.send(1, 53, two, now=net.now)
    net.run(lambda: bool(a.messages()) and bool(b.messages()))
    assert b.messages()[0].data == one and a.messages()[0].data == two


def test_ten_megabytes_neither_stall_nor_flood() -> None:
    a, b, net = connected_pair(delay=0.01, loss=0.01, seed=3)
    sender = a.association
    chunk = os.urandom(65536)
    total, sent = 10 * 1024 * 1024, 0
    peak_queued = peak_outstanding = 0
    while sent < total or len(b.messages()) < total // len(chunk):
        # The caller's flow control: keep about 1 MB queued, as a browser app would.
        while sent < total and sender.outbound.buffered_total < 1024 * 1024:
            sender.send(5, 53, chunk, now=net.now)
            sent += len(chunk)
        peak_queued = max(peak_queued, sender.outbound.buffered_total)
        peak_outstanding = max(peak_outstanding, sender.outbound.rtx.outstanding_bytes)
        assert net.step()
    assert b"".join(m.data for m in b.messages()) == chunk * (total // len(chunk))
    assert peak_queued < 1024 * 1024 + len(chunk)
    # Unacknowledged data never exceeded the window the receiver offered.
    assert 0 < peak_outstanding <= b.association.receive_buffer


def test_send_buffer_is_bounded_with_a_clear_error() -> None:
    a, _b, net = connected_pair()
    small = a.association.outbound
    small.send_buffer = 100_000
    a.association.send(0, 53, b"x" * 90_000, now=net.now)
    with pytest.raises(SendBufferFull):
        a.association.send(0, 53, b"x" * 90_000, now=net.now)


def test_max_message_size_enforced_both_ways() -> None:
    a, b, net = connected_pair()
    a.association.max_message_size = 1000
    with pytest.raises(ValueError, match="max-message-size"):
        a.association.send(0, 53, b"x" * 1001, now=net.now)
    b.association.reassembly.max_message_size = 5000
    a.association.max_message_size = 10_000
    a.association.send(0, 53, b"x" * 6000, now=net.now)
    net.run(lambda: b.association.state is State.TERMINATED)
    closed = b.events[-1]
    assert isinstance(closed, Closed)
    # The size seen when the limit was crossed (fragments so far), and the limit itself.
    assert re.fullmatch(
        r"received message of \d{4}\+ bytes exceeds our a=max-message-size 5000", closed.reason
    )
    net.run(lambda: a.association.state is State.TERMINATED)
    assert "max-message-size" in str(a.events[-1])


def test_t3_rto_doubles_and_is_capped() -> None:
    a, _b, net = connected_pair(delay=0.01)
    rto = a.association.outbound.rtx.rto.rto
    assert rto == 1.0  # RTO.Min: a 20 ms RTT sample still gives 1 s
    net.drop = lambda sent: sent.sender == 0
    start = net.now
    a.association.send(0, 53, b"lost", now=net.now)
    net.run(lambda: any(isinstance(e, Closed) for e in a.events), max_time=2000)
    times = [s.now - start for s in net.sent if s.sender == 0 and "Data" in chunk_names(s)]
    expected, t, r = [0.0], 0.0, 1.0
    for _ in range(10):
        t += r
        expected.append(t)
        r = min(RTO_MAX, r * 2)
    assert times[: len(expected)] == pytest.approx(expected)
    assert a.events[-1] == Closed("peer stopped acknowledging data")


def test_delayed_sack_after_200_ms_or_every_second_packet() -> None:
    a, _b, net = connected_pair(delay=0.01)
    a.association.send(0, 53, b"one", now=net.now)
    sent_at = net.now
    net.run(lambda: any("Sack" in chunk_names(s) for s in net.sent if s.sender == 1))
    sack = next(s for s in net.sent if s.sender == 1 and "Sack" in chunk_names(s))
    assert sack.now == pytest.approx(sent_at + 0.01 + 0.2)
    count = len(net.sent)
    a.association.send(0, 53, b"x" * 2000, now=net.now)  # two packets
    net.run(lambda: any("Sack" in chunk_names(s) for s in net.sent[count:] if s.sender == 1))
    second = next(s for s in net.sent[count:] if s.sender == 1 and "Sack" in chunk_names(s))
    assert second.now == pytest.approx(net.sent[count].now + 0.01)


def test_fast_retransmit_after_three_miss_indications() -> None:
    a, b, net = connected_pair(delay=0.01)
    first_data = []

    def drop(sent: Sent) -> bool:
        if sent.sender == 0 and "Data" in chunk_names(sent) and not first_data:
            first_data.append(sent)
            return True
        return False

    net.drop = drop
    start = net.now
    for _ in range(6):
        a.association.send(0, 53, b"y" * 1100, now=net.now)
    net.run(lambda: len(b.messages()) == 6)
    assert net.now - start < 0.5  # well before the 1 s T3
    assert a.association.outbound.rtx.retransmissions_sent == 1


def test_unordered_message_overtakes_a_lost_ordered_one() -> None:
    a, b, net = connected_pair(delay=0.01)
    net.drop = lambda sent: sent.sender == 0 and b"first" in sent.data and sent.now < 1
    a.association.send(0, 53, b"first", now=net.now)
    a.association.send(0, 53, b"second", ordered=False, now=net.now)
    net.run(lambda: len(b.messages()) == 2)
    assert [m.data for m in b.messages()] == [b"second", b"first"]


def test_partial_reliability_skips_lost_message_with_forward_tsn() -> None:
    a, b, net = connected_pair(delay=0.01)
    net.drop = lambda sent: sent.sender == 0 and b"lost" in sent.data
    a.association.send(2, 53, b"lost", max_retransmits=0, now=net.now)
    a.association.send(2, 53, b"kept1", max_retransmits=0, now=net.now)
    a.association.send(2, 53, b"kept2", max_retransmits=0, now=net.now)
    net.run(lambda: len(b.messages()) == 2)
    net.settle(5.0)
    assert [m.data for m in b.messages()] == [b"kept1", b"kept2"]
    assert any("ForwardTsn" in chunk_names(s) for s in net.sent if s.sender == 0)
    assert a.association.outbound.rtx.in_flight == {}


def test_lifetime_expired_message_is_skipped() -> None:
    a, b, net = connected_pair(delay=0.01)
    net.drop = lambda sent: sent.sender == 0 and b"stale" in sent.data
    a.association.send(4, 53, b"stale", lifetime=0.5, now=net.now)
    a.association.send(4, 53, b"fresh", now=net.now)
    net.run(lambda: len(b.messages()) == 1, max_time=10)
    net.settle(3.0)
    assert [m.data for m in b.messages()] == [b"fresh"]


def test_stream_reset_both_directions() -> None:
    a, b, net = connected_pair(delay=0.01)
    a.association.send(6, 53, b"before", now=net.now)
    a.association.reset_streams([6], net.now)
    net.run(lambda: any(isinstance(e, StreamsReset) for e in a.events))
    assert StreamsReset((6,), incoming=True) in b.events
    assert StreamsReset((6,), incoming=False) in a.events
    a.association.send(6, 53, b"after", now=net.now)  # SSN starts again at 0
    net.run(lambda: len(b.messages()) == 2)
    assert [m.data for m in b.messages()] == [b"before", b"after"]


def test_heartbeat_on_idle_path_and_answer() -> None:
    _a, _b, net = connected_pair(delay=0.01)
    connected_at = net.now
    net.settle(40)
    beats = [s for s in net.sent if "Heartbeat" in chunk_names(s)]
    acks = [s for s in net.sent if "HeartbeatAck" in chunk_names(s)]
    assert beats and acks
    first = min(beats, key=lambda s: s.now)
    assert first.now == pytest.approx(connected_at + 1.0 + 30.0, abs=0.05)


def test_graceful_shutdown_delivers_queued_data_first() -> None:
    a, b, net = connected_pair(delay=0.01)
    a.association.send(0, 53, b"z" * 50_000, now=net.now)
    a.association.shutdown(net.now)
    net.run(
        lambda: a.association.state is State.TERMINATED and b.association.state is State.TERMINATED
    )
    assert b.messages()[0].data == b"z" * 50_000
    assert a.events[-1] == Closed("shutdown") and b.events[-1] == Closed("shutdown")


def test_abort_reaches_the_peer_with_reason() -> None:
    a, b, net = connected_pair(delay=0.01)
    a.association.abort("going away", net.now)
    net.run(lambda: b.association.state is State.TERMINATED)
    assert b.events[-1] == Closed("aborted by peer: going away")


def test_bundling_stays_within_the_mtu() -> None:
    a, b, net = connected_pair(delay=0.01)
    sizes = [1, 100, 1171, 1172, 1173, 5000] + [100] * 200
    for size in sizes:
        a.association.send(0, 53, b"m" * size, now=net.now)
    net.run(lambda: len(b.messages()) == len(sizes))
    assert [len(m.data) for m in b.messages()] == sizes
    assert max(len(s.data) for s in net.sent) <= 1200
    # Once cwnd held the queue back, small messages shared packets.
    assert max(len(Packet.parse(s.data).chunks) for s in net.sent if s.sender == 0) >= 8
