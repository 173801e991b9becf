"""session.stats params: rates over the interval between two readings of PeerStats."""

from __future__ import annotations

from agent.net.session_stats import StatsSampler
from agent.rtc.peer import PeerStats


def test_rates_are_deltas_over_the_elapsed_time() -> None:
    sampler = StatsSampler("s1")
    stats = PeerStats(bytes_sent=1000, frames_sent=10, nacks_received=2, rtt=0.0123456)
    first = sampler.sample(stats, now=5.0, wallclock=1e9, keyframes_in=3)
    assert (first["bitrate"], first["fps"]) == (0, 0.0)  # no interval yet
    stats.bytes_sent, stats.frames_sent = 1000 + 250_000, 10 + 60
    second = sampler.sample(stats, now=7.0, wallclock=1e9 + 2, keyframes_in=4)
    assert second["bitrate"] == 1_000_000 and second["fps"] == 30.0
    assert second["rtt"] == 0.0123 and second["nacks"] == 2 and second["keyframes"] == 4
    assert second["session"] == "s1" and sampler.samples == 2


def test_unknown_rtt_is_null() -> None:
    assert StatsSampler("s").sample(PeerStats(), 0.0, 0.0, 0)["rtt"] is None
