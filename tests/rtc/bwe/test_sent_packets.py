"""agent/rtc/bwe/sent_packets.py: matching TWCC feedback to what was sent."""

from __future__ import annotations

import pytest

from agent.rtc.bwe.sent_packets import MAX_HISTORY, PacketResult, SentPacketHistory
from agent.rtc.rtcp import TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA, TransportWideCC


def feedback(base: int, statuses: list[int], reference: int = 100) -> TransportWideCC:
    deltas = tuple(4 for s in statuses if s)  # 1 ms apart
    return TransportWideCC(1, 2, base, reference, 0, tuple(statuses), deltas)


def test_feedback_across_the_16_bit_wrap_finds_its_packets() -> None:
    history = SentPacketHistory()
    for i, seq in enumerate([0xFFFE, 0xFFFF, 0, 1]):
        history.on_sent(seq, 1000 + i, now=i * 0.01)
    results = history.on_feedback(feedback(0xFFFE, [TWCC_SMALL_DELTA] * 4))
    assert [r.sequence for r in results] == [0xFFFE, 0xFFFF, 0x10000, 0x10001]
    assert [r.size for r in results] == [1000, 1001, 1002, 1003]
    assert [r.send_time for r in results] == [0.0, 0.01, 0.02, 0.03]
    arrivals = [r.arrival for r in results]
    assert arrivals == pytest.approx([100 * 0.064 + 0.001 * (i + 1) for i in range(4)])


def test_repeated_feedback_reports_nothing_new() -> None:
    history = SentPacketHistory()
    for seq in range(3):
        history.on_sent(seq, 1200, now=0.0)
    report = feedback(0, [TWCC_SMALL_DELTA, TWCC_NOT_RECEIVED, TWCC_SMALL_DELTA])
    assert [r.arrival is None for r in history.on_feedback(report)] == [False, True, False]
    assert history.on_feedback(report) == []


def test_a_packet_reported_lost_may_arrive_later() -> None:
    history = SentPacketHistory()
    for seq in range(2):
        history.on_sent(seq, 1200, now=0.0)
    history.on_feedback(feedback(0, [TWCC_SMALL_DELTA, TWCC_NOT_RECEIVED]))
    (late,) = history.on_feedback(feedback(1, [TWCC_SMALL_DELTA]))
    assert late.sequence == 1 and late.arrival is not None


def test_unknown_and_forgotten_packets_are_skipped() -> None:
    history = SentPacketHistory()
    for seq in range(MAX_HISTORY + 10):
        history.on_sent(seq & 0xFFFF, 100, now=0.0)
    assert history.on_feedback(feedback(0, [TWCC_SMALL_DELTA] * 10)) == []
    assert history.on_feedback(feedback(0x9000, [TWCC_SMALL_DELTA])) == []  # never sent
    (known,) = history.on_feedback(feedback(MAX_HISTORY + 9, [TWCC_SMALL_DELTA]))
    assert known == PacketResult(MAX_HISTORY + 9, 0.0, 100, known.arrival)


def test_the_reference_time_unwraps_so_arrivals_keep_growing() -> None:
    history = SentPacketHistory()
    history.on_sent(0, 100, now=0.0)
    history.on_sent(1, 100, now=0.05)
    (first,) = history.on_feedback(feedback(0, [TWCC_SMALL_DELTA], reference=0xFFFFFF))
    (second,) = history.on_feedback(feedback(1, [TWCC_SMALL_DELTA], reference=0))
    assert first.arrival is not None and second.arrival is not None
    assert abs(second.arrival - first.arrival - 0.064) < 1e-9
