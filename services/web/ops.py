"""/healthz, /readyz and /metrics of the web services, and the readiness checks all share."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping

from fastapi import FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

ReadinessCheck = Callable[[], str | None]
# Set for processes that share metrics through prometheus-client's multiprocess mode.
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def install_ops_routes(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    """``checks`` return None when healthy, else a short reason."""

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz(response: Response) -> dict[str, object]:
        status, body = await run_in_threadpool(readiness, checks)
        response.status_code = status
        return body

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics() -> Response:
        return Response(metrics_text(), media_type=CONTENT_TYPE_LATEST)


def metrics_text() -> bytes:
    """This process's metrics, or those of all worker processes sharing a multiprocess
    directory (ingest served by several workers, see services/ingest/shared_runtime.py)."""
    directory = os.environ.get(METRICS_DIR_ENV)
    if directory is None:
        return generate_latest()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def readiness(checks: Mapping[str, ReadinessCheck]) -> tuple[int, dict[str, object]]:
    """Run every check: ``(200, {"status": "ready"})`` or 503 with each failure's reason."""
    failures = {}
    for name, check in checks.items():
        reason = check()
        if reason is not None:
            failures[name] = reason
    if failures:
        return 503, {"status": "unready", "failures": failures}
    return 200, {"status": "ready"}


def kafka_check(bootstrap: str) -> ReadinessCheck:
    """Ready when at least one bootstrap broker accepts a TCP connection."""
    addresses = []
    for item in bootstrap.split(","):
        host, _, port = item.strip().rpartition(":")
        addresses.append((host or "127.0.0.1", int(port)))

    def check() -> str | None:
        for address in addresses:
            try:
                socket.create_connection(address, timeout=0.5).close()
            except OSError:
                continue
            return None
        return f"no Kafka broker reachable at {bootstrap}"

    return check


def database_check(ping: Callable[[], None]) -> ReadinessCheck:
    def check() -> str | None:
        try:
            ping()
        except Exception as error:
            return f"database unreachable: {type(error).__name__}"
        return None

    return check
