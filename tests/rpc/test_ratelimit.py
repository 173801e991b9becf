"""Tests of agent/signaling/ratelimit.py, all in virtual time."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.rpc.ratelimit import PerKeyLimiter, TokenBucket


def test_bucket_starts_full_and_allows_exactly_burst_at_once() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.allow(100.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_refills_at_rate_exactly() -> None:
    bucket = TokenBucket(rate=4, burst=2)  # one token every 0.25 s
    assert bucket.allow(0.0) and bucket.allow(0.0)
    assert not bucket.allow(0.0)
    assert not bucket.allow(0.2499)
    assert bucket.allow(0.25)
    assert not bucket.allow(0.25)
    assert bucket.allow(0.5)


def test_bucket_refill_with_inexact_float_steps_is_not_late() -> None:
    # 0.1 has no exact binary form; ten steps of it must still yield the token due at 1.0 s.
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.allow(0.0)
    now = 0.0
    for _ in range(9):
        now += 0.1
        assert not bucket.allow(now)
    now += 0.1
    assert bucket.allow(now)


def test_bucket_never_exceeds_burst_after_long_idle() -> None:
    bucket = TokenBucket(rate=10, burst=3)
    assert bucket.allow(0.0)
    assert bucket.tokens(1000.0) == 3
    assert [bucket.allow(1000.0) for _ in range(4)] == [True, True, True, False]


def test_bucket_denial_takes_no_tokens() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.allow(0.0)
    for _ in range(5):
        assert not bucket.allow(0.5)
    assert bucket.allow(1.0)


def test_bucket_clock_stepping_back_neither_refills_nor_breaks() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    assert bucket.allow(10.0)
    assert not bucket.allow(5.0)
    assert not bucket.allow(10.5)
    assert bucket.allow(11.0)


def test_bucket_cost_and_retry_after() -> None:
    bucket = TokenBucket(rate=2, burst=4)
    assert bucket.retry_after(0.0) == 0.0
    assert bucket.allow(0.0, cost=3)
    assert bucket.tokens(0.0) == 1
    assert not bucket.allow(0.0, cost=2)
    assert bucket.retry_after(0.0, cost=2) == 0.5
    assert not bucket.allow(0.49, cost=2)
    assert bucket.allow(0.5, cost=2)
    assert bucket.retry_after(0.5, cost=5) == math.inf


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, 0.5), (math.nan, 1)])
def test_bucket_rejects_bad_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


@given(
    rate=st.sampled_from([0.5, 1.0, 3.0, 10.0]),
    burst=st.integers(min_value=1, max_value=5),
    steps=st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), max_size=60),
)
def test_bucket_never_allows_more_than_burst_plus_rate_times_window(
    rate: float, burst: int, steps: list[float]
) -> None:
    bucket = TokenBucket(rate, burst)
    now = 0.0
    allowed: list[float] = []
    for step in steps:
        now += step
        if bucket.allow(now):
            allowed.append(now)
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            window = allowed[j] - start
            assert j - i + 1 <= burst + rate * window + 1e-6


def test_per_key_buckets_are_independent() -> None:
    limiter = PerKeyLimiter(rate=1, burst=1, max_keys=10)
    assert limiter.allow("a", 0.0)
    assert not limiter.allow("a", 0.0)
    assert limiter.allow("b", 0.0)
    assert limiter.retry_after("a", 0.25) == 0.75
    assert limiter.retry_after("never-seen", 0.0) == 0.0
    assert limiter.allow("a", 1.0)


def test_per_key_memory_is_bounded() -> None:
    limiter = PerKeyLimiter(rate=1, burst=1, max_keys=3)
    for i in range(100):
        limiter.allow(f"client-{i}", 0.0)
        assert len(limiter) <= 3


def test_per_key_evicts_idle_keys_before_the_least_recently_used() -> None:
    limiter = PerKeyLimiter(rate=1, burst=2, max_keys=2)
    assert limiter.allow("busy", 0.0) and limiter.allow("busy", 0.0)
    assert limiter.allow("idle", 0.5)
    # At 1.5 "busy" is least recently used but holds 1.5 of 2 tokens; "idle" is full again,
    # equal to a fresh bucket, so it is the one forgotten.
    assert limiter.allow("new", 1.5)
    assert "idle" not in limiter
    assert "busy" in limiter
    assert limiter.retry_after("busy", 1.5, cost=2) == 0.5  # its state survived


def test_per_key_evicts_least_recently_used_when_none_is_idle() -> None:
    limiter = PerKeyLimiter(rate=1, burst=1, max_keys=2)
    assert limiter.allow("a", 0.0)
    assert limiter.allow("b", 0.0)
    assert not limiter.allow("a", 0.1)  # touches "a": "b" is now least recently used
    assert limiter.allow("c", 0.2)
    assert "b" not in limiter
    assert "a" in limiter
    assert not limiter.allow("a", 0.2)


def test_per_key_prune_and_forget() -> None:
    limiter = PerKeyLimiter(rate=2, burst=2, max_keys=10)
    limiter.allow("a", 0.0)
    limiter.allow("b", 0.75)
    assert limiter.prune(1.0) == 1  # "a" is full again at 1.0, "b" is not (1.5 tokens)
    assert "a" not in limiter
    assert "b" in limiter
    limiter.forget("b")
    limiter.forget("not-there")
    assert len(limiter) == 0


def test_per_key_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        PerKeyLimiter(rate=1, burst=1, max_keys=0)
    with pytest.raises(ValueError):
        PerKeyLimiter(rate=0, burst=1, max_keys=5)
