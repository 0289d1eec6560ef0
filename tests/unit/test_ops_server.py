"""The ops endpoint of the plain processes: /healthz, /readyz with reasons, /metrics."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from services.bootstrap import consumer_checks, resources
from services.ledger.consumer.metrics import consumer_metrics
from services.settings import Settings
from services.stack.processes import free_port
from services.web.ops import ReadinessCheck, readiness
from services.web.ops_server import OpsServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def checks() -> dict[str, ReadinessCheck]:
    return {"database": lambda: None}


@pytest.fixture
def server(checks: dict[str, ReadinessCheck]) -> Iterator[OpsServer]:
    running = OpsServer("127.0.0.1", 0, checks).start()
    try:
        yield running
    finally:
        running.stop()


def test_liveness_readiness_and_metrics(
    server: OpsServer, checks: dict[str, ReadinessCheck]
) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

    checks["consumer"] = lambda: "PostgreSQL unavailable"
    unready = httpx.get(f"{server.url}/readyz")
    assert unready.status_code == 503
    assert unready.headers["content-type"] == "application/json"
    assert unready.json() == {
        "status": "unready",
        "failures": {"consumer": "PostgreSQL unavailable"},
    }

    consumer_metrics().ready.set(1)
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "\ncustody_consumer_ready 1.0\n" in metrics.text
    assert httpx.get(f"{server.url}/nothing").status_code == 404


def test_a_taken_port_fails_at_construction(server: OpsServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match="in use"):
        OpsServer("127.0.0.1", port, {})


def test_the_consumer_is_unready_while_starting_or_without_kafka_and_postgres() -> None:
    settings = Settings(
        database_url=f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none",
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
    )
    with resources(settings) as opened:
        status, body = readiness(consumer_checks(opened, lambda: None))
    assert status == 503
    failures = body["failures"]
    assert isinstance(failures, dict)
    assert set(failures) == {"consumer", "kafka", "database"}
    assert failures["consumer"].startswith("starting")


def test_a_consumer_retrying_its_batch_is_unready() -> None:
    retrying = SimpleNamespace(ready=False)
    with resources(Settings()) as opened:
        checks = consumer_checks(opened, lambda: retrying)  # type: ignore[arg-type,return-value]
        assert checks["consumer"]() == "PostgreSQL unavailable: the batch in hand is being retried"
        retrying.ready = True
        assert checks["consumer"]() is None


def test_only_a_process_running_a_worker_exports_its_metrics() -> None:
    """Every service imports every module: a bare import must not export zeros."""
    script = (
        "import services.cli.main\n"
        "from prometheus_client import generate_latest\n"
        "print(generate_latest().decode())\n"
    )
    exported = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for name in (
        "custody_consumer_ready",
        "custody_consumer_batch_size",
        "custody_checkpoint_age_seconds",
        "custody_webhook_delivery_attempts_total",
    ):
        assert name not in exported
