"""Wiring for the ingest service: settings → engine, registry, producer → app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import text

from services.ingest.app import IngestContext, create_app
from services.ingest.producer import EventProducer
from services.ingest.rate_limit import DeviceRateLimiter, RateLimit
from services.ingest.shared_runtime import shared_bucket_table
from services.ledger.adapters.database import make_engine
from services.logging_setup import configure_logging
from services.process_tuning import tune_for_throughput
from services.registry.store import RegistryStore
from services.settings import Settings, get_settings
from services.web.ops import database_check, kafka_check


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


def build_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    limiter = rate_limiter(settings)
    engine = make_engine(settings.database_url, application_name="custody-ingest")
    producer = EventProducer(
        settings.kafka_bootstrap, settings.topic, timeout_s=settings.produce_timeout_s
    )
    context = IngestContext(
        registry=RegistryStore(engine, cache_seconds=settings.registry_cache_s),
        producer=producer,
        max_body_bytes=settings.max_body_bytes,
        max_batch_events=settings.max_batch_events,
        rate_limiter=limiter,
    )

    def ping() -> None:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    app = create_app(
        context, {"database": database_check(ping), "kafka": kafka_check(settings.kafka_bootstrap)}
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tune_for_throughput()
        yield
        producer.close()
        engine.dispose()

    app.router.lifespan_context = lifespan
    return app


def serve_app() -> FastAPI:
    """The app of one served worker process (``custody serve ingest``), logging configured."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)
    return build_app(settings)
