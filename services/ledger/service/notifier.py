"""Delivers ``shipment.inbound`` notifications from ``ledger.outbox`` to plants (Standard Webhooks).

Each worker loops: claim one due row with ``SELECT … FOR UPDATE SKIP LOCKED`` → POST it, signed
with the plant endpoint's secret → record the attempt in ``ledger.webhook_deliveries`` and the
new state of the row → commit. The row stays locked for the whole attempt, so two workers (or
two notifier processes) never send the same notification at once.

Outcomes: a 2xx marks it delivered; a 410 disables the endpoint and the notification; anything
else (another status, a timeout, a refused connection) schedules the next attempt
``SCHEDULE_S[n-1] * time_scale`` after the end of failed attempt n, ±``jitter`` (10 %), and never
earlier than a ``Retry-After`` the plant sent (seconds or HTTP date). Retry-After is honoured
as given, not scaled, but capped at the longest step * time_scale (10 h in production), so one
answer cannot park a notification for longer than the schedule would. After the 8th attempt
(the first plus 7 retries) the notification is failed.

Crash safety: a row becomes delivered only in the transaction that records a 2xx. If the
notifier dies mid-attempt, PostgreSQL rolls that transaction back and releases the lock: the row
is still pending with the same attempt count and due time, and the next notifier to start sends
it again. The plant may then see a message twice with the same ``webhook-id`` — the Standard
Webhooks contract is at-least-once delivery and receivers de-duplicate on that id. The cut-short
attempt has no outcome to record, so it leaves no delivery row; its redelivery is recorded under
the same attempt number.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from math import floor
from typing import Any
from uuid import UUID

import httpx
import orjson
from prometheus_client import Counter, Histogram
from sqlalchemy import Connection, Engine, and_, func, select, update
from standardwebhooks import Webhook

from services.ledger.adapters.tables import outbox, webhook_deliveries
from services.ledger.domain.delivery_policy import (
    Decision,
    RetryPolicy,
    decide,
    parse_retry_after,
)
from services.ledger.domain.integrity.hashing import format_instant
from services.ledger.domain.notifications import NotificationStatus
from services.registry.tables import plant_endpoints

log = logging.getLogger("custody.notifier")

USER_AGENT = "battery-custody-notifier/0.1"
_OUTCOMES = {NotificationStatus.PENDING: "retrying"}


@dataclass(frozen=True, slots=True)
class DeliveryMetrics:
    attempts: Counter
    seconds: Histogram


@cache
def delivery_metrics() -> DeliveryMetrics:
    """Registered by the first notifier, so only the notifier process exports them."""
    return DeliveryMetrics(
        Counter(
            "custody_webhook_delivery_attempts_total",
            "Notification delivery attempts by what they led to: delivered, retrying, "
            "failed (it was the last attempt), disabled (410 Gone)",
            ["outcome"],
        ),
        Histogram(
            "custody_webhook_delivery_seconds",
            "Duration of one delivery attempt (until the plant's response or the error)",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        ),
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    started: datetime
    duration_ms: int
    status_code: int | None
    retry_after_s: float | None
    error: str | None

    @property
    def finished(self) -> datetime:
        return self.started + timedelta(milliseconds=self.duration_ms)


def signed_headers(secret: str, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """Standard Webhooks headers, the signature made by the reference library."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(floor(at.timestamp())),
        "webhook-signature": str(Webhook(secret).sign(msg_id, at, body)),
    }


def _claim_query(now: datetime) -> Any:
    o, e = outbox.c, plant_endpoints.c
    return (
        select(
            o.id,
            o.event_id,
            o.party_id,
            o.payload,
            o.attempts,
            e.url,
            e.secret,
            func.coalesce(e.enabled, False).label("enabled"),
        )
        .join_from(outbox, plant_endpoints, e.party_id == o.party_id, isouter=True)
        .where(o.status == NotificationStatus.PENDING.value, o.next_attempt_at <= now)
        .order_by(o.next_attempt_at, o.id)
        .limit(1)
        .with_for_update(of=outbox, skip_locked=True)
    )


class Notifier:
    def __init__(
        self,
        engine: Engine,
        *,
        policy: RetryPolicy,
        timeout_s: float,
        poll_s: float,
        concurrency: int,
        rng: random.Random,
    ) -> None:
        self._engine = engine
        self._policy = policy
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._concurrency = concurrency
        self._rng = rng
        delivery_metrics()  # exported from start-up on, not only after a first attempt

    def deliver_next(self, client: httpx.Client) -> bool:
        """Claim one due notification and make one attempt; False when none is due."""
        with self._engine.begin() as connection:
            row = connection.execute(_claim_query(datetime.now(UTC))).mappings().first()
            if row is None:
                return False
            if not row["enabled"]:
                connection.execute(
                    update(outbox)
                    .where(outbox.c.id == row["id"])
                    .values(status=NotificationStatus.DISABLED.value, next_attempt_at=None)
                )
                log.info(
                    "notification %s: endpoint of %s disabled", row["event_id"], row["party_id"]
                )
                return True
            attempt_no = row["attempts"] + 1
            attempt = self._post(client, row["url"], row["secret"], row["event_id"], row["payload"])
            decision = decide(
                attempt_no, attempt.status_code, self._policy, self._rng, attempt.retry_after_s
            )
            self._record(connection, row, attempt_no, attempt, decision)
        return True

    def _post(
        self, client: httpx.Client, url: str, secret: str, event_id: UUID, payload: Any
    ) -> Attempt:
        body = orjson.dumps(payload).decode()
        msg_id = str(event_id)
        started = datetime.now(UTC)
        clock = time.monotonic()
        status_code: int | None = None
        retry_after: float | None = None
        error: str | None = None
        try:
            headers = signed_headers(secret, msg_id, started, body)
            with client.stream("POST", url, content=body.encode(), headers=headers) as response:
                code = response.status_code
                raw_retry_after = response.headers.get("retry-after")
        except httpx.HTTPError as failure:
            error = f"{type(failure).__name__}: {failure}"[:500]
        else:
            status_code = code
            if not 200 <= code < 300:
                retry_after = parse_retry_after(raw_retry_after, datetime.now(UTC))
                error = f"HTTP {code}"
                if raw_retry_after is not None:
                    error += f", Retry-After: {raw_retry_after[:64]}"
                if code == 410:
                    error += "; endpoint disabled"
        duration_ms = round((time.monotonic() - clock) * 1000)
        return Attempt(started, duration_ms, status_code, retry_after, error)

    @staticmethod
    def _record(
        connection: Connection,
        row: Any,
        attempt_no: int,
        attempt: Attempt,
        decision: Decision,
    ) -> None:
        finished = attempt.finished
        next_at = (
            finished + timedelta(seconds=decision.delay_s) if decision.delay_s is not None else None
        )
        connection.execute(
            webhook_deliveries.insert().values(
                outbox_id=row["id"],
                attempt=attempt_no,
                attempted_at=attempt.started,
                url=row["url"],
                status_code=attempt.status_code,
                error=attempt.error,
                duration_ms=attempt.duration_ms,
                next_attempt_at=next_at,
            )
        )
        delivered = decision.status is NotificationStatus.DELIVERED
        metrics = delivery_metrics()
        metrics.attempts.labels(_OUTCOMES.get(decision.status, decision.status.value)).inc()
        metrics.seconds.observe(attempt.duration_ms / 1000)
        connection.execute(
            update(outbox)
            .where(outbox.c.id == row["id"])
            .values(
                attempts=attempt_no,
                status=decision.status.value,
                next_attempt_at=next_at,
                delivered_at=finished if delivered else None,
            )
        )
        if decision.status is NotificationStatus.DISABLED:
            connection.execute(
                update(plant_endpoints)
                .where(
                    and_(
                        plant_endpoints.c.party_id == row["party_id"],
                        plant_endpoints.c.url == row["url"],
                    )
                )
                .values(
                    enabled=False,
                    disabled_reason=f"{row['url']} answered 410 Gone at {format_instant(finished)}",
                    updated_at=func.now(),
                )
            )
        log.info(
            "notification %s attempt %d to %s: %s → %s%s",
            row["event_id"],
            attempt_no,
            row["url"],
            attempt.status_code if attempt.status_code is not None else attempt.error,
            decision.status.value,
            f", next in {decision.delay_s:.3f} s" if decision.delay_s is not None else "",
        )

    def _idle_wait(self) -> float:
        """Until the soonest future due time, at most ``poll_s`` (new rows appear any time)."""
        now = datetime.now(UTC)
        with self._engine.connect() as connection:
            soonest: datetime | None = connection.execute(
                select(func.min(outbox.c.next_attempt_at)).where(
                    outbox.c.status == NotificationStatus.PENDING.value,
                    outbox.c.next_attempt_at > now,
                )
            ).scalar_one_or_none()
        if soonest is None:
            return self._poll_s
        return min(self._poll_s, max(0.001, (soonest - now).total_seconds()))

    def _work(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=self._timeout_s, follow_redirects=False) as client:
            while not stop.is_set():
                try:
                    handled = self.deliver_next(client)
                    wait = 0.0 if handled else self._idle_wait()
                except Exception:
                    log.exception("delivery round failed; trying again in %.1f s", self._poll_s)
                    wait = self._poll_s
                if wait:
                    stop.wait(wait)

    def run(self, stop: threading.Event) -> None:
        """Deliver with ``concurrency`` workers until ``stop``; attempts in hand are finished."""
        workers = [
            threading.Thread(target=self._work, args=(stop,), name=f"notifier-{n}", daemon=True)
            for n in range(self._concurrency)
        ]
        for worker in workers:
            worker.start()
        log.info("notifier running with %d worker(s)", len(workers))
        while not stop.is_set():
            stop.wait(1.0)
        for worker in workers:
            worker.join(timeout=self._timeout_s + 5)
