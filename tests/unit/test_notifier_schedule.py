"""The notifier's pure retry logic: schedule, jitter, Retry-After, outcome of an attempt."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.ledger.domain.delivery_policy import (
    SCHEDULE_S,
    RetryPolicy,
    decide,
    parse_retry_after,
)
from services.ledger.domain.notifications import NotificationStatus

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_schedule_is_the_standard_webhooks_one() -> None:
    assert SCHEDULE_S == (5, 300, 1800, 7200, 18000, 36000, 36000)
    assert RetryPolicy().max_attempts == 8


@pytest.mark.parametrize("attempt", range(1, len(SCHEDULE_S) + 1))
def test_each_delay_stays_within_ten_percent_of_its_step(attempt: int) -> None:
    policy = RetryPolicy()
    rng = random.Random(attempt)
    delays = [policy.delay_after(attempt, rng) for _ in range(500)]
    step = SCHEDULE_S[attempt - 1]
    assert all(d is not None and 0.9 * step <= d <= 1.1 * step for d in delays)
    values = [d for d in delays if d is not None]
    assert max(values) - min(values) > 0.15 * step  # really jittered, both ways
    assert abs(sum(values) / len(values) - step) < 0.02 * step


def test_time_scale_compresses_the_schedule() -> None:
    policy = RetryPolicy(time_scale=0.001)
    for attempt, step in enumerate(SCHEDULE_S, start=1):
        delay = policy.delay_after(attempt, random.Random(0))
        assert delay is not None
        assert 0.9 * step * 0.001 <= delay <= 1.1 * step * 0.001
    assert policy.bounds(2) == pytest.approx((0.27, 0.33))


def test_no_jitter_gives_the_exact_steps() -> None:
    policy = RetryPolicy(jitter=0.0)
    assert [policy.delay_after(n, random.Random()) for n in range(1, 8)] == list(SCHEDULE_S)


def test_jitter_is_reproducible_with_a_seed() -> None:
    policy = RetryPolicy()
    first = [policy.delay_after(n, random.Random("seed")) for n in range(1, 8)]
    second = [policy.delay_after(n, random.Random("seed")) for n in range(1, 8)]
    assert first == second


def test_after_the_last_step_there_is_no_retry() -> None:
    policy = RetryPolicy()
    assert policy.delay_after(7, random.Random()) is not None
    assert policy.delay_after(8, random.Random()) is None
    with pytest.raises(ValueError, match="from 1"):
        policy.delay_after(0, random.Random())


def test_retry_after_is_never_undercut() -> None:
    policy = RetryPolicy()
    delay = policy.delay_after(1, random.Random(1), retry_after_s=120)
    assert delay == 120  # later than the 5 s step: honoured as given
    shorter = policy.delay_after(3, random.Random(1), retry_after_s=10)
    assert shorter is not None
    assert 1620 <= shorter <= 1980  # earlier than the step: the schedule wins


def test_retry_after_is_capped_at_the_longest_step_times_the_scale() -> None:
    assert RetryPolicy().delay_after(1, random.Random(), retry_after_s=7 * 86400) == 36000
    scaled = RetryPolicy(time_scale=0.001)
    assert scaled.retry_after_cap_s == pytest.approx(36.0)
    assert scaled.delay_after(1, random.Random(), retry_after_s=1) == 1  # unscaled below cap
    assert scaled.delay_after(1, random.Random(), retry_after_s=600) == pytest.approx(36.0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("0", 0.0),
        ("1", 1.0),
        (" 120 ", 120.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        ("Wed, 02 Dec 2026 12:05:00 GMT", 300.0),
        ("Wednesday, 02-Dec-26 12:01:00 GMT", 60.0),  # obsolete RFC 850 form, still read
        ("Wed, 02 Dec 2026 11:00:00 GMT", 0.0),  # a date in the past: retry now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("٣", None),  # a non-ASCII digit is not delta-seconds
    ],
)
def test_retry_after_header_forms(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(code: int) -> None:
    decision = decide(1, code, RetryPolicy(), random.Random())
    assert decision.status is NotificationStatus.DELIVERED
    assert decision.delay_s is None


def test_410_disables_even_on_the_last_attempt() -> None:
    for attempt in (1, 8):
        decision = decide(attempt, 410, RetryPolicy(), random.Random())
        assert decision.status is NotificationStatus.DISABLED
        assert decision.delay_s is None


@pytest.mark.parametrize("code", [None, 301, 400, 404, 429, 500, 503])
def test_other_outcomes_retry_until_the_schedule_ends(code: int | None) -> None:
    policy = RetryPolicy()
    for attempt in range(1, 8):
        decision = decide(attempt, code, policy, random.Random(), retry_after_s=None)
        assert decision.status is NotificationStatus.PENDING
        assert decision.delay_s is not None
        low, high = policy.bounds(attempt)
        assert low <= decision.delay_s <= high
    assert decide(8, code, policy, random.Random()).status is NotificationStatus.FAILED


def test_a_failure_honours_its_retry_after() -> None:
    decision = decide(2, 503, RetryPolicy(), random.Random(), retry_after_s=3600)
    assert decision.status is NotificationStatus.PENDING
    assert decision.delay_s == 3600
