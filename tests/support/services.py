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

from services.settings import Settings, settings_environment
from services.stack.processes import free_port
from services.stack.service_processes import WORKERS, spawn_service, stop_process, wait_ready

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
        return stop_process(self.process)


def start_service(settings: Settings, name: str, log_dir: Path) -> ServiceProcess:
    """``custody serve NAME`` on free ports, awaited: an HTTP service until ``/readyz`` answers,
    a worker until its ops endpoint's ``/healthz`` does (it answers before the worker is ready,
    so only liveness is awaited and tests that need more wait for it)."""
    log = log_dir / f"{name}.log"
    port = free_port()
    ports = {
        "ingest": {"ingest_port": port},
        "ledger": {"ledger_port": port},
        **{worker: {f"{worker}_ops_port": port, "ops_host": "127.0.0.1"} for worker in WORKERS},
    }
    url = f"http://127.0.0.1:{port}" if name in ports else None
    settings = settings.model_copy(update=ports.get(name, {}))
    process = spawn_service(name, log_file=log, settings=settings, cwd=ROOT)
    if url is not None:
        probe = "/healthz" if name in WORKERS else "/readyz"
        wait_ready(
            url + probe, lambda: process.poll() is None, what=name, log_file=log, log_tail=3000
        )
    return ServiceProcess(name, process, log, url)


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
