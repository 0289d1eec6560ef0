"""The services as background processes of the local stack (pid and log under var/)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from services.settings import Settings
from services.stack.processes import StackError, read_pid, spawn, terminate, wait_until

SERVICES = ("ingest", "ledger", "consumer", "checkpointer", "notifier")


def _paths(var_dir: Path, name: str) -> tuple[Path, Path]:
    return var_dir / "run" / f"{name}.pid", var_dir / "log" / f"{name}.log"


def health_url(settings: Settings, name: str) -> str | None:
    if name == "ingest":
        return f"http://{settings.ingest_host}:{settings.ingest_port}/readyz"
    if name == "ledger":
        return f"http://{settings.ledger_host}:{settings.ledger_port}/readyz"
    ops_port = {
        "consumer": settings.consumer_ops_port,
        "notifier": settings.notifier_ops_port,
        "checkpointer": settings.checkpointer_ops_port,
    }.get(name, 0)
    return f"http://{settings.ops_host}:{ops_port}/readyz" if ops_port else None


def start_services(settings: Settings, *, timeout: float = 60.0) -> dict[str, int]:
    """Start each service that is not running yet and wait until the HTTP ones are ready."""
    var_dir = settings.var_dir.resolve()
    (var_dir / "run").mkdir(parents=True, exist_ok=True)
    pids = {}
    for name in SERVICES:
        pid_file, log_file = _paths(var_dir, name)
        pid = read_pid(pid_file)
        if pid is None:
            pid = spawn(
                [sys.executable, "-m", "services.cli.main", "serve", name],
                log_file=log_file,
                pid_file=pid_file,
            )
        pids[name] = pid
    for name in SERVICES:
        _wait_ready(settings, name, timeout)
    return pids


def _wait_ready(settings: Settings, name: str, timeout: float) -> None:
    url = health_url(settings, name)
    pid_file, log_file = _paths(settings.var_dir.resolve(), name)
    if url is None:
        return

    def ready() -> bool:
        if read_pid(pid_file) is None:
            raise StackError(f"the {name} service exited; see {log_file}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=timeout, what=f"the {name} service at {url}")


def stop_services(settings: Settings) -> None:
    var_dir = settings.var_dir.resolve()
    for name in SERVICES:
        pid_file, _ = _paths(var_dir, name)
        pid = read_pid(pid_file)
        if pid is not None:
            terminate(pid, timeout=30)
        pid_file.unlink(missing_ok=True)


def service_status(settings: Settings) -> dict[str, str]:
    var_dir = settings.var_dir.resolve()
    status = {}
    for name in SERVICES:
        pid = read_pid(_paths(var_dir, name)[0])
        status[name] = f"running (pid {pid})" if pid else "stopped"
    return status
