"""EPCIS 2.0 capture: a document of events admitted as custody events (docs/epcis.md).

Each event is checked against GS1's JSON Schema, mapped to the custody contract
(``domain/epcis_capture.py``) and admitted exactly as ``POST /v1/events`` admits one (the same
permissions). With ``rollback`` (the default) nothing of the document is produced unless every
event passed; with ``proceed`` the events that passed are produced and the others are listed.
Event ids are deterministic (the eventID, or GS1's CBV 2.0 event hash), so capturing the same
document again records nothing twice. The job runs within the request; its record is written
when it is done.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio.to_thread

from services.contract import CustodyEvent
from services.contract.epcis_schema import schema_errors
from services.ingest.domain.capture_job import Behaviour, CaptureJob, EventErrors
from services.ingest.domain.epcis_capture import CaptureRefused, custody_events, event_id_of
from services.ingest.domain.epcis_event_hash import event_hash_ids
from services.ingest.domain.errors import Invalid, Refused, TooLarge
from services.ingest.service.admission import Admission, device_origin, message
from services.registry.principals import Device


class CaptureJobs(Protocol):
    def record(self, job: CaptureJob) -> None: ...

    def get(self, capture_id: uuid.UUID, party_id: str) -> CaptureJob | None: ...

    def recent(self, party_id: str, limit: int) -> list[CaptureJob]: ...


@dataclass(frozen=True)
class CaptureLimits:
    max_events: int
    max_bytes: int


DEFAULT_CAPTURE_LIMITS = CaptureLimits(max_events=10_000, max_bytes=32 * 1024 * 1024)


@dataclass(frozen=True)
class Capture:
    admission: Admission
    jobs: CaptureJobs
    limits: CaptureLimits
    clock: Any = field(default=lambda: datetime.now(UTC))

    async def capture_document(
        self, poster: Device, document: object, behaviour: Behaviour
    ) -> CaptureJob:
        """Capture an EPCISDocument (or an EPCISQueryDocument's result list)."""
        events, context = _event_list(document)
        if len(events) > self.limits.max_events:
            raise TooLarge(
                "Too many events",
                f"the document has {len(events)} events; GS1-EPCIS-Capture-Limit is "
                f"{self.limits.max_events}",
            )
        if not events:
            raise Invalid.at("epcisBody.eventList", "the document holds no event")
        return await self._capture(poster, events, context, behaviour, document)

    async def capture_event(self, poster: Device, event: object) -> CaptureJob:
        """``POST /epcis/events``: one event, as a document of one."""
        if not isinstance(event, dict):
            raise Invalid.at("", "the body must be one EPCIS event (a JSON object)")
        context = event.get("@context")
        document = {
            "@context": context if context is not None else _DEFAULT_CONTEXT,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": self.clock().isoformat(),
            "epcisBody": {"eventList": [{k: v for k, v in event.items() if k != "@context"}]},
        }
        events, context = _event_list(document)
        return await self._capture(poster, events, context, "rollback", document)

    async def _capture(
        self,
        poster: Device,
        events: Sequence[Any],
        context: Any,
        behaviour: Behaviour,
        document: object,
    ) -> CaptureJob:
        created = self.clock()
        self.admission.throttle(poster, len(events))
        schema = await anyio.to_thread.run_sync(_errors_by_event, document)
        if None in schema:
            raise Invalid(
                [
                    {"path": path.replace("/", ".") or "(document)", "message": text}
                    for path, text in schema[None]
                ]
            )
        without_id = [i for i, event in enumerate(events) if not _has_id(event)]
        to_hash = [i for i in without_id if i not in schema]
        hashed = await anyio.to_thread.run_sync(
            event_hash_ids, context, [events[i] for i in to_hash]
        )
        epcis_ids = {i: str(event["eventID"]) for i, event in enumerate(events) if _has_id(event)}
        epcis_ids.update(zip(to_hash, hashed, strict=True))
        roles = self.admission.registry.party_roles()
        failures: list[EventErrors] = []
        admitted: list[CustodyEvent] = []
        pending: dict[uuid.UUID, str] = {}
        for index, event in enumerate(events):
            epcis_id = epcis_ids.get(index)
            if index in schema:
                failures.append(EventErrors(index, epcis_id, _paths(index, schema[index])))
                continue
            try:
                assert epcis_id is not None
                bodies = custody_events(event, event_id_of(epcis_id), roles)
                found = []
                for body in bodies:
                    found.append(await self.admission.admit(poster, body, pending=pending))
                    pending[found[-1].event_id] = poster.party_id
            except CaptureRefused as refused:
                failures.append(
                    EventErrors(
                        index,
                        epcis_id,
                        [{"path": _event_path(index, refused.path), "message": refused.message}],
                    )
                )
                continue
            except Refused as refused:
                failures.append(EventErrors(index, epcis_id, _refusal(index, refused)))
                continue
            admitted += found
        produce = admitted if behaviour == "proceed" or not failures else []
        if produce:
            received_at = self.clock()
            origin = device_origin(poster)
            await self.admission.produce([message(event, received_at, origin) for event in produce])
        job = CaptureJob(
            capture_id=uuid.uuid4(),
            party_id=poster.party_id,
            device_id=poster.device_id,
            behaviour=behaviour,
            events=len(events),
            accepted=len(produce),
            errors=tuple(failures),
            created_at=created,
            finished_at=self.clock(),
        )
        await anyio.to_thread.run_sync(self.jobs.record, job)
        return job


_DEFAULT_CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]


def _event_list(document: object) -> tuple[list[Any], Any]:
    if not isinstance(document, dict):
        raise Invalid.at("", "the body must be an EPCISDocument (a JSON object)")
    kind = document.get("type")
    body = document.get("epcisBody")
    if kind == "EPCISQueryDocument" and isinstance(body, dict):
        results = body.get("queryResults", {}).get("resultsBody", {})
        events = results.get("eventList") if isinstance(results, dict) else None
    elif kind == "EPCISDocument" and isinstance(body, dict):
        events = body.get("eventList")
    else:
        raise Invalid.at("type", "the body must be an EPCISDocument or an EPCISQueryDocument")
    if not isinstance(events, list):
        raise Invalid.at("epcisBody.eventList", "must be a list of events")
    return events, document.get("@context")


def _has_id(event: Any) -> bool:
    return isinstance(event, dict) and isinstance(event.get("eventID"), str)


def _errors_by_event(document: object) -> dict[int | None, list[tuple[str, str]]]:
    """Schema errors keyed by the index of the event they are in (None: outside any event)."""
    found: dict[int | None, list[tuple[str, str]]] = {}
    for path, text in schema_errors(document):
        steps = path.split("/")
        index: int | None = None
        for position, step in enumerate(steps[:-1]):
            if step == "eventList" and steps[position + 1].isdigit():
                index = int(steps[position + 1])
                path = "/".join(steps[position + 2 :])
                break
        found.setdefault(index, []).append((path, text))
    return found


def _event_path(index: int, path: str) -> str:
    return f"eventList.{index}" + (f".{path}" if path else "")


def _paths(index: int, errors: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    return [
        {"path": _event_path(index, path.replace("/", ".")), "message": text}
        for path, text in errors
    ]


def _refusal(index: int, refused: Refused) -> list[dict[str, str]]:
    """A custody-contract refusal, its field paths named in custody terms under the event."""
    if refused.errors:
        return [
            {"path": _event_path(index, f"(custody).{item['path']}"), "message": item["message"]}
            for item in refused.errors
        ]
    return [{"path": _event_path(index, ""), "message": refused.detail}]
