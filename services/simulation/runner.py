"""Play a scenario against a running ingest service (docs/architecture.md §5).

Registers the scenario's parties (existing ones are kept) and fresh devices (their tokens stay
in memory), then posts the upload plan in order: several events through
``POST /v1/events/batch``, a single one through ``POST /v1/events``. Corrections come last and
are retried while ingest answers 403 "... is not recorded", because ingest accepts a correction
only once the ledger consumer has recorded the event it corrects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from services.registry.principals import PartyRole
from services.registry.store import RegistryError, RegistryStore
from services.simulation.scenario import Scenario, Upload

UNAVAILABLE_RETRIES = 5
MAX_RETRY_AFTER_S = 30.0
CORRECTION_POLL_S = 0.5
CORRECTION_WAIT_S = 60.0
MAX_REJECTIONS_KEPT = 20


class SimulationError(RuntimeError):
    """The simulation cannot go on; the message says why."""


@dataclass
class SimulationReport:
    parties_added: int = 0
    parties_existing: int = 0
    devices: int = 0
    uploads: int = 0
    events_posted: int = 0
    accepted: int = 0
    rejected: int = 0
    corrections: int = 0
    correction_waits: int = 0
    unavailable_retries: int = 0
    registration_seconds: float = 0.0
    seconds: float = 0.0
    rejections: list[str] = field(default_factory=list)

    def rows(self) -> list[tuple[str, str]]:
        rate = self.events_posted / self.seconds if self.seconds > 0 else 0.0
        return [
            ("parties added (existing)", f"{self.parties_added} ({self.parties_existing})"),
            ("devices registered", str(self.devices)),
            ("requests", str(self.uploads)),
            ("events posted", str(self.events_posted)),
            ("accepted", str(self.accepted)),
            ("rejected", str(self.rejected)),
            (
                "corrections (retries while not recorded)",
                f"{self.corrections} ({self.correction_waits})",
            ),
            ("429/503 retries", str(self.unavailable_retries)),
            ("registration time", f"{self.registration_seconds:.1f} s"),
            ("posting time", f"{self.seconds:.1f} s ({rate:.0f} events/s)"),
        ]


def _check_role(party_id: str, existing: PartyRole | None, wanted: PartyRole) -> None:
    if existing is not None and existing is not wanted:
        raise SimulationError(
            f"party {party_id} is registered as a {existing}, but the simulation needs a {wanted}"
        )


def register_network(
    registry: RegistryStore, scenario: Scenario, report: SimulationReport
) -> dict[str, str]:
    """Add missing parties, register the scenario's devices; returns device id → token."""
    roles = registry.party_roles(fresh=True)
    for party in scenario.parties:
        _check_role(party.party_id, roles.get(party.party_id), party.role)
    for party in scenario.parties:
        if party.party_id in roles:
            report.parties_existing += 1
            continue
        try:
            registry.add_party(party.party_id, party.name, party.role)
        except RegistryError:  # added meanwhile by someone else
            existing = registry.party_roles(fresh=True).get(party.party_id)
            if existing is None:
                raise
            _check_role(party.party_id, existing, party.role)
            report.parties_existing += 1
        else:
            report.parties_added += 1
    tokens = {}
    for device in scenario.devices:
        try:
            tokens[device.device_id] = registry.add_device(
                device.device_id, device.party_id, device.label
            )
        except RegistryError as error:
            raise SimulationError(f"{error} (run ids must be unique per run)") from error
    report.devices = len(tokens)
    return tokens


def _problem_detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        parts = [str(body.get("detail") or body.get("title") or "")]
        for error in body.get("errors") or []:
            if isinstance(error, dict):
                parts.append(f"{error.get('path')}: {error.get('message')}")
        return "; ".join(part for part in parts if part)
    return response.text[:500]


class _Poster:
    def __init__(
        self,
        client: httpx.Client,
        tokens: dict[str, str],
        report: SimulationReport,
        sleep: Callable[[float], None],
    ) -> None:
        self.client = client
        self.tokens = tokens
        self.report = report
        self.sleep = sleep

    def send(self, upload: Upload) -> httpx.Response:
        """POST one upload, retrying after Retry-After while ingest answers 429 (the device's
        rate limit) or 503 (Kafka unavailable)."""
        headers = {"Authorization": f"Bearer {self.tokens[upload.device_id]}"}
        if len(upload.events) == 1:
            path, body = "/v1/events", upload.events[0]
        else:
            path, body = "/v1/events/batch", {"events": upload.events}
        for attempt in range(UNAVAILABLE_RETRIES + 1):
            try:
                response = self.client.post(path, json=body, headers=headers)
            except httpx.TransportError as error:
                raise SimulationError(
                    f"cannot reach ingest at {self.client.base_url}: {error} "
                    "(is `custody serve ingest` running?)"
                ) from error
            if response.status_code not in (429, 503) or attempt == UNAVAILABLE_RETRIES:
                return response
            self.report.unavailable_retries += 1
            self.sleep(_retry_after(response))
        raise AssertionError("unreachable")

    def post(self, upload: Upload) -> None:
        response = self.send(upload)
        self._count(upload, response)

    def post_correction(self, upload: Upload) -> None:
        """POST a correction, waiting (bounded) until the event it corrects is recorded."""
        deadline = time.monotonic() + CORRECTION_WAIT_S
        while True:
            response = self.send(upload)
            if response.status_code != 403 or "is not recorded" not in response.text:
                break
            if time.monotonic() >= deadline:
                event = upload.events[0]
                raise SimulationError(
                    f"correction {event['event_id']}: the event it corrects "
                    f"({event['corrects_event_id']}) was still not recorded after "
                    f"{CORRECTION_WAIT_S:.0f} s; is the ledger consumer running "
                    "(`custody serve consumer`)?"
                )
            self.report.correction_waits += 1
            self.sleep(CORRECTION_POLL_S)
        self.report.corrections += 1
        self._count(upload, response)

    def _count(self, upload: Upload, response: httpx.Response) -> None:
        report = self.report
        report.uploads += 1
        report.events_posted += len(upload.events)
        status = response.status_code
        if len(upload.events) == 1 and status == 202:
            report.accepted += 1
            return
        if len(upload.events) > 1 and status == 200:
            body = response.json()
            report.accepted += int(body["accepted"])
            report.rejected += int(body["rejected"])
            for result in body["results"]:
                if result["status"] != "accepted" and len(report.rejections) < MAX_REJECTIONS_KEPT:
                    messages = "; ".join(
                        f"{e.get('path')}: {e.get('message')}" for e in result.get("errors") or []
                    )
                    report.rejections.append(f"{result.get('event_id')}: {messages}")
            return
        kind = "batch" if len(upload.events) > 1 else "event"
        raise SimulationError(
            f"ingest answered {status} to a {kind} of {len(upload.events)} from device "
            f"{upload.device_id}: {_problem_detail(response)}"
        )


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def simulate(
    ingest_url: str,
    registry: RegistryStore,
    scenario: Scenario,
    *,
    console: Console | None = None,
    registry_grace_s: float = 0.0,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SimulationReport:
    """Register the network and post the scenario's uploads in order.

    ``registry_grace_s``: how long to wait after adding parties, so that ingest's registry cache
    (``CUSTODY_REGISTRY_CACHE_S``) knows them before the first transfer names them.
    """
    report = SimulationReport()
    started = time.monotonic()
    tokens = register_network(registry, scenario, report)
    if report.parties_added and registry_grace_s > 0:
        sleep(registry_grace_s)
    report.registration_seconds = time.monotonic() - started
    started = time.monotonic()
    total = sum(len(upload.events) for upload in scenario.uploads)
    with (
        httpx.Client(base_url=ingest_url, timeout=30.0, transport=transport) as client,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress,
    ):
        task = progress.add_task("posting", total=total)
        poster = _Poster(client, tokens, report, sleep)
        for upload in scenario.uploads:
            if upload.correction:
                progress.update(task, description="corrections")
                poster.post_correction(upload)
            else:
                poster.post(upload)
            progress.advance(task, len(upload.events))
    report.seconds = time.monotonic() - started
    return report
