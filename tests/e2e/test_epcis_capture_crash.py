"""SIGKILL ingest in the middle of a 10,000-event EPCIS capture, then post the same document
again: every event is recorded exactly once (rollback and proceed), and the retry's capture job
says what it captured.

The kill comes once the capture's first events are in Kafka and before the last: the worst
moment, when part of the document is in the topic (and being recorded by the consumer) and the
client got no answer. The retry produces the whole document again; the ledger must recognise the
events it has by their ids (the eventID, or the CBV 2.0 event hash of an event without one).

Each variant reports its figures like the other fault tests (``test-output/faults.jsonl``).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import signal
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, text

from services.contract.epcis_identifiers import (
    battery_class_uri,
    container_uri,
    location_uri,
)
from services.db.engine import make_engine
from services.ingest.domain.epcis_capture import event_id_of
from services.ingest.domain.epcis_event_hash import event_hash_ids
from services.settings import Settings
from tests.support.fault_report import report_fault
from tests.support.network import Network, register_network
from tests.support.services import ServiceProcess, start_service
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

EVENTS = 10_000  # the default GS1-EPCIS-Capture-Limit
INVALID = 100  # of the proceed document: 25 of each kind in INVALID_KINDS
DEVICE = "site-a-dev"
CONTEXT: list[Any] = [
    "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",
    {"bc": "https://battery-custody.example/epcis/"},
]
LOCATION = location_uri("site-a:dock")


# --- the documents ------------------------------------------------------------------------------


def collecting(container: str, moment: datetime) -> dict[str, Any]:
    """A dropoff: an AggregationEvent of 40 li-ion batteries into the container."""
    return {
        "type": "AggregationEvent",
        "eventTime": moment.isoformat(),
        "eventTimeZoneOffset": "+00:00",
        "parentID": container_uri(container),
        "childQuantityList": [{"epcClass": battery_class_uri("li_ion"), "quantity": 40}],
        "action": "ADD",
        "bizStep": "collecting",
        "disposition": "disposed",
        "readPoint": {"id": LOCATION},
        "bc:chemistry": "li_ion",
    }


def packing(container: str, moment: datetime, kg: float = 120.5) -> dict[str, Any]:
    """A sealed container: an ObjectEvent with its Mass and UN numbers."""
    return {
        "type": "ObjectEvent",
        "eventTime": moment.isoformat(),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [container_uri(container)],
        "action": "OBSERVE",
        "bizStep": "packing",
        "disposition": "container_closed",
        "readPoint": {"id": LOCATION},
        "sensorElementList": [
            {
                "sensorMetadata": {"time": moment.isoformat()},
                "sensorReport": [{"type": "Mass", "value": kg, "uom": "KGM"}],
            }
        ],
        "bc:unNumbers": ["UN3480"],
    }


@dataclass(frozen=True)
class Expected:
    """One valid event of a document: what the ledger must hold for it, once."""

    event_id: str
    container_id: str
    custody_type: str


HASH_ID = "ni:///sha-256;"


@dataclass(frozen=True)
class Refusal:
    """What the capture job must say of one invalid event."""

    path: str
    message: str  # a part of it
    event_id: str | None  # its eventID, HASH_ID for a CBV 2.0 hash ID, or None: not named

    def check(self, listed: dict[str, Any]) -> None:
        first = listed["errors"][0]
        assert first["path"] == self.path, listed
        assert self.message in first["message"], listed
        if self.event_id == HASH_ID:
            assert listed["eventID"].startswith(HASH_ID), listed
            assert listed["eventID"].endswith("?ver=CBV2.0"), listed
        else:
            assert listed["eventID"] == self.event_id, listed


@dataclass(frozen=True)
class Document:
    body: bytes
    valid: list[Expected]
    invalid: dict[int, Refusal]  # by index in the event list


@cache
def valid_events() -> tuple[tuple[dict[str, Any], ...], tuple[Expected, ...]]:
    """10,000 events: a dropoff and a seal for each of 5,000 containers. A tenth of the
    containers' events have no eventID (they are named by their CBV 2.0 hash), a tenth a URI
    eventID that is not a UUID, the rest ``urn:uuid:`` eventIDs."""
    base = datetime.now(UTC) - timedelta(hours=6)
    events: list[dict[str, Any]] = []
    for number in range(EVENTS // 2):
        container = f"CC-{number:05d}"
        moment = base + timedelta(seconds=number)
        pair = [collecting(container, moment), packing(container, moment + timedelta(hours=1))]
        for step, event in zip(("dropoff", "sealed"), pair, strict=True):
            if number % 10 == 1:
                event["eventID"] = f"urn:example:scanner:{container}:{step}"
            elif number % 10 != 0:
                event["eventID"] = f"urn:uuid:{uuid.uuid4()}"
        events += pair
    without = [event for event in events if "eventID" not in event]
    hashes = iter(event_hash_ids(CONTEXT, without))
    expected = []
    for event in events:
        epcis_id = event["eventID"] if "eventID" in event else next(hashes)
        container = event.get("parentID") or event["epcList"][0]
        expected.append(
            Expected(
                str(event_id_of(epcis_id)),
                container.rsplit("/", 1)[1],
                "dropoff" if event["type"] == "AggregationEvent" else "sealed",
            )
        )
    return tuple(events), tuple(expected)


def invalid_event(number: int, moment: datetime) -> tuple[dict[str, Any], str, str]:
    """One event that capture must refuse: (event, error path inside it, message part)."""
    container = f"XX-{number:05d}"
    kind = number % 4
    if kind == 0:  # outside the custody vocabulary
        event = {**packing(container, moment), "bizStep": "shipping"}
        return event, "bizStep", "'shipping' is outside the custody vocabulary"
    if kind == 1:  # against GS1's schema
        return {**packing(container, moment), "eventTime": "yesterday"}, "eventTime", ""
    if kind == 2:  # a seal without its UN numbers
        event = packing(container, moment)
        del event["bc:unNumbers"]
        return event, "bc:unNumbers", "is required for packing"
    # not the site's to post (403 at admission): a processed container
    event = {
        **packing(container, moment),
        "action": "DELETE",
        "bizStep": "destroying",
        "disposition": "destroyed",
        "bc:method": "shredding",
    }
    return event, "", "only plants post processed events"


def document(behaviour: str) -> Document:
    events, expected = valid_events()
    if behaviour == "rollback":
        return _document(list(events), list(expected), {})
    # The last containers make room for the invalid events, spread over the document.
    listed, valid = list(events[: EVENTS - INVALID]), list(expected[: EVENTS - INVALID])
    invalid: dict[int, Refusal] = {}
    stride = EVENTS // INVALID
    moment = datetime.now(UTC) - timedelta(hours=2)
    for number in range(INVALID):
        event, path, message = invalid_event(number, moment)
        index = number * stride + stride // 2
        if number % 8 == 0:  # refused after it was named: by its hash
            named_as: str | None = HASH_ID
        elif number % 8 == 1:  # refused by the schema, before it could be hashed
            named_as = None
        else:
            named_as = event["eventID"] = f"urn:uuid:{uuid.uuid4()}"
        listed.insert(index, event)
        invalid[index] = Refusal(
            f"eventList.{index}" + (f".{path}" if path else ""), message, named_as
        )
    return _document(listed, valid, invalid)


def _document(
    listed: list[dict[str, Any]], valid: list[Expected], invalid: dict[int, Refusal]
) -> Document:
    assert len(listed) == EVENTS
    body = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": datetime.now(UTC).isoformat(),
        "epcisBody": {"eventList": listed},
    }
    return Document(orjson.dumps(body), valid, invalid)


# --- the processes and the topic ----------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found += [int(child), *descendants(int(child))]
    return found


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def kill_ingest(ingest: ServiceProcess) -> None:
    """SIGKILL the supervisor and every worker: killing the supervisor alone would let the
    workers finish the request (they get SIGTERM when it dies, and drain gracefully)."""
    workers = descendants(ingest.process.pid)
    runtimes = {runtime_dir(pid) for pid in workers} - {None}
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    ingest.kill()
    wait_for(lambda: all(gone(pid) for pid in workers), what="the ingest workers gone", timeout=30)
    for runtime in runtimes:  # what the supervisor would have removed on a clean stop
        shutil.rmtree(str(runtime), ignore_errors=True)


def runtime_dir(pid: int) -> str | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"CUSTODY_INGEST_RUNTIME_DIR="):
            return item.split(b"=", 1)[1].decode()
    return None


class Topic:
    def __init__(self, settings: Settings) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        self._partitions = [
            TopicPartition(settings.topic, p)
            for p in sorted(self._consumer.partitions_for_topic(settings.topic) or ())
        ]

    def size(self) -> int:
        return sum(self._consumer.end_offsets(self._partitions).values())

    def close(self) -> None:
        self._consumer.close()


def consumed(engine: Engine, settings: Settings) -> int:
    """Messages of the topic the ledger consumer has committed (in the append transaction)."""
    with engine.connect() as connection:
        total: int = connection.execute(
            text(
                "SELECT coalesce(sum(next_offset), 0) FROM ledger.consumer_offsets"
                " WHERE consumer_group = :group AND topic = :topic"
            ),
            {"group": settings.consumer_group, "topic": settings.topic},
        ).scalar_one()
    return total


# --- the test -----------------------------------------------------------------------------------


def post(url: str, network: Network, behaviour: str, body: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/epcis/capture",
        content=body,
        headers={
            **network.headers(DEVICE),
            "content-type": "application/ld+json",
            "GS1-Capture-Error-Behaviour": behaviour,
        },
        timeout=300,
    )


@pytest.mark.parametrize("behaviour", ["rollback", "proceed"])
def test_ingest_sigkill_mid_capture_then_retry_records_every_event_once(
    stack: LiveStack, tmp_path: Path, behaviour: str
) -> None:
    settings = stack.settings()
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    doc = document(behaviour)
    topic = Topic(settings)
    consumer: ServiceProcess | None = None
    try:
        ingest = start_service(settings, "ingest", tmp_path)
        try:
            assert ingest.url is not None
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                first = pool.submit(post, ingest.url, network, behaviour, doc.body)
                # The consumer starts while ingest validates, and records what the killed
                # capture produced: the retry's copies of those events are replays.
                consumer = start_service(settings, "consumer", tmp_path)
                wait_for(
                    lambda: topic.size() > 0 or first.done(),
                    what="the capture's first events in Kafka",
                    timeout=120,
                )
                kill_ingest(ingest)
                with pytest.raises(httpx.TransportError):
                    first.result(timeout=30)  # the client got no answer
        finally:
            ingest.stop()  # nothing left to stop unless the test failed before the kill
        in_kafka_at_kill = topic.size()
        assert 0 < in_kafka_at_kill < len(doc.valid), "the kill was not mid-produce"

        restarted = start_service(settings, "ingest", tmp_path)
        try:
            assert restarted.url is not None
            response = retry_until_accepted(restarted.url, network, behaviour, doc.body)
            job = response.json()
            location = response.headers["Location"]
            with httpx.Client(base_url=restarted.url, headers=network.headers(DEVICE)) as client:
                shown = client.get(location)
                listed = client.get("/epcis/capture")
        finally:
            restarted.stop()

        wait_for(
            lambda: consumed(engine, settings) == topic.size(),
            what="the consumer through the whole topic",
            timeout=120,
        )
        assert consumer.stop() == 0
    finally:
        if consumer is not None:
            consumer.stop()
        topic.close()

    # The retry's job: every event seen; for proceed, exactly the invalid ones listed.
    assert (job["events"], job["acceptedEvents"]) == (EVENTS, len(doc.valid))
    assert (job["success"], job["running"], job["captureErrorBehaviour"]) == (
        behaviour == "rollback",
        False,
        behaviour,
    )
    assert location == f"/epcis/capture/{job['captureID']}"
    assert shown.status_code == 200
    assert shown.json() == job
    # The killed attempt wrote no job: it never finished.
    assert [item["captureID"] for item in listed.json()] == [job["captureID"]]
    errors = {item["eventIndex"]: item for item in job["errors"]}
    assert sorted(errors) == sorted(doc.invalid)
    for index, refusal in doc.invalid.items():
        refusal.check(errors[index])

    # The ledger: every valid event once, by id and by (container, type); nothing else.
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event_id::text, container_id, event_type FROM ledger.entries")
        ).all()
        parked = connection.execute(text("SELECT count(*) FROM ledger.rejected")).scalar_one()
    expected = {(item.event_id, item.container_id, item.custody_type) for item in doc.valid}
    recorded = [(row[0], row[1], row[2]) for row in rows]
    assert len(recorded) == len(set(recorded)) == len({row[0] for row in recorded})
    assert set(recorded) == expected
    assert parked == 0, "a retried event was parked as a conflict"
    figures = report_fault(
        engine,
        f"ingest SIGKILLed mid-capture of a {EVENTS:,}-event EPCIS document ({behaviour}), "
        "then the document posted again",
        sent=EVENTS,
        acknowledged={item.event_id for item in doc.valid},
        in_kafka_at_kill=in_kafka_at_kill,
        refused=len(doc.invalid),
    )
    engine.dispose()
    assert (figures["recorded"], figures["duplicated"], figures["lost"]) == (len(doc.valid), 0, 0)


def retry_until_accepted(url: str, network: Network, behaviour: str, body: bytes) -> httpx.Response:
    """Post the document again until it is accepted (202), as a client that got no answer
    would; a 429 or 503 is retried after its Retry-After."""
    for _ in range(5):
        try:
            response = post(url, network, behaviour, body)
        except httpx.TransportError:
            continue
        if response.status_code == 202:
            return response
        assert response.status_code in (429, 503), response.text
        time.sleep(float(response.headers.get("Retry-After", "1")))  # as the server says
    raise AssertionError("the document was never accepted")
