"""agent/rtc/bwe/estimator.py: bounds, REMB-only peers, receiver reports, the max bitrate."""

from __future__ import annotations

import pytest

from agent.rtc.bwe import BweStats, SendSideEstimator
from agent.rtc.rtcp import TWCC_SMALL_DELTA, TransportWideCC

KBIT = 1000


def test_starts_at_the_start_bitrate_within_bounds() -> None:
    assert SendSideEstimator(500 * KBIT, 100 * KBIT, 2000 * KBIT).target_bitrate == 500 * KBIT
    assert SendSideEstimator(5000 * KBIT, 100 * KBIT, 2000 * KBIT).target_bitrate == 2000 * KBIT
    with pytest.raises(ValueError, match="min <= max"):
        SendSideEstimator(500 * KBIT, 300 * KBIT, 200 * KBIT)


def test_remb_only_the_target_follows_remb() -> None:
    estimator = SendSideEstimator(1000 * KBIT, 50 * KBIT, 3000 * KBIT)
    now = 0.0
    estimator.on_remb(400 * KBIT, now)
    assert estimator.target_bitrate == 400 * KBIT  # a drop applies at once
    trace = []
    for _ in range(20):  # the receiver's estimate rises; reports show no loss
        now += 1.0
        estimator.on_remb(800 * KBIT, now)
        estimator.on_loss_report(0.0, 0.05, now)
        trace.append(estimator.target_bitrate)
    assert all(t <= 800 * KBIT for t in trace)
    assert trace[-1] == 800 * KBIT
    stats = estimator.stats()
    assert stats.delay_based == 800 * KBIT and stats.state == "normal" and stats.rtt == 0.05


def test_remb_only_heavy_loss_still_cuts_below_remb() -> None:
    estimator = SendSideEstimator(1000 * KBIT, 50 * KBIT, 3000 * KBIT)
    estimator.on_remb(1000 * KBIT, 0.0)
    estimator.on_loss_report(0.3, 0.1, 1.0)
    assert estimator.target_bitrate == 850 * KBIT  # 1000 * (1 - 0.3 / 2)
    estimator.on_loss_report(0.05, 0.1, 2.0)  # moderate loss: hold
    assert estimator.target_bitrate == 850 * KBIT
    assert estimator.stats().loss_fraction == 0.05


def test_set_max_bitrate_caps_everything() -> None:
    estimator = SendSideEstimator(2000 * KBIT, 100 * KBIT, 3000 * KBIT)
    estimator.set_max_bitrate(700 * KBIT)
    assert estimator.target_bitrate == 700 * KBIT
    estimator.on_remb(5000 * KBIT, 0.0)
    assert estimator.target_bitrate == 700 * KBIT
    stats = estimator.stats()
    assert stats.delay_based <= 700 * KBIT and stats.loss_based <= 700 * KBIT


def test_stats_is_a_frozen_snapshot() -> None:
    stats = SendSideEstimator(1000 * KBIT, 100 * KBIT, 2000 * KBIT).stats()
    assert stats == BweStats(1000 * KBIT, 1000 * KBIT, 1000 * KBIT, "normal", 0.0, None)
    with pytest.raises(AttributeError):
        stats.target_bitrate = 1  # type: ignore[misc]


def _feedback(base: int, count: int, reference: int) -> TransportWideCC:
    statuses = (TWCC_SMALL_DELTA,) * count
    return TransportWideCC(1, 2, base, reference, 0, statuses, (40,) * count)  # 10 ms apart


def test_a_receiver_clock_jump_restarts_the_delay_history() -> None:
    estimator = SendSideEstimator(1000 * KBIT, 100 * KBIT, 2000 * KBIT)
    for seq in range(200):
        estimator.on_packet_sent(seq, 1200, now=seq * 0.01)
    estimator.on_transport_feedback(_feedback(0, 100, reference=1000), now=1.1)
    # The same spacing, but the receiver's clock jumped an hour ahead: no overuse from that.
    estimator.on_transport_feedback(_feedback(100, 100, reference=1000 + 56_250), now=2.1)
    assert estimator.stats().state == "normal"
    assert estimator.target_bitrate >= 1000 * KBIT
