"""Token-bucket rate limits in caller-supplied time (e.g. `webrtc.offer` per client).

Time is passed in as `now` (seconds, any monotonic origin), so the limits are exact and testable
in virtual time. A clock that steps backwards is treated as standing still.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

# Refills are sums of float products; without a little slack a token due at exactly t would
# sometimes arrive a few ulps after t.
_EPSILON: Final = 1e-9


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` tokens per second; starts full."""

    def __init__(self, rate: float, burst: float) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1, not {burst!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = self.burst
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
        elif now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def tokens(self, now: float) -> float:
        """Tokens available at `now`."""
        self._refill(now)
        return self._tokens

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens at `now` if there are that many; False (taking none) if not."""
        self._refill(now)
        if self._tokens + _EPSILON < cost:
            return False
        self._tokens = max(0.0, self._tokens - cost)
        return True

    def retry_after(self, now: float, cost: float = 1.0) -> float:
        """Seconds from `now` until `allow(cost)` would succeed (0 if it would now).

        Infinite when `cost` exceeds `burst`: such a request can never pass.
        """
        self._refill(now)
        if cost > self.burst + _EPSILON:
            return float("inf")
        if self._tokens + _EPSILON >= cost:
            return 0.0
        return (cost - self._tokens) / self.rate

    def is_full(self, now: float) -> bool:
        """True when the bucket is as it was new, so forgetting it loses nothing."""
        return self.tokens(now) + _EPSILON >= self.burst


class PerKeyLimiter:
    """One `TokenBucket` per key (e.g. per MQTT client id) in bounded memory.

    At most `max_keys` buckets are kept. When a new key arrives at the limit, full buckets
    (idle long enough to have refilled, hence equal to a fresh one) are dropped first; if none
    is, the least recently used key is forgotten, which hands it a fresh bucket. Refusing new
    keys instead would let a flood of client ids lock everyone else out.
    """

    def __init__(self, rate: float, burst: float, max_keys: int) -> None:
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys!r}")
        TokenBucket(rate, burst)  # validates rate and burst now rather than on first use
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets

    def _bucket(self, key: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is not None:
            self._buckets.move_to_end(key)
            return bucket
        if len(self._buckets) >= self.max_keys:
            self.prune(now)
            while len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
        bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
        return bucket

    def allow(self, key: str, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens from `key`'s bucket at `now`; False if it has too few."""
        return self._bucket(key, now).allow(now, cost)

    def retry_after(self, key: str, now: float, cost: float = 1.0) -> float:
        """Seconds from `now` until `allow(key, cost)` would succeed."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0 if cost <= self.burst else float("inf")
        return bucket.retry_after(now, cost)

    def prune(self, now: float) -> int:
        """Forget every key whose bucket is full at `now`; returns how many were dropped."""
        idle = [key for key, bucket in self._buckets.items() if bucket.is_full(now)]
        for key in idle:
            del self._buckets[key]
        return len(idle)

    def forget(self, key: str) -> None:
        """Drop `key`'s bucket (e.g. when its client goes away)."""
        self._buckets.pop(key, None)
