"""Wiring for the ledger service: the auditor API, the consumer and the checkpointer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from services.ledger.adapters.database import make_engine
from services.ledger.adapters.entries_statistics import EntriesStatistics
from services.ledger.adapters.ledger_store import LedgerStore
from services.ledger.adapters.proof_queries import ProofQueries
from services.ledger.adapters.queries import LedgerQueries
from services.ledger.adapters.signing_keys import load_private_key, load_verifier, verifier_path
from services.ledger.api.app import create_app
from services.ledger.checkpointer import Checkpointer
from services.ledger.consumer.runner import LedgerConsumer
from services.ledger.domain.custody import CustodyRules
from services.process_tuning import tune_for_throughput
from services.registry.store import RegistryStore
from services.settings import Settings, get_settings
from services.web.ops import ReadinessCheck, database_check, kafka_check


def custody_rules(settings: Settings) -> CustodyRules:
    return CustodyRules(
        weight_tolerance_kg=settings.weight_tolerance_kg,
        weight_tolerance_pct=settings.weight_tolerance_pct,
    )


def build_api(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, application_name="custody-ledger-api")

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    key_file = verifier_path(settings.signing_key_file)
    app = create_app(
        RegistryStore(engine, cache_seconds=settings.registry_cache_s),
        LedgerQueries(engine, custody_rules(settings)),
        ProofQueries(engine),
        {"database": database_check(ping)},
        lambda: load_verifier(key_file),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_for_throughput()
        yield
        engine.dispose()

    app.router.lifespan_context = lifespan
    return app


def build_checkpointer(settings: Settings | None = None) -> Checkpointer:
    settings = settings or get_settings()
    private_key = load_private_key(settings.signing_key_file)
    engine = make_engine(
        settings.database_url, pool_size=1, application_name="custody-checkpointer"
    )
    return Checkpointer(
        engine,
        private_key,
        origin=settings.log_origin,
        interval_s=settings.checkpoint_interval_s,
        every_entries=settings.checkpoint_entries,
    )


def build_consumer(settings: Settings | None = None) -> LedgerConsumer:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, pool_size=2, application_name="custody-consumer")
    store = LedgerStore(engine, group=settings.consumer_group, rules=custody_rules(settings))
    consumer = LedgerConsumer(
        store=store,
        statistics=EntriesStatistics(engine, check_every_s=settings.consumer_analyze_check_s),
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic,
        dlq_topic=settings.dlq_topic,
        group=settings.consumer_group,
        batch_max=settings.consumer_batch_max,
        poll_ms=settings.consumer_poll_ms,
    )
    tune_for_throughput()
    return consumer


def database_ping(settings: Settings, application_name: str) -> Callable[[], None]:
    """A ``SELECT 1`` on an engine of its own, so probes never wait for the worker's pool."""
    engine = make_engine(settings.database_url, pool_size=1, application_name=application_name)

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    return ping


def consumer_checks(
    settings: Settings, consumer: Callable[[], LedgerConsumer | None]
) -> dict[str, ReadinessCheck]:
    """Ready once built and recording, with a Kafka broker and PostgreSQL reachable."""

    def recording() -> str | None:
        running = consumer()
        if running is None:
            return "starting: waiting for the topic's partitions"
        if not running.ready:
            return "PostgreSQL unavailable: the batch in hand is being retried"
        return None

    return {
        "consumer": recording,
        "kafka": kafka_check(settings.kafka_bootstrap),
        "database": database_check(database_ping(settings, "custody-consumer-probe")),
    }


def worker_checks(settings: Settings, name: str) -> dict[str, ReadinessCheck]:
    """The notifier's and the checkpointer's readiness: PostgreSQL reachable."""
    return {"database": database_check(database_ping(settings, f"custody-{name}-probe"))}
