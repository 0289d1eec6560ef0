"""When a plant notification is tried again: the Standard Webhooks retry schedule (pure).

After the 8th attempt (the first plus 7 retries) a notification is failed; a 2xx delivers it
and a 410 Gone disables the endpoint. ``services/ledger/service/notifier.py`` applies it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from services.ledger.domain.notifications import NotificationStatus

#: Seconds after failed attempt 1, 2, … 7 (the Standard Webhooks / Svix schedule).
SCHEDULE_S: tuple[float, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
_DELTA_SECONDS = re.compile(r"^[0-9]{1,10}$")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    schedule_s: tuple[float, ...] = SCHEDULE_S
    time_scale: float = 1.0
    jitter: float = 0.1

    @property
    def max_attempts(self) -> int:
        return len(self.schedule_s) + 1

    @property
    def retry_after_cap_s(self) -> float:
        return max(self.schedule_s, default=0.0) * self.time_scale

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The range the jittered delay after failed attempt ``attempt`` falls in."""
        base = self.schedule_s[attempt - 1] * self.time_scale
        return base * (1 - self.jitter), base * (1 + self.jitter)

    def delay_after(
        self, attempt: int, rng: random.Random, retry_after_s: float | None = None
    ) -> float | None:
        """Seconds from the end of failed attempt ``attempt`` (1-based) to the next one.

        None when that attempt was the last. A Retry-After pushes the delay later, never
        earlier, and counts only up to ``retry_after_cap_s``.
        """
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if attempt > len(self.schedule_s):
            return None
        low, high = self.bounds(attempt)
        delay = rng.uniform(low, high)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.retry_after_cap_s))
        return delay


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A Retry-After header as seconds from ``now``: delta-seconds or an HTTP date (RFC 9110).

    None when absent or unreadable (then only the schedule applies); a date in the past is 0.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.match(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" / obsolete forms: HTTP dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class Decision:
    status: NotificationStatus
    delay_s: float | None = None  # until the next attempt, when still pending


def decide(
    attempt: int,
    status_code: int | None,
    policy: RetryPolicy,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> Decision:
    """What one attempt's outcome (a status code, or None for no response) makes of the row."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(NotificationStatus.DELIVERED)
    if status_code == 410:
        return Decision(NotificationStatus.DISABLED)
    delay = policy.delay_after(attempt, rng, retry_after_s)
    if delay is None:
        return Decision(NotificationStatus.FAILED)
    return Decision(NotificationStatus.PENDING, delay)
