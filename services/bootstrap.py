"""The one bootstrap: every process and every CLI command builds its parts here.

Nothing connects at import time. Each builder takes the settings and returns a ready part
that owns what it opened: the HTTP apps dispose their engine and producer on shutdown, the
workers on ``close``, and CLI commands open a ``Resources`` block that disposes on exit
(docs/architecture.md §2).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import Engine

from services.db.engine import make_engine, ping
from services.ingest.adapters.capture_jobs import PostgresCaptureJobs
from services.ingest.adapters.correction_targets import LedgerCorrectionTargets
from services.ingest.adapters.producer import EventProducer
from services.ingest.adapters.shared_runtime import shared_bucket_table
from services.ingest.api.app import IngestContext
from services.ingest.api.app import create_app as create_ingest_app
from services.ingest.domain.rate_limit import DeviceRateLimiter, RateLimit
from services.ingest.service.capture import CaptureLimits
from services.ledger.adapters.append_unit_of_work import PostgresAppendUnitOfWork, stored_offsets
from services.ledger.adapters.dead_letters import KafkaDeadLetters
from services.ledger.adapters.entries_statistics import EntriesStatistics
from services.ledger.adapters.epcis_queries import EpcisQueryStore
from services.ledger.adapters.kafka_source import KafkaSource
from services.ledger.adapters.signing_keys import load_private_key, load_verifier, verifier_path
from services.ledger.api.app import create_app as create_ledger_app
from services.ledger.consumer.metrics import consumer_metrics
from services.ledger.consumer.runner import LedgerConsumer
from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.delivery_policy import RetryPolicy
from services.ledger.readside import ReadSide
from services.ledger.readside.events import EventQueries
from services.ledger.service.append import LedgerAppender
from services.ledger.service.checkpointer import Checkpointer
from services.ledger.service.notifier import Notifier
from services.ledger.service.subscriptions import SubscriptionDelivery, SubscriptionTiming
from services.ledger.service.witnessing import Witnessing, parse_witnesses
from services.logging_setup import configure_logging
from services.process_tuning import tune_for_throughput
from services.registry.store import RegistryStore
from services.settings import Settings, get_settings
from services.web.ops import ReadinessCheck, database_check, kafka_check


def custody_rules(settings: Settings) -> CustodyRules:
    return CustodyRules(
        weight_tolerance_kg=settings.weight_tolerance_kg,
        weight_tolerance_pct=settings.weight_tolerance_pct,
    )


@dataclass
class Resources:
    """Engines opened for one CLI command or worker, all disposed by ``close``."""

    settings: Settings
    _engines: list[Engine] = field(default_factory=list)

    def engine(self, application_name: str, *, pool_size: int = 1) -> Engine:
        engine = make_engine(
            self.settings.database_url, pool_size=pool_size, application_name=application_name
        )
        self._engines.append(engine)
        return engine

    def registry(self) -> RegistryStore:
        return RegistryStore(self.engine("custody-cli"))

    def close(self) -> None:
        for engine in self._engines:
            engine.dispose()
        self._engines.clear()


@contextmanager
def resources(settings: Settings | None = None) -> Iterator[Resources]:
    opened = Resources(settings or get_settings())
    try:
        yield opened
    finally:
        opened.close()


def _disposing(app: FastAPI, *closers: Callable[[], None]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_for_throughput()
        yield
        for close in closers:
            close()

    app.router.lifespan_context = lifespan
    return app


# --- ingest --------------------------------------------------------------------------------------


def rate_limiter(settings: Settings) -> DeviceRateLimiter | None:
    limit = RateLimit(settings.rate_limit_per_device, settings.rate_limit_burst)
    if not limit.enabled:
        return None
    if limit.burst < settings.max_batch_events:
        raise ValueError(
            f"CUSTODY_RATE_LIMIT_BURST ({limit.burst}) must be at least "
            f"CUSTODY_MAX_BATCH_EVENTS ({settings.max_batch_events}), "
            "or a full batch could never be accepted"
        )
    return DeviceRateLimiter(limit, time.monotonic, shared_bucket_table())


def build_ingest_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    limiter = rate_limiter(settings)
    engine = make_engine(settings.database_url, application_name="custody-ingest")
    producer = EventProducer(
        settings.kafka_bootstrap, settings.topic, timeout_s=settings.produce_timeout_s
    )
    context = IngestContext(
        registry=RegistryStore(engine, cache_seconds=settings.registry_cache_s),
        corrections=LedgerCorrectionTargets(engine),
        producer=producer,
        max_body_bytes=settings.max_body_bytes,
        max_batch_events=settings.max_batch_events,
        rate_limiter=limiter,
        capture_jobs=PostgresCaptureJobs(engine),
        capture_limits=CaptureLimits(
            max_events=settings.epcis_capture_max_events,
            max_bytes=settings.epcis_capture_max_bytes,
        ),
    )
    checks = {
        "database": database_check(lambda: ping(engine)),
        "kafka": kafka_check(settings.kafka_bootstrap),
    }
    return _disposing(create_ingest_app(context, checks), producer.close, engine.dispose)


def serve_ingest_app() -> FastAPI:
    """The app of one served worker process (``custody serve ingest``), logging configured."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return build_ingest_app(settings)


# --- ledger ---------------------------------------------------------------------------------------


def build_ledger_api(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, application_name="custody-ledger-api")
    key_file = verifier_path(settings.signing_key_file)
    app = create_ledger_app(
        RegistryStore(engine, cache_seconds=settings.registry_cache_s),
        ReadSide(engine, custody_rules(settings)),
        {"database": database_check(lambda: ping(engine))},
        lambda: load_verifier(key_file),
        EpcisQueryStore(engine),
    )
    return _disposing(app, engine.dispose)


def build_appender(engine: Engine, settings: Settings) -> LedgerAppender:
    group = settings.consumer_group
    return LedgerAppender(
        lambda: PostgresAppendUnitOfWork(engine, group), rules=custody_rules(settings)
    )


def build_consumer(settings: Settings | None = None) -> LedgerConsumer:
    settings = settings or get_settings()
    engine = make_engine(settings.database_url, pool_size=2, application_name="custody-consumer")
    group = settings.consumer_group
    source = KafkaSource(
        bootstrap=settings.kafka_bootstrap,
        topic=settings.topic,
        group=group,
        batch_max=settings.consumer_batch_max,
        stored_offsets=lambda topic: stored_offsets(engine, group, topic),
        lag_gauge=consumer_metrics().lag,
    )
    consumer = LedgerConsumer(
        source=source,
        appender=build_appender(engine, settings),
        dead_letters=KafkaDeadLetters(bootstrap=settings.kafka_bootstrap, topic=settings.dlq_topic),
        statistics=EntriesStatistics(engine, check_every_s=settings.consumer_analyze_check_s),
        batch_max=settings.consumer_batch_max,
        poll_ms=settings.consumer_poll_ms,
        release=engine.dispose,
    )
    tune_for_throughput()
    return consumer


def build_checkpointer(resources: Resources) -> Checkpointer:
    settings = resources.settings
    return Checkpointer(
        resources.engine("custody-checkpointer"),
        load_private_key(settings.signing_key_file),
        origin=settings.log_origin,
        interval_s=settings.checkpoint_interval_s,
        every_entries=settings.checkpoint_entries,
        witnessing=Witnessing(
            resources.engine("custody-witnessing"),
            parse_witnesses(settings.witnesses),
            timeout_s=settings.witness_timeout_s,
        )
        if settings.witnesses.strip()
        else None,
    )


def build_notifier(resources: Resources) -> Notifier:
    settings = resources.settings
    return Notifier(
        resources.engine("custody-notifier", pool_size=settings.notifier_concurrency + 1),
        policy=RetryPolicy(
            time_scale=settings.notifier_time_scale, jitter=settings.notifier_jitter
        ),
        timeout_s=settings.notifier_timeout_s,
        poll_s=settings.notifier_poll_s,
        concurrency=settings.notifier_concurrency,
        rng=random.Random(settings.notifier_jitter_seed or None),
    )


def build_subscription_delivery(resources: Resources) -> SubscriptionDelivery:
    """EPCIS subscriptions, delivered by the notifier process beside plant notifications."""
    settings = resources.settings
    engine = resources.engine("custody-subscriptions", pool_size=2)
    scale = settings.notifier_time_scale
    return SubscriptionDelivery(
        engine,
        EventQueries(engine, custody_rules(settings)),
        resources.registry(),
        timeout_s=settings.notifier_timeout_s,
        timing=SubscriptionTiming(
            idle_s=min(settings.notifier_poll_s, 0.5),
            retry_base_s=1.0 * scale,
            retry_max_s=300.0 * scale,
        ),
    )


# --- readiness of the workers -------------------------------------------------------------------


def database_probe(resources: Resources, name: str) -> ReadinessCheck:
    """A ``SELECT 1`` on an engine of its own, so probes never wait for the worker's pool."""
    engine = resources.engine(f"custody-{name}-probe")
    return database_check(lambda: ping(engine))


def consumer_checks(
    resources: Resources, consumer: Callable[[], LedgerConsumer | None]
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
        "kafka": kafka_check(resources.settings.kafka_bootstrap),
        "database": database_probe(resources, "consumer"),
    }


def worker_checks(resources: Resources, name: str) -> dict[str, ReadinessCheck]:
    """The notifier's and the checkpointer's readiness: PostgreSQL reachable."""
    return {"database": database_probe(resources, name)}


def checkpointer_checks(
    resources: Resources, checkpointer: Checkpointer
) -> dict[str, ReadinessCheck]:
    """PostgreSQL reachable, and no witness failing for ``witness_unready_after_s``."""
    checks = worker_checks(resources, "checkpointer")
    witnessing = checkpointer.witnessing
    if witnessing is not None:
        after_s = resources.settings.witness_unready_after_s
        checks["witnesses"] = lambda: witnessing.unready_reason(after_s)
    return checks
