"""agent/media/bitrate_policy.py: weakest viewer above the floor, smoothed, rate-limited, capped."""

from __future__ import annotations

from agent.media.bitrate_policy import BitratePolicy, PolicyDecision


def test_the_encoder_follows_the_weakest_viewer_at_or_above_the_floor() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    decision = policy.update({"a": 1_500_000, "b": 800_000, "c": 300_000}, now=0.0)
    assert decision == PolicyDecision(800_000, frozenset({"c"}))


def test_a_viewer_exactly_at_the_floor_counts() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    decision = policy.update({"a": 1_500_000, "b": 500_000}, now=0.0)
    assert decision == PolicyDecision(500_000, frozenset())


def test_all_below_the_floor_follows_the_strongest() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    decision = policy.update({"a": 200_000, "b": 400_000}, now=0.0)
    assert decision == PolicyDecision(400_000, frozenset({"a", "b"}))


def test_never_above_the_cap() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    assert policy.update({"a": 9_000_000}, now=0.0) == PolicyDecision(2_000_000, frozenset())
    policy.set_max_bitrate(1_000_000)
    assert policy.update({"a": 9_000_000}, now=5.0) == PolicyDecision(1_000_000, frozenset())


def test_at_most_one_change_per_interval() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=100_000, min_interval=1.0)
    assert policy.update({"a": 1_000_000}, now=0.0) is not None
    assert policy.update({"a": 500_000}, now=0.5) is None
    assert policy.update({"a": 500_000}, now=0.99) is None
    assert policy.update({"a": 500_000}, now=1.0) == PolicyDecision(500_000, frozenset())


def test_decreases_apply_at_once_and_increases_are_smoothed() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=100_000, smoothing=0.5)
    policy.update({"a": 1_000_000}, now=0.0)
    up = policy.update({"a": 1_800_000}, now=1.0)
    assert up is not None and up.encoder_bitrate == 1_400_000
    up = policy.update({"a": 1_800_000}, now=2.0)
    assert up is not None and up.encoder_bitrate == 1_600_000
    down = policy.update({"a": 600_000}, now=3.0)
    assert down is not None and down.encoder_bitrate == 600_000


def test_no_decision_without_a_change() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=100_000)
    policy.update({"a": 1_000_000}, now=0.0)
    assert policy.update({"a": 1_000_000}, now=5.0) is None
    assert policy.update({"a": 1_020_000}, now=6.0) is None  # under 5%: not worth a change
    assert policy.update({}, now=7.0) is None


def test_a_viewer_crossing_the_floor_is_a_change() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    policy.update({"a": 1_000_000, "b": 1_000_000}, now=0.0)
    decision = policy.update({"a": 1_000_000, "b": 300_000}, now=1.0)
    assert decision == PolicyDecision(1_000_000, frozenset({"b"}))


def test_describe_shows_the_policy_for_telemetry() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    policy.update({"b": 300_000, "a": 900_000}, now=0.0)
    assert policy.describe() == {
        "encoder_bitrate": 900_000,
        "max_bitrate": 2_000_000,
        "floor": 500_000,
        "min_interval": 1.0,
        "viewers": {"a": 900_000, "b": 300_000},
        "below_floor": ["b"],
    }


def test_two_viewers_one_behind_300_kbit_the_other_keeps_its_bitrate() -> None:
    """Issue 11's two-viewer case in virtual time (tests/rtc/link_sim.py): one shared encoder."""
    from tests.rtc.link_sim import CallSim, Link

    policy = BitratePolicy(max_bitrate=2_000_000, floor=500_000)
    encoder = {"bitrate": 1_000_000}
    viewers = {
        "good": CallSim(Link(capacity=[(0, 5_000_000)]), start_bitrate=1_000_000),
        "slow": CallSim(Link(capacity=[(0, 300_000)]), start_bitrate=1_000_000),
    }
    for sim in viewers.values():
        sim.encoder_bitrate = lambda: encoder["bitrate"]
    decisions: list[PolicyDecision] = []
    for step in range(1, 401):  # 40 s in steps of 0.1 s
        now = step / 10
        for sim in viewers.values():
            sim.run(now)
        estimates = {name: sim.estimator.target_bitrate for name, sim in viewers.items()}
        if (decision := policy.update(estimates, now)) is not None:
            encoder["bitrate"] = decision.encoder_bitrate
            decisions.append(decision)
    assert encoder["bitrate"] == 2_000_000  # the good viewer's full bitrate: the cap
    assert decisions[-1].below_floor == frozenset({"slow"})
    slow = viewers["slow"]
    assert slow.estimator.target_bitrate < 300_000
    # "Keyframes and what fits": every keyframe reached its pacer, and the pacer holds the
    # excess (at most its queue bound) instead of the path: no queue up to the link's
    # drop-tail limit (250 ms), no loss once the estimate has settled.
    assert slow.keyframes_sent == 20
    settled = [s for s in slow.samples if s.time > 20]
    assert max(s.queue_delay for s in settled) < 0.25
    assert all(s.stats.loss_fraction == 0 for s in settled)


def test_the_last_small_step_to_the_cap_is_taken() -> None:
    policy = BitratePolicy(max_bitrate=2_000_000, floor=100_000, smoothing=1.0)
    policy.update({"a": 1_950_000}, now=0.0)
    assert policy.update({"a": 2_500_000}, now=1.0) == PolicyDecision(2_000_000, frozenset())
