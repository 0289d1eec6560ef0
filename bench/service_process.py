"""Services as real processes for benchmarks, with their peak memory.

They are started and awaited with ``services/stack/service_processes.py`` like the tests'; this
module adds what only benchmarks want: the deployed token cache and peak resident memory.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from services.settings import Settings
from services.stack.service_processes import spawn_service, wait_ready

ROOT = Path(__file__).resolve().parents[1]
# Services are measured as deployed: with the token cache the service defaults to, not the
# ephemeral stack's zero (which tests use to see a revocation at once). Without it, every
# request looked its token up in PostgreSQL, two queries and a thread hop.
TOKEN_CACHE_S: float = Settings.model_fields["registry_cache_s"].default


def start_service(settings: Settings, name: str, log: Path) -> subprocess.Popen[bytes]:
    """``custody serve NAME`` on ``settings``, run from the checkout."""
    return spawn_service(name, log_file=log, settings=settings, cwd=ROOT)


def ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until the service at ``url`` answers ``/readyz``; StackError if it exits first."""
    wait_ready(
        f"{url}/readyz",
        lambda: process.poll() is None,
        what=f"the service at {url}",
        log_file=log,
        timeout=timeout,
        log_tail=2000,
    )


def peak_rss_mb(pid: int) -> float:
    """The peak resident memory of the largest process among ``pid`` and its children (the
    ingest supervisor's workers)."""
    peaks = [_peak_rss_mb(process) for process in (pid, *_children(pid))]
    return max(peaks, default=float("nan"))


def _children(pid: int) -> list[int]:
    listed = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in listed.read_text().split()] if listed.exists() else []


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
