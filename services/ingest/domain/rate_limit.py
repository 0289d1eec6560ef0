"""Per-device rate limiting at ingest: one token bucket per device (the clock and the place the
buckets live are injected: this process's memory, or a table every ingest worker shares).

A device's bucket holds up to ``burst`` tokens and refills at ``per_second`` tokens a second;
an event costs one token, so a batch costs its number of events. A request is admitted whole
or not at all: a refused request takes no tokens and learns how long to wait.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol


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


class BucketSlot(Protocol):
    def load(self) -> tuple[float, float] | None: ...

    def save(self, tokens: float, updated: float) -> None: ...


class BucketStore(Protocol):
    """Where buckets live: ``bucket(device_id)`` holds the slot exclusively for the block."""

    def bucket(self, device_id: str) -> AbstractContextManager[BucketSlot]: ...


class MemoryBucketStore:
    """Buckets of one process (a single ingest worker, tests). Not thread-safe: call it
    from one event loop, as ingest's request handlers do."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    @contextmanager
    def bucket(self, device_id: str) -> Iterator[BucketSlot]:
        yield _MemorySlot(self._buckets, device_id)


@dataclass(slots=True)
class _MemorySlot:
    buckets: dict[str, tuple[float, float]]
    device_id: str

    def load(self) -> tuple[float, float] | None:
        return self.buckets.get(self.device_id)

    def save(self, tokens: float, updated: float) -> None:
        self.buckets[self.device_id] = (tokens, updated)


class DeviceRateLimiter:
    """Buckets by device id, each full when first used."""

    def __init__(
        self, limit: RateLimit, clock: Callable[[], float], store: BucketStore | None = None
    ) -> None:
        self.limit = limit
        self._clock = clock
        self._store = store if store is not None else MemoryBucketStore()

    def admit(self, device_id: str, cost: int) -> float:
        """0.0 if the device may post ``cost`` events now, else the seconds until it may."""
        if not self.limit.enabled:
            return 0.0
        burst = float(self.limit.burst)
        with self._store.bucket(device_id) as slot:
            now = self._clock()
            tokens, updated = slot.load() or (burst, now)
            bucket = TokenBucket(burst, self.limit.per_second, tokens, updated)
            wait = bucket.take(cost, now)
            slot.save(bucket.tokens, bucket.updated)
        return wait


def retry_after_seconds(wait: float) -> int:
    """A Retry-After value: whole seconds, at least 1, never earlier than ``wait``."""
    return max(1, math.ceil(wait))
