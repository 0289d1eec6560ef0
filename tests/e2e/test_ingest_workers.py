"""Ingest served by a pool of worker processes on one port: a device is held to one rate limit
whichever worker its connections reach, and /metrics on any worker counts the requests of all."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.stack.processes import free_port
from tests.support import events as ev
from tests.support.network import register_network
from tests.support.services import custody, running
from tests.support.stack import LiveStack

pytestmark = pytest.mark.e2e

WORKERS, BURST = 3, 8


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def ingest_counts(url: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == "custody_ingest_events_total":
                counts[sample.labels["outcome"]] = sample.value
    return counts


def test_workers_share_the_rate_limit_and_the_metrics(stack: LiveStack, tmp_path: Path) -> None:
    settings = stack.settings(
        ingest_workers=WORKERS,
        rate_limit_per_device=0.01,  # nothing refills during the test
        rate_limit_burst=BURST,
        max_batch_events=BURST,
    )
    network = register_network(settings)
    with running(settings, ["ingest"], tmp_path) as services:
        ingest = services["ingest"]
        assert ingest.url is not None
        assert len(children(ingest.process.pid)) >= WORKERS, "the pool has its workers"
        statuses = []
        for _ in range(3 * BURST):
            # A new connection each time: the kernel spreads them over the workers' sockets.
            response = httpx.post(
                f"{ingest.url}/v1/events",
                json=ev.dropoff(ev.unique_container("WK")),
                headers=network.headers("site-a-dev"),
                timeout=30,
            )
            statuses.append(response.status_code)
        assert statuses[:BURST] == [202] * BURST
        assert statuses[BURST:] == [429] * (2 * BURST)
        for _ in range(2 * WORKERS):  # whichever worker answers, it reports every worker's
            counts = ingest_counts(ingest.url)
            assert counts["accepted"] == BURST
            assert counts["throttled"] == 2 * BURST


def test_a_port_already_listened_on_stops_the_pool_at_start(stack: LiveStack) -> None:
    settings = stack.settings(ingest_port=free_port())
    with socket.create_server(("127.0.0.1", settings.ingest_port)):
        result = custody(settings, "serve", "ingest", timeout=60)
    assert result.returncode == 1
    assert f"ingest cannot listen on 127.0.0.1:{settings.ingest_port}" in result.stderr
