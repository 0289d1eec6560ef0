"""The report facts the append path stores equal those read from the reconstructed trails.

A simulated month is recorded through the ledger consumer's append transaction
(``LedgerAppender.append``, as bench/load_containers.py does; Kafka is not needed), with a plant
receipt for most intakes. Later batches, on a consumer with a cold trail cache, record
corrections that change the facts: a voided pickup, intake and sealed weight, a correction that
is itself corrected (the pickup comes back) and a container whose every event is voided. Then,
for every container, the facts in ``ledger.containers`` must equal ``container_facts`` of the
trail reconstructed from all its entries, and the mass balance and the shipment log read from
the read model must equal those built from the trails. The same holds after ``custody rebuild``
and after migration 0005 backfilled the facts of a database recorded before it.
"""

from __future__ import annotations

import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import Engine, select

from services.db.engine import make_engine
from services.db.migrations import alembic_config, upgrade
from services.ledger.adapters import tables
from services.ledger.adapters.append_unit_of_work import PostgresAppendUnitOfWork
from services.ledger.adapters.read_model import trails
from services.ledger.consumer.decode import decode
from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.mass_balance import GroupBy, Window, mass_balance
from services.ledger.domain.messages import IncomingMessage
from services.ledger.domain.report_facts import ContainerFacts, container_facts, facts_from_document
from services.ledger.domain.shipment_log import shipment_log
from services.ledger.readside.reports import ReportQueries
from services.ledger.service.append import LedgerAppender
from services.ledger.service.rebuild import rebuild_read_model
from services.settings import Settings
from services.simulation.scenario import Scenario, ScenarioConfig, build_scenario
from tests.support import events as ev
from tests.support.stack import LiveStack

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
TOPIC = "custody.events"
PARTITIONS = 3
RULES = CustodyRules()


@dataclass
class Feed:
    """Messages as ingest would write them: key = container id, running offsets per partition."""

    offsets: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def message(
        self, body: dict[str, Any], received_at: datetime, origin: dict[str, Any]
    ) -> IncomingMessage:
        key = body["container_id"].encode()
        partition = zlib.crc32(key) % PARTITIONS
        value = orjson.dumps(
            {"event": body, "received_at": received_at.isoformat(), "origin": origin}
        )
        offset = self.offsets[partition]
        self.offsets[partition] += 1
        return IncomingMessage(TOPIC, partition, offset, key, value)


def record(store: LedgerAppender, messages: list[IncomingMessage], batch: int = 400) -> None:
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        next_offsets = {(m.topic, m.partition): m.offset + 1 for m in chunk}
        store.append([decode(m) for m in chunk], [], next_offsets)


def device(scenario: Scenario, device_id: str) -> dict[str, Any]:
    spec = scenario.device(device_id)
    return {"kind": "device", "party_id": spec.party_id, "device_id": device_id}


def receipts(scenario: Scenario, feed: Feed) -> list[IncomingMessage]:
    """A plant receipt two hours after each intake (every 7th accepts 10 % less), but a few."""
    intakes = {
        body["event_id"]: body
        for upload in scenario.uploads
        for body in upload.events
        if body["type"] == "intake"
    }
    found = []
    for number, intake in enumerate(sorted(intakes.values(), key=lambda b: b["event_id"])):
        at = datetime.fromisoformat(intake["occurred_at"]) + timedelta(hours=2)
        if number % 11 == 0 or at >= NOW:
            continue
        factor = 0.9 if number % 7 == 0 else 0.998
        body = {
            "event_id": str(uuid.uuid4()),
            "type": "receipt_ack",
            "container_id": intake["container_id"],
            "occurred_at": at.isoformat(),
            "location_id": f"{intake['to_party']}:webhook",
            "accepted_weight_kg": round(intake["weight_kg"] * factor, 2),
            "condition": "ok" if factor > 0.95 else "discrepancy",
            "plant_reference": f"RCV-{number}",
        }
        origin = {"kind": "webhook", "party_id": intake["to_party"]}
        found.append(feed.message(body, at + timedelta(minutes=1), origin))
    return found


def correction(target: dict[str, Any], hours_ago: float) -> dict[str, Any]:
    return ev.event(
        "correction",
        target["container_id"],
        -hours_ago,
        base=NOW,
        corrects_event_id=target["event_id"],
        reason="did_not_occur",
    )


def stored(engine: Engine) -> dict[str, tuple[Any, ...]]:
    c = tables.containers.c
    query = select(
        c.container_id, c.report_facts, c.shipment_id, c.pickup_at, c.intake_at, c.receipt_at
    )
    with engine.connect() as connection:
        return {row[0]: tuple(row[1:]) for row in connection.execute(query)}


def reconstructed(engine: Engine) -> dict[str, ContainerFacts]:
    """Every container's facts, from its trail reconstructed from all its entries."""
    with engine.connect() as connection:
        ids = list(connection.execute(select(tables.entries.c.container_id).distinct()).scalars())
        found = trails(connection, ids, now=NOW, rules=RULES)
    return {container_id: container_facts(trail) for container_id, trail in found.items()}


def no_facts(container_id: str) -> ContainerFacts:
    return ContainerFacts(container_id, None, None, None, None, None, None, None, None)


def assert_stored_facts_match(engine: Engine) -> dict[str, ContainerFacts]:
    rows = stored(engine)
    expected = reconstructed(engine)
    for container_id, facts in expected.items():
        document, shipment_id, pickup_at, intake_at, receipt_at = rows.get(
            container_id, (None,) * 5
        )
        if document is None:
            assert facts == no_facts(container_id), container_id
            assert (shipment_id, pickup_at, intake_at, receipt_at) == (None,) * 4
            continue
        assert facts_from_document(container_id, document) == facts, container_id
        assert (shipment_id, pickup_at, intake_at, receipt_at) == (
            facts.shipment_id,
            facts.pickup.at if facts.pickup else None,
            facts.intake.at if facts.intake else None,
            facts.receipt.at if facts.receipt else None,
        ), container_id
    return expected


def windows() -> list[Window]:
    return [
        Window(NOW - timedelta(days=40), NOW + timedelta(days=1)),
        Window(NOW - timedelta(days=20), NOW - timedelta(days=6)),
        Window(NOW - timedelta(days=7), NOW + timedelta(days=1)),
    ]


def assert_reports_match(engine: Engine, expected: dict[str, ContainerFacts]) -> None:
    reports = ReportQueries(engine, RULES)
    sites = {f.site for f in expected.values() if f.site is not None}
    plants = {f.plant for f in expected.values() if f.plant is not None}
    for window in windows():
        read = reports.mass_balance_facts(window)
        for group_by in (None, *GroupBy):
            assert mass_balance(read, window, group_by=group_by) == mass_balance(
                expected.values(), window, group_by=group_by
            ), (window, group_by)
        read = reports.shipment_log_facts(window)
        for party in (None, min(sites), min(plants)):
            assert shipment_log(read, window, party=party) == shipment_log(
                expected.values(), window, party=party
            ), (window, party)


@dataclass
class Recorded:
    settings: Settings
    engine: Engine
    before: dict[str, ContainerFacts]  # the facts before the corrections
    changed: dict[str, str]  # what each correction scenario did → its container


@pytest.fixture(scope="module")
def recorded(stack: LiveStack) -> Iterator[Recorded]:
    settings = stack.settings()
    engine = make_engine(settings.database_url, pool_size=1)
    scenario = build_scenario(
        ScenarioConfig(run_id="facts", now=NOW, containers=240, days=30, seed=3)
    )
    feed = Feed()
    messages = [
        feed.message(body, upload.at, device(scenario, upload.device_id))
        for upload in scenario.uploads
        for body in upload.events
    ]
    record(
        LedgerAppender(partial(PostgresAppendUnitOfWork, engine, "facts"), rules=RULES),
        [*messages, *receipts(scenario, feed)],
    )
    before = assert_stored_facts_match(engine)

    first: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    every: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for upload in scenario.uploads:
        for body in upload.events:
            first[body["container_id"]].setdefault(body["type"], body)
            every[body["container_id"]].append(body)
    taken_in = sorted(c for c, f in before.items() if f.intake is not None and f.receipt is None)
    received = sorted(c for c, f in before.items() if f.receipt is not None)
    at_site = sorted(c for c, f in before.items() if f.pickup is None and f.site is not None)
    changed = {
        "pickup voided": received[0],
        "intake voided": taken_in[0],
        "sealed voided": received[1],
        "pickup reinstated": received[2],
        "everything voided": at_site[0],
    }
    fixes = [
        correction(first[changed["pickup voided"]]["pickup"], 30),
        correction(first[changed["intake voided"]]["intake"], 30),
        *(
            correction(body, 30)
            for body in every[changed["sealed voided"]]
            if body["type"] == "sealed"
        ),
        *(
            correction(body, 30)
            for body in every[changed["everything voided"]]
            if body["type"] != "correction"
        ),
    ]
    voided_pickup = correction(first[changed["pickup reinstated"]]["pickup"], 30)
    admin = {"kind": "device", "party_id": "site-01", "device_id": "site-01-fixes"}
    cold = LedgerAppender(
        partial(PostgresAppendUnitOfWork, engine, "facts"), rules=RULES
    )  # nothing cached: reads entries
    record(cold, [feed.message(body, NOW, admin) for body in (*fixes, voided_pickup)])
    record(cold, [feed.message(correction(voided_pickup, 10), NOW, admin)])
    yield Recorded(settings, engine, before, changed)
    engine.dispose()


def test_the_stored_facts_equal_the_trails_facts(recorded: Recorded) -> None:
    before = recorded.before
    assert sum(f.pickup is not None for f in before.values()) >= 100
    assert sum(f.receipt is not None for f in before.values()) >= 50
    after = assert_stored_facts_match(recorded.engine)
    changed = recorded.changed
    assert before[changed["pickup voided"]].pickup is not None
    assert after[changed["pickup voided"]].pickup is None
    assert after[changed["intake voided"]].intake is None
    assert after[changed["sealed voided"]].sealed_kg is None
    assert after[changed["pickup reinstated"]] == before[changed["pickup reinstated"]]
    assert after[changed["everything voided"]] == no_facts(changed["everything voided"])
    # As after a rebuild, the read model holds no row for a container with no effective event.
    assert changed["everything voided"] not in stored(recorded.engine)


def test_reports_from_the_read_model_equal_reports_from_the_trails(recorded: Recorded) -> None:
    expected = assert_stored_facts_match(recorded.engine)
    assert_reports_match(recorded.engine, expected)


def test_rebuild_and_the_migration_refill_the_facts(recorded: Recorded) -> None:
    engine = recorded.engine
    rows = stored(engine)
    rebuild_read_model(engine, RULES)
    expected = assert_stored_facts_match(engine)
    assert stored(engine) == rows

    engine.dispose()
    admin_url = recorded.settings.admin_database_url
    command.downgrade(alembic_config(admin_url), "0004")
    upgrade(admin_url)
    assert stored(engine) == rows
    assert_reports_match(engine, expected)
