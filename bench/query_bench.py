"""Auditor queries at scale (trail, search, inclusion proof, bundle, log tiles), the monitor's
catch-up and Merkle append cost."""

from __future__ import annotations

import random
import time
import zlib
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import create_engine

from bench.service_process import TOKEN_CACHE_S, peak_rss_mb, ready, start_service
from bench.stats import Figure
from bench.workload import ORIGINS, lives
from bench.wrk_load import wrk_get
from services.contract.epcis_identifiers import container_uri
from services.db.engine import make_engine
from services.ledger.adapters.append_unit_of_work import PostgresAppendUnitOfWork
from services.ledger.adapters.merkle_log import tree_size
from services.ledger.adapters.merkle_store import append_leaves
from services.ledger.consumer.decode import decode
from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.integrity.checkpoint import VerifierKey
from services.ledger.domain.integrity.tiles import encode_index
from services.ledger.domain.messages import IncomingMessage
from services.ledger.service.append import LedgerAppender
from services.ledger.service.checkpointer import Checkpointer
from services.monitor.follower import LogFollower, MonitorState
from services.registry.principals import ApiRole
from services.registry.store import RegistryStore
from services.settings import Settings
from services.stack.ephemeral import EphemeralStack
from services.stack.processes import free_port
from services.stack.service_processes import stop_process

CHUNK_CONTAINERS = 500
EVENTS_PER_CONTAINER = 10  # bench.workload.long_life
SPREAD = timedelta(days=365)  # the lives start over a year, so a day holds 1/365 of the events
EPCIS_STEPS = ("collecting", "packing", "consigning", "receiving", "destroying")


def load_ledger(settings: Settings, containers: int) -> float:
    """Append through the real store path (hashing, Merkle, read model), Kafka left out."""
    engine = make_engine(settings.database_url, pool_size=2)
    store = LedgerAppender(
        partial(PostgresAppendUnitOfWork, engine, "bench-load"),
        rules=CustodyRules(),
        cache_containers=5000,
    )
    offsets = [0] * settings.topic_partitions
    received = datetime.now(UTC).isoformat()
    started = time.perf_counter()
    pending = []
    with Progress(
        TextColumn("loading ledger"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as progress:
        task = progress.add_task("containers", total=containers)
        for number, (container, events) in enumerate(
            lives(containers, prefix="BQ", long=True, spread=SPREAD), 1
        ):
            key = container.encode()
            partition = zlib.crc32(key) % settings.topic_partitions
            for role, event in events:
                value = orjson.dumps(
                    {"event": event, "received_at": received, "origin": ORIGINS[role]}
                )
                pending.append(
                    decode(
                        IncomingMessage(settings.topic, partition, offsets[partition], key, value)
                    )
                )
                offsets[partition] += 1
            if number % CHUNK_CONTAINERS == 0 or number == containers:
                positions = {(settings.topic, p): o for p, o in enumerate(offsets) if o}
                store.append(pending, [], positions)
                pending = []
                progress.update(task, completed=number)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return containers * EVENTS_PER_CONTAINER / elapsed


def merkle_append_cost(settings: Settings, runs: int, leaves: int = 2000) -> list[float]:
    """µs per entry to extend the stored tree at its current size (rolled back each time)."""
    engine = make_engine(settings.database_url, pool_size=1)
    costs = []
    for _ in range(runs):
        with engine.connect() as connection:
            transaction = connection.begin()
            size = tree_size(connection)
            batch = [random.randbytes(32) for _ in range(leaves)]
            started = time.perf_counter()
            append_leaves(connection, size, batch)
            costs.append((time.perf_counter() - started) / leaves * 1e6)
            transaction.rollback()
    engine.dispose()
    return costs


def settle(settings: Settings) -> float:
    """Vacuum, analyse and checkpoint after the bulk load; returns the seconds it took.

    A ledger that reached this size over months has had this done by autovacuum as it grew.
    Right after a bulk load, autovacuum of ``ledger.entries`` started about a minute later,
    while the queries were being measured, sharing the disk and the two cores with them.
    """
    started = time.perf_counter()
    engine = create_engine(settings.admin_database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql("VACUUM (ANALYZE)")
        connection.exec_driver_sql("CHECKPOINT")
    engine.dispose()
    return time.perf_counter() - started


def monitor_catch_up(url: str, token: str, key: VerifierKey) -> float:
    """Entries a second ``custody monitor`` checks on its first run over the whole log."""
    with httpx.Client(
        base_url=f"{url}/log/", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        started = time.perf_counter()
        report = LogFollower(client, key, entries=True).follow(MonitorState())
        return report.entries_checked / (time.perf_counter() - started)


def epcis_day(day: datetime) -> str:
    start, end = (
        moment.strftime("%Y-%m-%dT%H:%M:%SZ") for moment in (day, day + timedelta(days=1))
    )
    return f"/epcis/events?GE_eventTime={start}&LT_eventTime={end}&perPage=100"


def write_paths(folder: Path, name: str, paths: list[str]) -> Path:
    target = folder / f"{name}.paths"
    target.write_text("\n".join(paths) + "\n")
    return target


def run(
    stack: EphemeralStack, *, containers: int, runs: int, seconds: int, logs: Path
) -> list[Figure]:
    settings = stack.settings(ledger_port=free_port(), registry_cache_s=TOKEN_CACHE_S)
    load_rate = load_ledger(settings, containers)
    engine = make_engine(settings.database_url, pool_size=1)
    log_key = Ed25519PrivateKey.generate()
    Checkpointer(
        engine,
        log_key,
        origin=settings.log_origin,
        interval_s=1,
        every_entries=1,
    ).checkpoint_now()
    token = RegistryStore(engine).add_api_token("bench-auditor", ApiRole.AUDITOR)
    with engine.connect() as connection:
        event_ids = [
            str(row[0])
            for row in connection.exec_driver_sql(
                "SELECT event_id FROM ledger.entries TABLESAMPLE SYSTEM (1) LIMIT 5000"
            )
        ]
    engine.dispose()
    merkle = merkle_append_cost(settings, runs)
    print(f"  vacuum, analyse and checkpoint after the load: {settle(settings):.0f} s", flush=True)
    url = f"http://127.0.0.1:{settings.ledger_port}"
    log = logs / "ledger.log"
    process = start_service(settings, "ledger", log)
    figures: dict[str, list[tuple[float, float]]] = {
        k: []
        for k in (
            "trail",
            "search",
            "proof",
            "bundle",
            "tile",
            "entries",
            "epcis_epc",
            "epcis_day",
            "epcis_step",
        )
    }
    first_day = (datetime.now(UTC) - SPREAD).replace(hour=0, minute=0, second=0, microsecond=0)
    entries = containers * EVENTS_PER_CONTAINER
    full_tiles = {level: entries // 256 ** (level + 1) for level in (0, 1)}
    requests = dict.fromkeys(figures, 0)
    try:
        ready(url, process, log)
        rng = random.Random(7)

        def fresh_paths() -> dict[str, Path]:
            """New random containers and events for each run, so no run reads a warm page."""
            trails = [f"/v1/containers/BQ-{rng.randrange(containers):07d}" for _ in range(5000)]
            kinds = {
                "trail": [f"{path}/custody" for path in trails],
                "search": ["/v1/containers?state=processed&custodian=plant-a&limit=50"],
                "proof": [f"/v1/events/{rng.choice(event_ids)}/proof" for _ in trails],
                "bundle": [f"{path}/bundle" for path in trails],
                "tile": [
                    f"/log/tile/{level}/{encode_index(rng.randrange(full_tiles[level]))}"
                    for level in (0, 0, 0, 1)
                    for _ in range(1250)
                ],
                "entries": [
                    f"/log/tile/entries/{encode_index(rng.randrange(entries // 256))}"
                    for _ in range(5000)
                ],
                "epcis_epc": [
                    "/epcis/events?MATCH_epc=" + quote(container_uri(path.rsplit("/", 1)[1]))
                    for path in trails
                ],
                "epcis_day": [
                    epcis_day(first_day + timedelta(days=rng.randrange(365))) for _ in trails
                ],
                "epcis_step": [
                    f"/epcis/events?EQ_bizStep={rng.choice(EPCIS_STEPS)}&perPage=100"
                    for _ in range(5000)
                ],
            }
            return {name: write_paths(logs, name, items) for name, items in kinds.items()}

        wrk_get(url, token, fresh_paths()["trail"], seconds=2)  # warm-up
        for index in range(runs):
            for name, listed in fresh_paths().items():
                measured = wrk_get(url, token, listed, seconds=seconds)
                figures[name].append((measured["p50_ms"], measured["p99_ms"]))
                requests[name] += int(measured["requests"])
            print(
                f"  query run {index + 1}: "
                + ", ".join(f"{k} p99 {v[-1][1]:.1f} ms" for k, v in figures.items()),
                flush=True,
            )
        catch_up = monitor_catch_up(
            url, token, VerifierKey(settings.log_origin, log_key.public_key())
        )
        print(f"  monitor catch-up: {catch_up:,.0f} entries/s", flush=True)
        rss = peak_rss_mb(process.pid)
    finally:
        stop_process(process)
    scale = (
        f"{entries:,} entries over {containers:,} containers; wrk, one connection, {seconds} s/run"
    )
    result = [
        Figure(
            "ledger load through the store (no Kafka)",
            "events/s",
            [load_rate],
            note="used to fill the ledger for the query figures",
        )
    ]
    labels = {
        "trail": "custody trail",
        "search": "container search",
        "proof": "inclusion proof",
        "bundle": "bundle",
        "tile": "hash tile (/log/tile/0 and /1)",
        "entries": "entry bundle (/log/tile/entries)",
        "epcis_epc": "EPCIS query MATCH_epc (one container)",
        "epcis_day": "EPCIS query, one-day GE_/LT_eventTime window, perPage=100",
        "epcis_step": "EPCIS query EQ_bizStep, perPage=100",
    }
    for name, label in labels.items():
        result.append(
            Figure(
                f"{label} p50",
                "ms",
                [p50 for p50, _ in figures[name]],
                higher_is_better=False,
                note=f"{scale}; {requests[name]:,} requests",
            )
        )
        result.append(
            Figure(
                f"{label} p99",
                "ms",
                [p99 for _, p99 in figures[name]],
                higher_is_better=False,
                note=f"{scale}; {requests[name]:,} requests",
            )
        )
    result.append(
        Figure(
            "Merkle maintenance per appended entry",
            "µs",
            merkle,
            higher_is_better=False,
            note=f"2,000 leaves appended at tree size {entries:,}",
        )
    )
    result.append(
        Figure(
            "custody monitor catch-up (re-hash every entry)",
            "entries/s",
            [catch_up],
            note=f"one run from an empty state over {entries:,} entries, with an auditor token",
        )
    )
    result.append(Figure("ledger API peak RSS", "MB", [rss], higher_is_better=False))
    return result
