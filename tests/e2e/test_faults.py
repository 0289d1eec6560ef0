"""Faults while the ledger consumes: every acknowledged event recorded once, none lost.

Each test reports sent / acknowledged / recorded / duplicated / lost on stdout and appends the
figures to ``test-output/faults.jsonl``; docs/reliability.md quotes them."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from services.db.engine import make_engine
from services.settings import Settings
from tests.support import events as ev
from tests.support.fault_report import report_fault
from tests.support.network import register_network
from tests.support.services import running, start_service
from tests.support.stack import LiveStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.e2e

ORIGIN = {"kind": "device", "party_id": "site-a", "device_id": "site-a-dev"}
ASSIGNED = re.compile(r"partitions assigned: \[\d")


def produce_directly(settings: Settings, containers: int, prefix: str) -> set[str]:
    """Write dropoff + sealed per container straight to the topic, as ingest would."""
    sent: set[str] = set()
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    received = datetime.now(UTC).isoformat()
    for number in range(containers):
        container = f"{prefix}-{number:05d}"
        for event in (ev.dropoff(container), ev.sealed(container)):
            sent.add(event["event_id"])
            envelope = {"event": event, "received_at": received, "origin": ORIGIN}
            producer.send(settings.topic, key=container.encode(), value=orjson.dumps(envelope))
    producer.flush()
    producer.close()
    return sent


def entry_counter(engine: Engine) -> Callable[[], int]:
    """Entries recorded so far, or -1 while the database cannot be reached."""

    def recorded() -> int:
        try:
            with engine.connect() as connection:
                count: int = connection.execute(
                    text("SELECT count(*) FROM ledger.entries")
                ).scalar_one()
        except OperationalError:
            return -1
        return count

    return recorded


def test_postgresql_restart_during_consumption_loses_and_duplicates_nothing(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(consumer_batch_max=200)
    sent = produce_directly(settings, 3000, "F")
    engine = make_engine(settings.database_url, pool_size=1)
    recorded = entry_counter(engine)

    consumer = start_service(settings, "consumer", tmp_path)
    try:
        wait_for(lambda: recorded() >= 600, what="600 entries before the restart")
        stack.postgres.stop(mode="fast")
        stack.postgres.start()
        wait_for(lambda: recorded() == len(sent), what="every event recorded", timeout=180)
        assert consumer.process.poll() is None, "the consumer died instead of waiting"
    finally:
        consumer.stop()

    figures = report_fault(engine, "PostgreSQL restart", sent=len(sent), acknowledged=sent)
    engine.dispose()
    assert (figures["lost"], figures["duplicated"], figures["recorded"]) == (0, 0, len(sent))
    assert "database unavailable, batch will be retried" in consumer.log.read_text()


def test_two_consumers_one_killed_mid_stream_rebalance_loses_nothing(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(consumer_batch_max=250)
    engine = make_engine(settings.database_url, pool_size=1)
    recorded = entry_counter(engine)

    first = start_service(settings, "consumer", tmp_path / "first")
    second = start_service(settings, "consumer", tmp_path / "second")
    try:
        # Both members hold partitions before the events arrive, so both are consuming when one
        # of them dies. (Produced earlier, the events were once all recorded by the first member
        # while the second was still joining, and the kill came after the stream.)
        wait_for(
            lambda: all(ASSIGNED.search(c.log.read_text()) for c in (first, second)),
            what="both consumers assigned partitions",
            timeout=120,
        )
        sent = produce_directly(settings, 10_000, "G")
        wait_for(lambda: recorded() >= 1000, what="1,000 entries before the kill")
        first.kill()
        killed_at = recorded()
        assert killed_at < len(sent), "the kill came after everything was recorded"
        restarted = start_service(settings, "consumer", tmp_path / "restarted")
        try:
            wait_for(lambda: recorded() == len(sent), what="every event recorded", timeout=240)
        finally:
            restarted.stop()
    finally:
        second.stop()

    figures = report_fault(
        engine,
        "two consumers, one SIGKILLed mid-stream, then restarted",
        sent=len(sent),
        acknowledged=sent,
        recorded_at_kill=killed_at,
    )
    engine.dispose()
    assert (figures["lost"], figures["duplicated"], figures["recorded"]) == (0, 0, len(sent))


def test_read_only_database_stops_appending_and_resumes_without_loss(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(consumer_batch_max=200)
    sent = produce_directly(settings, 2500, "H")
    engine = make_engine(settings.database_url, pool_size=1)
    recorded = entry_counter(engine)
    superuser = make_engine(settings.admin_database_url, pool_size=1)

    def set_read_only(on: bool) -> None:
        # ALTER SYSTEM + reload reaches the consumer's open connections too, as a volume
        # remounted read-only or a full disk would.
        with superuser.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            value = "on" if on else "off"
            connection.execute(text(f"ALTER SYSTEM SET default_transaction_read_only = {value}"))
            connection.execute(text("SELECT pg_reload_conf()"))

    consumer = start_service(settings, "consumer", tmp_path)
    try:
        wait_for(lambda: recorded() >= 400, what="400 entries before the fault")
        set_read_only(True)
        try:
            wait_for(
                lambda: "read-only transaction" in consumer.log.read_text(),
                what="the consumer to meet the read-only database",
            )
            frozen = recorded()
            wait_for(
                lambda: consumer.log.read_text().count("database unavailable") >= 3,
                what="the consumer to retry while the fault lasts",
            )
            assert recorded() == frozen, "entries were appended to a read-only database"
            assert consumer.process.poll() is None, "the consumer died instead of waiting"
            unready = httpx.get(f"{consumer.url}/readyz", timeout=5)
            assert unready.status_code == 503, unready.text
        finally:
            set_read_only(False)
        wait_for(lambda: recorded() == len(sent), what="every event recorded", timeout=180)
        wait_for(
            lambda: httpx.get(f"{consumer.url}/readyz", timeout=5).status_code == 200,
            what="the consumer to report ready again",
        )
    finally:
        consumer.stop()
    superuser.dispose()

    figures = report_fault(
        engine,
        "read-only database during consumption",
        sent=len(sent),
        acknowledged=sent,
        recorded_when_fault_began=frozen,
    )
    engine.dispose()
    assert frozen < len(sent), "the fault came after everything was recorded"
    assert (figures["lost"], figures["duplicated"], figures["recorded"]) == (0, 0, len(sent))


def test_broker_restart_during_steady_ingest_loses_no_acknowledged_event(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(produce_timeout_s=3.0)
    network = register_network(settings)
    acknowledged: list[str] = []
    refused = 0
    with running(settings, ["ingest", "consumer"], tmp_path) as services:
        client = httpx.Client(base_url=str(services["ingest"].url), timeout=30)

        def post_until_accepted(event: dict[str, object]) -> None:
            nonlocal refused
            while True:  # a scanner retries with the same event_id until it gets a 202
                try:
                    response = client.post(
                        "/v1/events", json=event, headers=network.headers("site-a-dev")
                    )
                except httpx.HTTPError:
                    refused += 1
                    continue
                if response.status_code == 202:
                    acknowledged.append(str(event["event_id"]))
                    return
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"]
                refused += 1

        for number in range(150):
            post_until_accepted(ev.dropoff(f"R-{number:04d}"))
        stack.kafka.stop()
        # While no broker is up, a scan is refused: 503, Retry-After, nothing claimed.
        first_while_down = ev.dropoff("R-0150")
        refusal = client.post(
            "/v1/events", json=first_while_down, headers=network.headers("site-a-dev")
        )
        assert refusal.status_code == 503, refusal.text
        assert refusal.headers["retry-after"]
        refused += 1
        restart = threading.Thread(target=stack.kafka.start)
        restart.start()
        post_until_accepted(first_while_down)  # the scanner retries with the same event_id
        for number in range(151, 300):
            post_until_accepted(ev.dropoff(f"R-{number:04d}"))
        restart.join()

        wait_for(
            lambda: recorded_ids(settings) >= set(acknowledged),
            what="acknowledged events",
            timeout=180,
        )
    engine = make_engine(settings.database_url, pool_size=1)
    figures = report_fault(
        engine,
        "Kafka broker restart during steady ingest",
        sent=300,
        acknowledged=set(acknowledged),
        refused_with_503_and_retried=refused,
    )
    engine.dispose()
    assert (len(acknowledged), figures["lost"], figures["duplicated"]) == (300, 0, 0)


def recorded_ids(settings: Settings) -> set[str]:
    engine = make_engine(settings.database_url, pool_size=1)
    with engine.connect() as connection:
        ids = set(connection.execute(text("SELECT event_id::text FROM ledger.entries")).scalars())
    engine.dispose()
    return ids


def test_consumer_slower_than_ingest_drains_its_backlog_with_lag_in_metrics(
    stack: LiveStack, tmp_path: Path
) -> None:
    settings = stack.settings(consumer_batch_max=200)
    network = register_network(settings)
    engine = make_engine(settings.database_url, pool_size=1)
    recorded = entry_counter(engine)
    superuser = make_engine(settings.admin_database_url, pool_size=1)
    acknowledged: set[str] = set()
    highest_lag = 0.0
    with running(settings, ["ingest", "consumer"], tmp_path) as services:
        client = httpx.Client(base_url=str(services["ingest"].url), timeout=60)
        metrics_url = f"{services['consumer'].url}/metrics"

        def upload(prefix: str, count: int) -> None:
            for start in range(0, count, 500):
                batch = [ev.dropoff(f"{prefix}-{n:05d}") for n in range(start, start + 500)]
                response = client.post(
                    "/v1/events/batch",
                    json={"events": batch},
                    headers=network.headers("site-a-dev"),
                )
                assert response.status_code == 200, response.text
                acknowledged.update(str(event["event_id"]) for event in batch)

        def drained() -> bool:
            nonlocal highest_lag
            lag = total_lag(httpx.get(metrics_url, timeout=5).text)
            highest_lag = max(highest_lag, lag)
            return lag == 0 and recorded() == len(acknowledged)

        upload("S", 1000)
        wait_for(drained, what="the first 1,000 events recorded")
        # A lock held elsewhere (a long maintenance job, say) stalls the consumer's appends
        # while the scanners' end-of-day uploads keep arriving.
        with superuser.connect() as blocker:
            blocker.execute(text("LOCK TABLE ledger.entries IN EXCLUSIVE MODE"))
            upload("T", 10_000)
            stalled_at = recorded()
            blocker.rollback()
        wait_for(drained, what="the backlog to drain", timeout=180)
    superuser.dispose()

    figures = report_fault(
        engine,
        "consumer stalled while ingest accepted 10,000 events",
        sent=11_000,
        acknowledged=acknowledged,
        highest_lag_in_metrics=int(highest_lag),
    )
    engine.dispose()
    assert stalled_at == 1000, "the consumer appended while it should have been stalled"
    assert highest_lag >= 5000, f"the backlog never showed in the lag metric ({highest_lag})"
    assert (figures["lost"], figures["duplicated"], figures["recorded"]) == (0, 0, 11_000)


def total_lag(exposition: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name == "custody_consumer_lag"
        for sample in family.samples
    )
