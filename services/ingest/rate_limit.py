"""Per-device rate limiting at ingest: one token bucket per device (pure; the clock is injected).

A device's bucket holds up to ``burst`` tokens and refills at ``per_second`` tokens a second;
an event costs one token, so a batch costs its number of events. A request is admitted whole
or not at all: a refused request takes no tokens and learns how long to wait.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RateLimit:
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if self.per_second < 0:
            raise ValueError("the rate must not be negative")
        if self.burst < 1:
            raise ValueError("the burst must be at least 1")

    @property
    def enabled(self) -> bool:
        return self.per_second > 0


@dataclass(slots=True)
class TokenBucket:
    capacity: float
    rate: float
    tokens: float
    updated: float

    def take(self, cost: int, now: float) -> float:
        """Take ``cost`` tokens and return 0.0, or take none and return the seconds to wait."""
        if cost > self.capacity:
            raise ValueError(f"a cost of {cost} can never fit a bucket of {self.capacity:g}")
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class DeviceRateLimiter:
    """Buckets by device id, each full when first used. Not thread-safe: call it from one
    event loop (ingest's request handlers are coroutines)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def admit(self, device_id: str, cost: int) -> float:
        """0.0 if the device may post ``cost`` events now, else the seconds until it may."""
        if not self.limit.enabled:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(device_id)
        if bucket is None:
            burst = float(self.limit.burst)
            bucket = TokenBucket(burst, self.limit.per_second, burst, now)
            self._buckets[device_id] = bucket
        return bucket.take(cost, now)


def retry_after_seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least 1, never earlier than ``wait``."""
    return max(1, math.ceil(wait))
