"""Ingest's per-event log lines, with event_id and container_id as fields of their own.

Accepted events are logged at DEBUG (one line per event is too much at full rate), refused
ones at INFO. Values from a refused body are untrusted: the text form shows them with repr.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.contract import CustodyEvent
from services.ingest.domain.errors import Refused
from services.registry.principals import Device

log = logging.getLogger("custody.ingest")

_MAX_FIELD = 100


def log_accepted(poster: Device, events: Sequence[CustodyEvent]) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    for event in events:
        log.debug(
            "accepted %s event %s of %s from %s",
            event.type,
            event.event_id,
            event.container_id,
            poster.device_id,
            extra={
                "event_id": str(event.event_id),
                "container_id": event.container_id,
                "event_type": event.type,
                "device_id": poster.device_id,
                "party_id": poster.party_id,
            },
        )


def log_refused(poster: Device, raw: object, refused: Refused) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    fields = raw if isinstance(raw, dict) else {}
    event_id = _short_text(fields.get("event_id"))
    container_id = _short_text(fields.get("container_id"))
    log.info(
        "refused event %r of %r from %s: %d %s",
        event_id,
        container_id,
        poster.device_id,
        refused.status,
        refused.detail,
        extra={
            "event_id": event_id,
            "container_id": container_id,
            "device_id": poster.device_id,
            "party_id": poster.party_id,
            "status": refused.status,
            "errors": refused.errors,
        },
    )


def _short_text(value: object) -> str | None:
    return value[:_MAX_FIELD] if isinstance(value, str) else None
