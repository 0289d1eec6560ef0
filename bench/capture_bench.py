"""EPCIS capture: ``POST /epcis/capture`` of a whole document vs ``POST /v1/events/batch`` of the
same custody events, in the same run, against ingest as a real process.

Each run makes fresh custody events (a dropoff and a seal per container) and posts the same
events both ways, one request at a time (ingest does not deduplicate; the ledger would): as one
EPCISDocument (GS1 schema check, CBV 2.0 event hash for the events without an eventID, the
inverse of the export mapping, admission, one produce), and as batches of ``max_batch_events``
custody events (admission, produce). Bodies are serialised before the clock starts; each figure
is the events over the wall time until the last answer, which means Kafka acknowledged every
event.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.service_process import TOKEN_CACHE_S, peak_rss_mb, ready, start_service
from bench.stats import Figure
from services.contract.epcis_identifiers import (
    battery_class_uri,
    container_uri,
    event_uri,
    location_uri,
)
from services.db.engine import make_engine
from services.registry.principals import PartyRole
from services.registry.store import RegistryStore
from services.stack.ephemeral import EphemeralStack
from services.stack.processes import free_port
from services.stack.service_processes import stop_process

CONTEXT: list[Any] = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"bc": "https://battery-custody.example/epcis/"},
]
LOCATION = "site-a:dock"
WITHOUT_EVENT_ID = 10  # one event in this many has no eventID: it is named by its CBV hash


def custody_events(count: int, run: str) -> list[dict[str, Any]]:
    """``count`` custody events as a site posts them: a dropoff and a seal per container."""
    base = datetime.now(UTC) - timedelta(hours=6)
    events: list[dict[str, Any]] = []
    for number in range(count // 2):
        container = f"CB{run}-{number:06d}"
        moment = base + timedelta(seconds=number)
        common = {"container_id": container, "location_id": LOCATION}
        events += [
            {
                "event_id": str(uuid.uuid4()),
                "type": "dropoff",
                "occurred_at": moment.isoformat(),
                "chemistry": "li_ion",
                "battery_count": 40,
                **common,
            },
            {
                "event_id": str(uuid.uuid4()),
                "type": "sealed",
                "occurred_at": (moment + timedelta(hours=1)).isoformat(),
                "weight_kg": 120.5,
                "un_numbers": ["UN3480"],
                **common,
            },
        ]
    return events


def epcis_event(event: dict[str, Any], *, with_id: bool) -> dict[str, Any]:
    """The EPCIS 2.0 event that capture maps back to ``event`` (docs/epcis.md)."""
    common: dict[str, Any] = {
        "eventTime": event["occurred_at"],
        "eventTimeZoneOffset": "+00:00",
        "readPoint": {"id": location_uri(event["location_id"])},
    }
    if with_id:
        common["eventID"] = event_uri(uuid.UUID(event["event_id"]))
    if event["type"] == "dropoff":
        return {
            "type": "AggregationEvent",
            **common,
            "parentID": container_uri(event["container_id"]),
            "childQuantityList": [
                {
                    "epcClass": battery_class_uri(event["chemistry"]),
                    "quantity": event["battery_count"],
                }
            ],
            "action": "ADD",
            "bizStep": "collecting",
            "disposition": "disposed",
            "bc:chemistry": event["chemistry"],
        }
    return {
        "type": "ObjectEvent",
        **common,
        "epcList": [container_uri(event["container_id"])],
        "action": "OBSERVE",
        "bizStep": "packing",
        "disposition": "container_closed",
        "sensorElementList": [
            {
                "sensorMetadata": {"time": event["occurred_at"]},
                "sensorReport": [{"type": "Mass", "value": event["weight_kg"], "uom": "KGM"}],
            }
        ],
        "bc:unNumbers": event["un_numbers"],
    }


def epcis_document(events: list[dict[str, Any]]) -> bytes:
    listed = [
        epcis_event(event, with_id=index % WITHOUT_EVENT_ID != 0)
        for index, event in enumerate(events)
    ]
    return orjson.dumps(
        {
            "@context": CONTEXT,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": datetime.now(UTC).isoformat(),
            "epcisBody": {"eventList": listed},
        }
    )


def capture_run(client: httpx.Client, body: bytes, events: int) -> float:
    """Seconds for one document, refused unless every event was accepted."""
    started = time.perf_counter()
    response = client.post(
        "/epcis/capture", content=body, headers={"content-type": "application/ld+json"}
    )
    elapsed = time.perf_counter() - started
    job = response.json() if response.status_code == 202 else {}
    if job.get("acceptedEvents") != events:
        raise RuntimeError(f"capture: {response.status_code} {response.text[:2000]}")
    return elapsed


def batch_run(client: httpx.Client, bodies: list[bytes], per_batch: int) -> float:
    """Seconds for the batches, one request at a time, each wholly accepted."""
    started = time.perf_counter()
    for body in bodies:
        response = client.post(
            "/v1/events/batch", content=body, headers={"content-type": "application/json"}
        )
        if response.status_code != 200 or response.json()["accepted"] != per_batch:
            raise RuntimeError(f"batch: {response.status_code} {response.text[:2000]}")
    return time.perf_counter() - started


def run(stack: EphemeralStack, *, events: int, runs: int, logs: Path) -> list[Figure]:
    # One device posts everything, so the per-device limit is off (as in the ingest bench).
    settings = stack.settings(
        ingest_port=free_port(), registry_cache_s=TOKEN_CACHE_S, rate_limit_per_device=0
    )
    per_batch = settings.max_batch_events
    if events > settings.epcis_capture_max_events or events % (2 * per_batch):
        raise ValueError(f"events must be a multiple of {2 * per_batch} up to the capture limit")
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    registry.add_party("site-a", "Site A", PartyRole.SITE)
    token = registry.add_device("bench-capture-dev", "site-a")
    engine.dispose()
    url = f"http://127.0.0.1:{settings.ingest_port}"
    log = logs / "capture-ingest.log"
    process = start_service(settings, "ingest", log)
    headers = {"Authorization": f"Bearer {token}"}
    capture: list[float] = []
    batch: list[float] = []
    seconds: list[float] = []
    try:
        ready(url, process, log)
        # Warm-up: each worker builds its schema validator and hash contexts on first use; a
        # new connection each time, as the kernel spreads connections over the workers.
        warm = custody_events(2 * per_batch, "w")
        for _ in range(4):
            with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
                capture_run(client, epcis_document(warm[:20]), 20)
                batch_run(client, [orjson.dumps({"events": warm[:per_batch]})], per_batch)
        for index in range(runs):
            fresh = custody_events(events, str(index))
            document = epcis_document(fresh)
            bodies = [
                orjson.dumps({"events": fresh[start : start + per_batch]})
                for start in range(0, events, per_batch)
            ]
            with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
                # Which goes first alternates, so neither always meets the fuller topic.
                if index % 2:
                    batch.append(events / batch_run(client, bodies, per_batch))
                took = capture_run(client, document, events)
                capture.append(events / took)
                seconds.append(took)
                if not index % 2:
                    batch.append(events / batch_run(client, bodies, per_batch))
            print(
                f"  capture run {index + 1}: capture {capture[-1]:,.0f} events/s "
                f"({took:.1f} s per document), batch {batch[-1]:,.0f} events/s",
                flush=True,
            )
        rss = peak_rss_mb(process.pid)
    finally:
        stop_process(process)
    size_mb = len(document) / 1024 / 1024
    note = (
        f"{events:,}-event EPCISDocument ({size_mb:.1f} MiB; dropoffs and seals, one event in "
        f"{WITHOUT_EVENT_ID} without eventID), one request at a time"
    )
    return [
        Figure(
            "EPCIS capture POST",
            "events/s",
            capture,
            f"POST /v1/events/batch of the same custody events ({per_batch} a request, "
            "one at a time)",
            batch,
            note=note,
        ),
        Figure(
            f"EPCIS capture of a {events:,}-event document",
            "s",
            seconds,
            higher_is_better=False,
            note="until the 202, every event acknowledged by Kafka",
        ),
        Figure("ingest peak RSS after captures", "MB", [rss], higher_is_better=False),
    ]
