"""EPCIS 2.0 query subscriptions: the request, the delivery signature and the backoff. Pure.

A subscription names where to POST results (``dest``, http or https), the ``signatureToken``
the subscriber shares with us, and when: ``stream: true`` (whenever new events match) or a
``schedule`` (``query_schedule.py``; ``reportIfEmpty`` sends a document with no events when
nothing new matched). ``initialRecordTime`` starts it at the entries recorded from then on;
without it, at the entries recorded after the subscription.

Each delivery's body is signed in ``GS1-Signature`` as ``sha256=`` and the lower-case hex
HMAC-SHA256 of the exact body bytes, keyed with the signatureToken's UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from services.ledger.domain.epcis_query import parse_instant
from services.ledger.domain.query_schedule import Schedule, ScheduleError, parse_schedule

SIGNATURE_PREFIX = "sha256="
MAX_TOKEN_LENGTH = 512
MAX_DEST_LENGTH = 2048
_FIELDS = frozenset(
    {"dest", "signatureToken", "stream", "schedule", "reportIfEmpty", "initialRecordTime"}
)


class SubscriptionError(ValueError):
    """A subscription request that cannot be served (``SubscriptionControlsException``)."""


@dataclass(frozen=True)
class SubscriptionRequest:
    dest: str
    signature_token: str | None
    stream: bool
    schedule: dict[str, str] | None
    parsed_schedule: Schedule | None
    report_if_empty: bool
    initial_record_time: datetime | None


def _dest(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_DEST_LENGTH:
        raise SubscriptionError(f"dest: give an http or https URL of at most {MAX_DEST_LENGTH}")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise SubscriptionError(f"dest: {value[:100]!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SubscriptionError(f"dest: {value[:100]!r} is not an http or https URL")
    if port == 0 or any(ch.isspace() for ch in value):
        raise SubscriptionError(f"dest: {value[:100]!r} is not a usable URL")
    return value


def _initial_time(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return parse_instant(value)
    except ValueError:
        pass
    raise SubscriptionError("initialRecordTime: give an RFC 3339 date-time with a UTC offset")


def parse_subscription(body: object) -> SubscriptionRequest:
    if not isinstance(body, dict):
        raise SubscriptionError("the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise SubscriptionError(
            f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(_FIELDS))})"
        )
    token = body.get("signatureToken")
    if token is not None and (
        not isinstance(token, str) or not 1 <= len(token) <= MAX_TOKEN_LENGTH
    ):
        raise SubscriptionError(f"signatureToken: give a string of 1 to {MAX_TOKEN_LENGTH}")
    stream = body.get("stream", False)
    schedule = body.get("schedule")
    report_if_empty = body.get("reportIfEmpty", False)
    if not isinstance(stream, bool) or not isinstance(report_if_empty, bool):
        raise SubscriptionError("stream and reportIfEmpty are true or false")
    if stream == (schedule is not None):
        raise SubscriptionError("give either stream: true or a schedule, not both and not neither")
    parsed: Schedule | None = None
    if schedule is not None:
        if not isinstance(schedule, dict):
            raise SubscriptionError("schedule: give an object of cron-like fields")
        try:
            parsed = parse_schedule(schedule)
        except ScheduleError as error:
            raise SubscriptionError(str(error)) from None
    elif report_if_empty:
        raise SubscriptionError("reportIfEmpty applies to a schedule, not to a stream")
    return SubscriptionRequest(
        dest=_dest(body.get("dest")),
        signature_token=token,
        stream=stream,
        schedule=dict(schedule) if schedule is not None else None,
        parsed_schedule=parsed,
        report_if_empty=report_if_empty,
        initial_record_time=_initial_time(body.get("initialRecordTime")),
    )


def signature(token: str, body: bytes) -> str:
    digest = hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def signature_valid(token: str, body: bytes, header: str) -> bool:
    return hmac.compare_digest(signature(token, body), header.strip())


def retry_delay(attempts: int, base_s: float, max_s: float, retry_after_s: float | None) -> float:
    """Seconds until the next attempt after ``attempts`` failures in a row: doubling from
    ``base_s`` up to ``max_s``, never earlier than a Retry-After (itself capped at ``max_s``)."""
    delay = min(base_s * 2.0 ** max(0, attempts - 1), max_s)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_s))
    return delay
