"""Load from wrk (Debian's package), a native HTTP load generator in its own process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

POST_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
GET_SCRIPT = Path(__file__).resolve().parent / "wrk_get.lua"


def wrk_post(
    url: str, token: str, *, batch: bool, seconds: int, connections: int
) -> dict[str, float]:
    """POST fresh dropoffs for ``seconds``; events/s, requests/s and latency percentiles."""
    mode = "batch500" if batch else "single"
    figures = _wrk(POST_SCRIPT, url, [token, mode], seconds=seconds, connections=connections)
    return {**figures, "events_per_s": figures["requests_per_s"] * (500 if batch else 1)}


def wrk_get(url: str, token: str, paths: Path, *, seconds: int) -> dict[str, float]:
    """GET the paths listed in ``paths`` one after another on one connection, for ``seconds``.

    The latencies are the service's as a native client sees them: a Python client on the same
    two cores added about 0.8 ms of its own to each request.
    """
    return _wrk(GET_SCRIPT, url, [token, str(paths)], seconds=seconds, connections=1)


def _wrk(
    script: Path, url: str, arguments: list[str], *, seconds: int, connections: int
) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is missing: scripts/ensure-prereqs.sh installs it (apt-get install wrk)"
        )
    result = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            "30s",
            "--script",
            str(script),
            url,
            "--",
            *arguments,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["failed"]:
        raise SystemExit(f"wrk: {figures['failed']} of {figures['requests']} requests failed")
    return {
        "requests": figures["requests"],
        "requests_per_s": figures["requests"] / (figures["duration_us"] / 1e6),
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
    }
