"""Load a simulated network of N containers into a throw-away ledger, then time the UI pages.

    flock /tmp/custody-suite.lock .venv/bin/python -m bench.load_containers --containers 10000

What it does, in order:

1. starts a private PostgreSQL cluster in a temporary folder (no Kafka: see 3) and migrates it;
2. builds the `custody simulate` scenario for N containers (30 days, seed 7: sites, haulers,
   the hub, plants, planted anomalies, duplicate and late uploads, corrections) and registers
   its parties and an auditor token;
3. records every upload through the ledger's real append path — `decode` (the consumer's
   contract check) then `LedgerAppender.append` (lock, replay skip, gapless seq, hash chain,
   Merkle nodes, read model, offsets in one transaction), 2,000 messages a batch, as the
   consumer does. Only Kafka is left out, to load fast: each upload becomes the messages ingest
   would have produced (key = container id, partition = crc32 of it, received_at = the
   upload's time), so nothing the UI reads differs from a run through ingest;
4. signs a checkpoint, starts `custody serve ledger` as a process, signs in to the UI and
   fetches each page 5 times after one warm-up; prints the median and the slowest.

``--hold`` keeps the ledger running afterwards (prints its URL and the token) until Enter.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import statistics
import subprocess
import tempfile
import time
import zlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
import orjson

from bench.service_process import ready, start_service
from services.db.engine import make_engine
from services.db.migrations import upgrade
from services.ledger.adapters.append_unit_of_work import PostgresAppendUnitOfWork
from services.ledger.adapters.signing_keys import create_key, load_private_key
from services.ledger.consumer.decode import decode
from services.ledger.domain.custody import CustodyRules
from services.ledger.domain.messages import IncomingMessage
from services.ledger.service.append import LedgerAppender
from services.ledger.service.checkpointer import Checkpointer
from services.registry.principals import ApiRole
from services.registry.store import RegistryStore
from services.settings import Settings
from services.simulation.scenario import Scenario, ScenarioConfig, build_scenario
from services.stack.postgres_cluster import PostgresCluster
from services.stack.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "custody.events"
PARTITIONS = 6
BATCH = 2000
RUNS = 5


def messages(scenario: Scenario) -> list[IncomingMessage]:
    """Every upload's events as the Kafka messages ingest would have written, in upload order."""
    devices = {device.device_id: device for device in scenario.devices}
    offsets: dict[int, int] = defaultdict(int)
    found = []
    for upload in scenario.uploads:
        device = devices[upload.device_id]
        origin = {"kind": "device", "party_id": device.party_id, "device_id": device.device_id}
        for event in upload.events:
            key = event["container_id"].encode()
            partition = zlib.crc32(key) % PARTITIONS
            value = orjson.dumps(
                {"event": event, "received_at": upload.at.isoformat(), "origin": origin}
            )
            found.append(IncomingMessage(TOPIC, partition, offsets[partition], key, value))
            offsets[partition] += 1
    return found


def record(store: LedgerAppender, incoming: list[IncomingMessage]) -> int:
    appended = 0
    for start in range(0, len(incoming), BATCH):
        chunk = incoming[start : start + BATCH]
        next_offsets: dict[tuple[str, int], int] = {}
        for message in chunk:
            next_offsets[(message.topic, message.partition)] = message.offset + 1
        result = store.append([decode(message) for message in chunk], [], next_offsets)
        appended += result.appended
    return appended


def start_postgres(root: Path) -> PostgresCluster:
    folder = root / "postgres"
    folder.mkdir()
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = PostgresCluster(data_dir=folder, port=free_port())
    cluster.start()
    return cluster


def start_ledger(settings: Settings, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    url = f"http://127.0.0.1:{settings.ledger_port}"
    process = start_service(settings, "ledger", log)
    ready(url, process, log)
    return process, url


def pick_container(client: httpx.Client, run_id: str) -> str:
    """A container that went through the hub and carries a weight discrepancy, if any."""
    for params in (
        {"anomaly": "weight_discrepancy", "limit": "500"},
        {"state": "processed", "limit": "500"},
    ):
        items = client.get("/v1/containers", params=params).json()["items"]
        for item in items:
            trail = client.get(f"/v1/containers/{item['container_id']}/custody").json()
            if any(i["custodian"] == "hub-01" for i in trail["intervals"]):
                return str(item["container_id"])
    return f"BX-{run_id}-00001"


def time_pages(
    url: str, token: str, pages: list[tuple[str, str]]
) -> list[tuple[str, float, float]]:
    figures = []
    # The cookie signs the UI pages in; the bearer header is for the /v1 API page.
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=60, headers=headers) as browser:
        answer = browser.post("/ui/signin", data={"token": token, "next": "/ui/"})
        if answer.status_code != 303:
            raise RuntimeError(f"sign-in failed: {answer.status_code} {answer.text[:300]}")
        for label, path in pages:
            browser.get(path).raise_for_status()  # warm-up
            seconds = []
            for _ in range(RUNS):
                started = time.perf_counter()
                browser.get(path).raise_for_status()
                seconds.append(time.perf_counter() - started)
            figures.append((label, statistics.median(seconds), max(seconds)))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hold", action="store_true", help="keep the ledger running at the end")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="custody-ui-bench-"))
    root.chmod(0o755)
    cluster = start_postgres(root)
    process = None
    try:
        admin_url = cluster.url()
        upgrade(admin_url)
        key_file = root / "keys" / "checkpoint.key"
        settings = Settings.model_validate(
            {
                "database_url": cluster.url(user="custody_app"),
                "admin_database_url": admin_url,
                "signing_key_file": key_file,
                "ledger_port": free_port(),
            }
        )
        create_key(key_file, settings.log_origin)
        engine = make_engine(settings.database_url, pool_size=2)
        registry = RegistryStore(engine, cache_seconds=0)

        run_id = "ui"
        scenario = build_scenario(
            ScenarioConfig(
                run_id=run_id,
                now=datetime.now(UTC),
                containers=args.containers,
                days=args.days,
                seed=args.seed,
            )
        )
        for party in scenario.parties:
            registry.add_party(party.party_id, party.name, party.role)
        token = registry.add_api_token("bench-auditor", ApiRole.AUDITOR)

        incoming = messages(scenario)
        store = LedgerAppender(
            partial(PostgresAppendUnitOfWork, engine, "bench-ui"), rules=CustodyRules()
        )
        started = time.perf_counter()
        appended = record(store, incoming)
        load_s = time.perf_counter() - started
        Checkpointer(
            engine,
            load_private_key(key_file),
            origin=settings.log_origin,
            interval_s=1,
            every_entries=1,
        ).checkpoint_now()
        engine.dispose()
        print(
            f"recorded {appended} entries for {scenario.summary.containers} containers "
            f"({len(incoming)} messages incl. duplicates) in {load_s:.1f} s "
            f"({appended / load_s:.0f} entries/s); checkpoint signed"
        )

        process, url = start_ledger(settings, root / "ledger.log")
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as api:
            container = pick_container(api, run_id)
        today = datetime.now(UTC).date()
        month = (today - timedelta(days=args.days - 1)).isoformat()
        week = (today - timedelta(days=6)).isoformat()
        tomorrow = (today + timedelta(days=1)).isoformat()
        pages = [
            ("dashboard", "/ui/"),
            ("containers (first page)", "/ui/containers"),
            ("containers state=in_transit", "/ui/containers?state=in_transit"),
            ("containers anomaly=weight_discrepancy", "/ui/containers?anomaly=weight_discrepancy"),
            ("containers custodian=hub-01", "/ui/containers?custodian=hub-01"),
            (f"container {container}", f"/ui/containers/{container}"),
            ("anomalies (all)", "/ui/anomalies"),
            ("anomalies code=late_arrival", "/ui/anomalies?code=late_arrival"),
            ("mass balance (last 7 days)", "/ui/mass-balance"),
            ("mass balance (30 days, by plant)", f"/ui/mass-balance?from={month}&group_by=plant"),
            (
                "  the report alone: GET /v1/reports/mass-balance (7 days)",
                f"/v1/reports/mass-balance?from={week}T00:00:00Z&to={tomorrow}T00:00:00Z",
            ),
            (
                "  the report alone: GET /v1/reports/mass-balance (30 days, by plant)",
                f"/v1/reports/mass-balance?from={month}T00:00:00Z&to={tomorrow}T00:00:00Z"
                "&group_by=plant",
            ),
            (
                "GET /v1/reports/shipment-log.csv (30 days)",
                f"/v1/reports/shipment-log.csv?from={month}T00:00:00Z&to={tomorrow}T00:00:00Z",
            ),
            (
                "GET /v1/events?EQ_bizStep=receiving&limit=500",
                "/v1/events?EQ_bizStep=receiving&limit=500",
            ),
        ]
        figures = time_pages(url, token, pages)
        width = max(len(label) for label, _, _ in figures)
        print(f"\n{'page':<{width}}  median   max  (of {RUNS}, after 1 warm-up)")
        for label, median, worst in figures:
            print(f"{label:<{width}}  {median * 1000:6.1f} ms {worst * 1000:6.1f} ms")
        if args.hold:
            print(f"\nledger running at {url}/ui/  token: {token}\npress Enter to stop", flush=True)
            with contextlib.suppress(EOFError):
                input()
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
        cluster.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
