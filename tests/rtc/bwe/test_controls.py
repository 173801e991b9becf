"""agent/rtc/bwe: the parts on their own (groups, trend, AIMD, loss control)."""

from __future__ import annotations

from agent.rtc.bwe.aimd import AimdRateControl
from agent.rtc.bwe.inter_arrival import InterArrival
from agent.rtc.bwe.loss_based import LossBasedControl
from agent.rtc.bwe.trendline import BandwidthUsage, TrendlineDetector


def test_packets_within_5_ms_of_sending_form_one_group() -> None:
    groups = InterArrival()
    deltas = [groups.add(send=t, arrival=t + 0.05, size=100, now=1.0) for t in (0, 0.002, 0.004)]
    assert deltas == [None, None, None]
    assert groups.add(send=0.010, arrival=0.060, size=100, now=1.0) is None  # 2nd group opens
    delta = groups.add(send=0.020, arrival=0.075, size=100, now=1.0)  # 3rd: 2nd complete
    assert delta is not None
    assert abs(delta.send_delta - 0.006) < 1e-9  # last send of group 2 minus of group 1
    assert abs(delta.arrival_delta - 0.006) < 1e-9
    assert delta.size_delta == 100 - 300


def test_a_growing_queue_is_overuse_and_a_draining_one_underuse() -> None:
    detector = TrendlineDetector()
    arrival = 0.0
    states = []
    for _ in range(40):  # every 10 ms group arrives 2 ms later than it was sent after the last
        arrival += 0.012
        detector.update(send_delta=0.010, arrival_delta=0.012, arrival_time=arrival)
        states.append(detector.state)
    assert BandwidthUsage.OVERUSING in states
    for _ in range(60):
        arrival += 0.008
        detector.update(send_delta=0.010, arrival_delta=0.008, arrival_time=arrival)
    assert detector.state is BandwidthUsage.UNDERUSING


def test_a_steady_path_stays_normal() -> None:
    detector = TrendlineDetector()
    for i in range(200):
        jitter = 0.001 if i % 2 else -0.001
        detector.update(send_delta=0.010, arrival_delta=0.010 + jitter, arrival_time=i * 0.01)
        assert detector.state is BandwidthUsage.NORMAL


def test_aimd_decreases_to_beta_times_the_throughput_then_holds() -> None:
    aimd = AimdRateControl(1_000_000, 50_000, 5_000_000)
    aimd.update(BandwidthUsage.OVERUSING, 800_000, now=1.0)
    assert aimd.bitrate == 0.85 * 800_000
    aimd.update(BandwidthUsage.UNDERUSING, 800_000, now=1.5)
    assert aimd.bitrate == 0.85 * 800_000


def test_aimd_grows_8_percent_a_second_while_the_capacity_is_unknown() -> None:
    aimd = AimdRateControl(1_000_000, 50_000, 5_000_000)
    aimd.update(BandwidthUsage.NORMAL, 1_000_000, now=0.0)  # hold -> increase: the 1 kbit/s minimum
    assert aimd.bitrate == 1_001_000
    aimd.update(BandwidthUsage.NORMAL, 1_000_000, now=1.0)
    assert abs(aimd.bitrate - 1_001_000 * 1.08) < 1
    before = aimd.bitrate
    aimd.update(BandwidthUsage.NORMAL, 100_000, now=2.0)  # never far above what gets through
    assert aimd.bitrate == before


def test_loss_controller_grows_holds_and_cuts() -> None:
    loss = LossBasedControl(1_000_000, 50_000, 5_000_000)
    loss.on_loss(0.0, 1_000_000, None, now=0.0)
    loss.on_loss(0.01, 1_000_000, None, now=1.0)
    assert abs(loss.bitrate - (1_080_000 + 1000)) < 1
    loss.on_loss(0.05, 2_000_000, None, now=2.0)
    assert abs(loss.bitrate - 1_081_000) < 1
    loss.on_loss(0.2, 2_000_000, 0.1, now=3.0)
    assert abs(loss.bitrate - 1_081_000 * 0.9) < 1
    loss.on_loss(0.2, 2_000_000, 0.1, now=3.2)  # within 300 ms + rtt of the last cut
    assert abs(loss.bitrate - 1_081_000 * 0.9) < 1
