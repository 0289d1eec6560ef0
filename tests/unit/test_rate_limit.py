"""Per-device token buckets (services/ingest/domain/rate_limit.py) on a hand-driven clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.bootstrap import rate_limiter
from services.ingest.domain.rate_limit import (
    DeviceRateLimiter,
    RateLimit,
    TokenBucket,
    retry_after_seconds,
)
from services.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(per_second: float = 10.0, burst: int = 50) -> tuple[DeviceRateLimiter, Clock]:
    clock = Clock()
    return DeviceRateLimiter(RateLimit(per_second, burst), clock), clock


def test_a_new_device_may_post_its_whole_burst_at_once() -> None:
    limit, _ = limiter()
    assert limit.admit("dev-1", 50) == 0.0


def test_over_the_burst_the_request_is_refused_whole_with_the_wait() -> None:
    limit, _ = limiter()
    assert limit.admit("dev-1", 45) == 0.0
    assert limit.admit("dev-1", 10) == pytest.approx(0.5)  # 5 left, 5 more at 10/s
    assert limit.admit("dev-1", 5) == 0.0  # the refusal took nothing


def test_tokens_refill_at_the_rate_up_to_the_burst() -> None:
    limit, clock = limiter()
    assert limit.admit("dev-1", 50) == 0.0
    assert limit.admit("dev-1", 1) == pytest.approx(0.1)
    clock.now += 2.0
    assert limit.admit("dev-1", 20) == 0.0
    assert limit.admit("dev-1", 1) == pytest.approx(0.1)
    clock.now += 3600.0
    assert limit.admit("dev-1", 50) == 0.0
    assert limit.admit("dev-1", 1) > 0


def test_devices_have_their_own_buckets() -> None:
    limit, _ = limiter()
    assert limit.admit("dev-1", 50) == 0.0
    assert limit.admit("dev-1", 1) > 0
    assert limit.admit("dev-2", 50) == 0.0


def test_a_zero_rate_disables_the_limit() -> None:
    limit, _ = limiter(per_second=0, burst=1)
    assert not limit.limit.enabled
    for _ in range(100):
        assert limit.admit("dev-1", 1_000) == 0.0


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    limit, clock = limiter()
    assert limit.admit("dev-1", 50) == 0.0
    clock.now -= 100.0
    assert limit.admit("dev-1", 1) > 0
    clock.now += 100.05
    assert limit.admit("dev-1", 1) == pytest.approx(0.05)


def test_a_cost_larger_than_the_bucket_is_a_programming_error() -> None:
    bucket = TokenBucket(capacity=5, rate=1, tokens=5, updated=0)
    with pytest.raises(ValueError, match="never fit"):
        bucket.take(6, 0)


@pytest.mark.parametrize(("per_second", "burst"), [(-1.0, 10), (1.0, 0)])
def test_a_limit_is_non_negative_with_a_burst_of_at_least_one(
    per_second: float, burst: int
) -> None:
    with pytest.raises(ValueError, match="must"):
        RateLimit(per_second, burst)


@pytest.mark.parametrize(
    ("wait", "header"), [(0.0001, 1), (0.5, 1), (1.0, 1), (1.01, 2), (29.2, 30)]
)
def test_retry_after_is_whole_seconds_at_least_one_never_early(wait: float, header: int) -> None:
    assert retry_after_seconds(wait) == header


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=3), st.integers(min_value=1, max_value=20)),
        max_size=200,
    )
)
def test_never_more_than_the_burst_plus_the_refill_and_waiting_is_enough(
    requests: list[tuple[float, int]],
) -> None:
    limit, clock = limiter(per_second=5.0, burst=20)
    start, admitted = clock.now, 0
    for pause, cost in requests:
        clock.now += pause
        wait = limit.admit("dev-1", cost)
        if wait == 0.0:
            admitted += cost
        else:
            clock.now += wait + 1e-9
            assert limit.admit("dev-1", cost) == 0.0
            admitted += cost
        assert admitted <= 20 + 5.0 * (clock.now - start) + 1e-6


def test_ingest_refuses_to_start_with_a_burst_smaller_than_a_full_batch() -> None:
    with pytest.raises(ValueError, match="CUSTODY_RATE_LIMIT_BURST"):
        rate_limiter(Settings(rate_limit_burst=100, max_batch_events=500))
    assert rate_limiter(Settings(rate_limit_per_device=0, rate_limit_burst=1)) is None
    limiter = rate_limiter(Settings())
    assert limiter is not None
    assert limiter.limit == RateLimit(1000.0, 25_000)
