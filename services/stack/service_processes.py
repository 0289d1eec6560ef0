"""The services as processes: ``custody serve NAME`` started and awaited until it answers.

``spawn_service`` and ``wait_ready`` are the one way to do so, for the local stack (detached,
pid and log under var/), the end-to-end tests and the benchmarks (which keep the process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from services.settings import Settings, settings_environment
from services.stack.processes import StackError, read_pid, spawn, terminate, wait_until
from services.stack.witness import local_witness_config

SERVICES = ("ingest", "ledger", "consumer", "checkpointer", "notifier")
WORKERS = ("consumer", "checkpointer", "notifier")
"""The services without an HTTP API: they answer on their ops endpoint only."""


def serve_command(name: str) -> list[str]:
    """``custody serve NAME``, run by this interpreter (no installed script needed)."""
    return [sys.executable, "-m", "services.cli.main", "serve", name]


def spawn_service(
    name: str,
    *,
    log_file: Path,
    settings: Settings | None = None,
    cwd: Path | None = None,
    detach: bool = False,
    pid_file: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``custody serve NAME``, its output appended to ``log_file``.

    With ``settings`` the service runs on them (as ``CUSTODY_*`` variables over this process's
    environment); without, it reads its settings as the CLI does. ``detach``: in its own
    session, to outlive this process (the local stack), its pid in ``pid_file``.
    """
    env = None if settings is None else settings_environment(settings, dict(os.environ))
    return spawn(
        serve_command(name), log_file=log_file, pid_file=pid_file, env=env, cwd=cwd, detach=detach
    )


def wait_ready(
    url: str,
    alive: Callable[[], bool],
    *,
    what: str,
    log_file: Path,
    timeout: float = 60.0,
    log_tail: int = 0,
) -> None:
    """Poll ``GET url`` until it answers 200.

    Raises StackError when ``alive()`` turns false first (the message names ``log_file`` and
    quotes its last ``log_tail`` characters) or after ``timeout`` seconds.
    """

    def ready() -> bool:
        if not alive():
            tail = f":\n{log_file.read_text(errors='replace')[-log_tail:]}" if log_tail else ""
            raise StackError(f"{what} exited; see {log_file}{tail}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=timeout, what=f"{what} at {url}")


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = 30.0) -> int:
    """SIGTERM ``process`` if it runs, SIGKILL it if it outlives ``timeout``; its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    return process.returncode


def service_url(settings: Settings, name: str) -> str | None:
    """Where the service answers: its HTTP API, or a worker's ops endpoint (None: no port)."""
    if name == "ingest":
        return f"http://{settings.ingest_host}:{settings.ingest_port}"
    if name == "ledger":
        return f"http://{settings.ledger_host}:{settings.ledger_port}"
    ops_port = {
        "consumer": settings.consumer_ops_port,
        "notifier": settings.notifier_ops_port,
        "checkpointer": settings.checkpointer_ops_port,
    }.get(name, 0)
    return f"http://{settings.ops_host}:{ops_port}" if ops_port else None


def _paths(var_dir: Path, name: str) -> tuple[Path, Path]:
    return var_dir / "run" / f"{name}.pid", var_dir / "log" / f"{name}.log"


def start_services(settings: Settings, *, timeout: float = 60.0) -> dict[str, int]:
    """Start each service that is not running yet and wait until each one with a port is ready."""
    var_dir = settings.var_dir.resolve()
    (var_dir / "run").mkdir(parents=True, exist_ok=True)
    witnesses = settings.witnesses or local_witness_config(var_dir)
    effective = settings.model_copy(update={"witnesses": witnesses})
    pids = {}
    for name in SERVICES:
        pid_file, log_file = _paths(var_dir, name)
        pid = read_pid(pid_file)
        if pid is None:
            pid = spawn_service(
                name, log_file=log_file, settings=effective, detach=True, pid_file=pid_file
            ).pid
        pids[name] = pid
    for name in SERVICES:
        _wait_ready(settings, name, timeout)
    return pids


def _wait_ready(settings: Settings, name: str, timeout: float) -> None:
    url = service_url(settings, name)
    if url is None:
        return
    pid_file, log_file = _paths(settings.var_dir.resolve(), name)
    wait_ready(
        f"{url}/readyz",
        lambda: read_pid(pid_file) is not None,
        what=f"the {name} service",
        log_file=log_file,
        timeout=timeout,
    )


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
