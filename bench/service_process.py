"""Services as real processes for benchmarks, with their peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from services.settings import Settings, settings_environment

ROOT = Path(__file__).resolve().parents[1]
# Services are measured as deployed: with the token cache the service defaults to, not the
# ephemeral stack's zero (which tests use to see a revocation at once). Without it, every
# request looked its token up in PostgreSQL, two queries and a thread hop.
TOKEN_CACHE_S: float = Settings.model_fields["registry_cache_s"].default


def start(settings: Settings, name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "serve", name],
            cwd=ROOT,
            env=settings_environment(settings, dict(os.environ)),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout} s")


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


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
