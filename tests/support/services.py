"""The services as real processes (``python -m services.cli.main serve …``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.settings import Settings, settings_environment
from services.stack.processes import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    return settings_environment(settings, dict(os.environ))


def custody(
    settings: Settings, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``custody ARGS`` (the CLI) with ``settings`` to the end; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str | None = None  # the HTTP API, or the ops endpoint of a worker

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


def start_service(settings: Settings, name: str, log_dir: Path) -> ServiceProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    url = None
    probe = "/readyz"
    if name == "ingest":
        settings = settings.model_copy(update={"ingest_port": free_port()})
        url = f"http://127.0.0.1:{settings.ingest_port}"
    elif name == "ledger":
        settings = settings.model_copy(update={"ledger_port": free_port()})
        url = f"http://127.0.0.1:{settings.ledger_port}"
    elif name in ("consumer", "notifier", "checkpointer"):
        # The ops endpoint (/metrics, /healthz, /readyz); it answers before the worker is
        # ready, so only liveness is awaited and tests that need more wait for it.
        ops_port = free_port()
        settings = settings.model_copy(
            update={f"{name}_ops_port": ops_port, "ops_host": "127.0.0.1"}
        )
        url = f"http://127.0.0.1:{ops_port}"
        probe = "/healthz"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "serve", name],
            cwd=ROOT,
            env=settings_env(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = ServiceProcess(name, process, log, url)
    if url is not None:

        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited: {log.read_text()[-3000:]}")
            try:
                return httpx.get(f"{url}{probe}", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, what=f"{name} ready", timeout=60)
    return service


@contextmanager
def running(
    settings: Settings, names: list[str], log_dir: Path
) -> Iterator[dict[str, ServiceProcess]]:
    started: dict[str, ServiceProcess] = {}
    try:
        for name in names:
            started[name] = start_service(settings, name, log_dir)
        yield started
    finally:
        for service in started.values():
            service.stop()
