"""Load from wrk (Debian's package), a native HTTP load generator in its own process."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"


def wrk_post(
    url: str, token: str, *, batch: bool, seconds: int, connections: int
) -> dict[str, float]:
    """POST fresh dropoffs for ``seconds``; events/s, requests/s and latency percentiles."""
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is missing: scripts/ensure-prereqs.sh installs it (apt-get install wrk)"
        )
    mode = "batch500" if batch else "single"
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
            str(SCRIPT),
            url,
            "--",
            token,
            mode,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    if figures["failed"]:
        raise SystemExit(f"wrk: {figures['failed']} of {figures['requests']} requests failed")
    per_second = figures["requests"] / (figures["duration_us"] / 1e6)
    return {
        "requests_per_s": per_second,
        "events_per_s": per_second * (500 if batch else 1),
        "p50_ms": figures["p50_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
    }
