"""Ingest: HTTP batch and single-event POSTs vs the raw kafka-python producer."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from kafka import KafkaProducer

from bench.service_process import TOKEN_CACHE_S, peak_rss_mb, ready, start_service
from bench.stats import Figure
from bench.workload import ORIGINS
from bench.wrk_load import wrk_post
from services.db.engine import make_engine
from services.registry.principals import PartyRole
from services.registry.store import RegistryStore
from services.settings import Settings
from services.stack.ephemeral import EphemeralStack
from services.stack.processes import free_port
from services.stack.service_processes import stop_process


def dropoff_envelopes(count: int) -> list[tuple[bytes, bytes]]:
    received = datetime.now(UTC).isoformat()
    messages = []
    for number in range(count):
        container = f"RB-{number:07d}"
        event = {
            "event_id": str(uuid.uuid4()),
            "type": "dropoff",
            "container_id": container,
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            "location_id": "loc-bench",
            "chemistry": "li_ion",
            "battery_count": 40,
        }
        value = {"event": event, "received_at": received, "origin": ORIGINS["site"]}
        messages.append((container.encode(), orjson.dumps(value)))
    return messages


def raw_producer_run(settings: Settings, messages: list[tuple[bytes, bytes]]) -> float:
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        batch_size=256 * 1024,
    )
    producer.partitions_for(settings.topic)
    started = time.perf_counter()
    for key, value in messages:
        producer.send(settings.topic, key=key, value=value)
    producer.flush()
    elapsed = time.perf_counter() - started
    producer.close()
    return len(messages) / elapsed


def run(stack: EphemeralStack, *, events: int, runs: int, seconds: int, logs: Path) -> list[Figure]:
    # One device stands in for a whole network here, so the per-device limit is off.
    settings = stack.settings(
        ingest_port=free_port(), registry_cache_s=TOKEN_CACHE_S, rate_limit_per_device=0
    )
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    registry.add_party("site-a", "Site A", PartyRole.SITE)
    token = registry.add_device("bench-site-dev", "site-a")
    engine.dispose()
    messages = dropoff_envelopes(events)
    url = f"http://127.0.0.1:{settings.ingest_port}"
    log = logs / "ingest.log"
    process = start_service(settings, "ingest", log)
    raw, batch, batch_p50, batch_p99, single_rps, single_p50, single_p99 = ([] for _ in range(7))
    try:
        ready(url, process, log)
        wrk_post(url, token, batch=False, seconds=2, connections=8)  # warm-up
        for index in range(runs):
            raw.append(raw_producer_run(settings, messages))
            result = wrk_post(url, token, batch=True, seconds=seconds, connections=8)
            batch.append(result["events_per_s"])
            batch_p50.append(result["p50_ms"])
            batch_p99.append(result["p99_ms"])
            result = wrk_post(url, token, batch=False, seconds=seconds, connections=32)
            single_rps.append(result["requests_per_s"])
            single_p50.append(result["p50_ms"])
            single_p99.append(result["p99_ms"])
            print(
                f"  ingest run {index + 1}: raw {raw[-1]:,.0f}/s, batch {batch[-1]:,.0f}/s, "
                f"single {single_rps[-1]:,.0f} req/s",
                flush=True,
            )
        rss = peak_rss_mb(process.pid)
    finally:
        stop_process(process)
    note = f"wrk for {seconds} s/run, 500 events per request, 8 connections; raw: {events:,} events"
    return [
        Figure(
            "ingest batch POST",
            "events/s",
            batch,
            "raw kafka-python producer (acks=all)",
            raw,
            note=note,
        ),
        Figure("ingest batch POST latency p50", "ms", batch_p50, higher_is_better=False),
        Figure("ingest batch POST latency p99", "ms", batch_p99, higher_is_better=False),
        Figure(
            "ingest single-event POST",
            "requests/s",
            single_rps,
            note=f"wrk for {seconds} s/run, 32 connections",
        ),
        Figure("ingest single POST latency p50", "ms", single_p50, higher_is_better=False),
        Figure("ingest single POST latency p99", "ms", single_p99, higher_is_better=False),
        Figure("ingest peak RSS", "MB", [rss], higher_is_better=False, note="after all runs"),
    ]
