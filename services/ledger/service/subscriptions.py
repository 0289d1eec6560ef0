"""Delivers EPCIS query subscriptions (docs/epcis.md); runs in the notifier process.

A subscription's cursor (``after_seq``) is a position in the append-only ledger: every entry
after it that its named query selects is still owed, so nothing needs copying at append time
and nothing can be lost. A worker claims the subscription due soonest
(``FOR UPDATE SKIP LOCKED``), reads the next ``batch_size`` matching entries after the cursor,
POSTs them as one EPCISQueryDocument signed in ``GS1-Signature`` (read within the scope of the
token that made the subscription, as it is now), and moves the cursor past
them only in the transaction that saw the subscriber's 2xx. So delivery is in ledger order and
at least once: a notifier killed mid-POST leaves the cursor where it was, and the batch is sent
again (subscribers de-duplicate by eventID). A 413 halves the batch (kept for later batches);
any other failure retries with doubling backoff (and no earlier than ``Retry-After``), for as
long as it takes: a subscriber down for an hour gets everything it missed once it is back.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import httpx
import orjson
from prometheus_client import Counter
from sqlalchemy import Connection, Engine

from services.ledger.adapters.epcis_queries import (
    Subscription,
    claim_due,
    save_progress,
    soonest_due,
)
from services.ledger.domain.delivery_policy import parse_retry_after
from services.ledger.domain.epcis_query import event_filter, terms_from_json
from services.ledger.domain.epcis_subscription import retry_delay, signature
from services.ledger.domain.query_schedule import next_fire, parse_schedule
from services.ledger.readside.events import EventQueries
from services.ledger.rendering.epcis import epcis_events, epcis_query_document
from services.registry.store import RegistryStore
from services.web.epcis import VERSION_HEADERS

log = logging.getLogger("custody.subscriptions")

USER_AGENT = "battery-custody-subscriptions/0.1"
BATCHES_PER_CLAIM = 10


@cache
def subscription_metrics() -> Counter:
    return Counter(
        "custody_epcis_subscription_deliveries_total",
        "EPCIS subscription POSTs by outcome: delivered, too_large (413, batch halved), failed",
        ["outcome"],
    )


@dataclass(frozen=True)
class SubscriptionTiming:
    idle_s: float = 0.5
    """How often a caught-up stream subscription looks for new matching entries."""
    retry_base_s: float = 1.0
    retry_max_s: float = 300.0


class SubscriptionDelivery:
    def __init__(
        self,
        engine: Engine,
        events: EventQueries,
        registry: RegistryStore,
        *,
        timeout_s: float,
        timing: SubscriptionTiming,
    ) -> None:
        self._engine = engine
        self._events = events
        self._registry = registry
        self._timeout_s = timeout_s
        self._timing = timing
        subscription_metrics()

    def deliver_next(self, client: httpx.Client) -> bool:
        """Claim the subscription due soonest and bring it up to date (at most
        ``BATCHES_PER_CLAIM`` batches); False when none is due."""
        with self._engine.begin() as connection:
            claimed = claim_due(connection, datetime.now(UTC))
            if claimed is None:
                return False
            subscription, query = claimed
            self._serve(connection, client, subscription, query)
        return True

    def _serve(
        self,
        connection: Connection,
        client: httpx.Client,
        subscription: Subscription,
        query: dict[str, Any],
    ) -> None:
        creator = self._registry.api_user(subscription.created_by)
        if creator is None:  # its token was revoked or expired: nothing more is read for it
            save_progress(
                connection,
                subscription.subscription_id,
                last_error="the token that made this subscription is revoked or expired",
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=self._timing.retry_max_s),
            )
            return
        flt = replace(event_filter(terms_from_json(query)), scope=creator.scope)
        roles = self._registry.party_roles()
        after_seq, batch_size, delivered = subscription.after_seq, subscription.batch_size, 0
        caught_up = True
        for _ in range(BATCHES_PER_CLAIM):
            now = datetime.now(UTC)
            page = self._events.page(
                flt, party_roles=roles, after_seq=after_seq, limit=batch_size, now=now
            )
            events = epcis_events(
                page.entries, page.trails, party_roles=roles, declared_only=flt.corrected_only
            )
            if not page.entries and (
                subscription.stream or delivered or not subscription.report_if_empty
            ):
                break  # caught up
            if page.entries and not events:  # only corrections: nothing to tell
                after_seq = page.entries[-1].seq
                save_progress(connection, subscription.subscription_id, after_seq=after_seq)
                continue
            document = epcis_query_document(
                events, created=now, subscription_id=str(subscription.subscription_id)
            )
            code, retry_after, error = self._post(client, subscription, document)
            if code is not None and 200 <= code < 300:
                subscription_metrics().labels("delivered").inc()
                delivered += 1
                if page.entries:
                    after_seq = page.entries[-1].seq
                save_progress(
                    connection,
                    subscription.subscription_id,
                    after_seq=after_seq,
                    attempts=0,
                    last_notified_at=datetime.now(UTC),
                    last_error=None,
                )
                if len(page.entries) < batch_size:
                    break
                continue
            if code == 413 and batch_size > 1:
                subscription_metrics().labels("too_large").inc()
                batch_size = max(1, batch_size // 2)
                save_progress(connection, subscription.subscription_id, batch_size=batch_size)
                continue
            subscription_metrics().labels("failed").inc()
            attempts = subscription.attempts + 1
            delay = retry_delay(
                attempts, self._timing.retry_base_s, self._timing.retry_max_s, retry_after
            )
            save_progress(
                connection,
                subscription.subscription_id,
                attempts=attempts,
                last_error=error,
                next_attempt_at=datetime.now(UTC) + timedelta(seconds=delay),
            )
            log.info(
                "subscription %s to %s: %s; next attempt in %.1f s",
                subscription.subscription_id,
                subscription.dest,
                error,
                delay,
            )
            return
        else:
            caught_up = False  # more is owed than one claim sends: claim it again at once
        save_progress(
            connection,
            subscription.subscription_id,
            next_attempt_at=self._next_time(subscription, caught_up=caught_up),
        )

    def _next_time(self, subscription: Subscription, *, caught_up: bool) -> datetime:
        now = datetime.now(UTC)
        if not caught_up:
            return now
        if subscription.stream:
            return now + timedelta(seconds=self._timing.idle_s)
        fire = next_fire(parse_schedule(subscription.schedule or {}), now)
        return fire or now + timedelta(days=3650)

    def _post(
        self, client: httpx.Client, subscription: Subscription, document: dict[str, Any]
    ) -> tuple[int | None, float | None, str | None]:
        body = orjson.dumps(document)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            **VERSION_HEADERS,
        }
        if subscription.signature_token is not None:
            headers["GS1-Signature"] = signature(subscription.signature_token, body)
        try:
            with client.stream("POST", subscription.dest, content=body, headers=headers) as answer:
                code = answer.status_code
                raw_retry_after = answer.headers.get("retry-after")
        except httpx.HTTPError as failure:
            return None, None, f"{type(failure).__name__}: {failure}"[:500]
        if 200 <= code < 300:
            return code, None, None
        return code, parse_retry_after(raw_retry_after, datetime.now(UTC)), f"HTTP {code}"

    def _idle_wait(self) -> float:
        with self._engine.connect() as connection:
            soonest = soonest_due(connection)
        if soonest is None:
            return self._timing.idle_s
        wait = (soonest - datetime.now(UTC)).total_seconds()
        return min(self._timing.idle_s, max(0.01, wait))

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(timeout=self._timeout_s, follow_redirects=False) as client:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    handled = self.deliver_next(client)
                    wait = 0.0 if handled else self._idle_wait()
                except Exception:
                    log.exception("subscription round failed; trying again")
                    wait = max(self._timing.idle_s, 1.0 - (time.monotonic() - started))
                if wait:
                    stop.wait(wait)
