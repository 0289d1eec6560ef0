"""End to end: a scan POSTed to ingest until it shows in the custody trail, at a steady rate,
with ingest, the consumer and the ledger API as real processes; and their peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.service_process import ROOT, TOKEN_CACHE_S, peak_rss_mb, ready, start_service
from bench.stats import Figure
from bench.steady_load import SAMPLE_EVERY, TRAIL_POLL_S
from services.db.engine import make_engine
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import RegistryStore
from services.stack.ephemeral import EphemeralStack
from services.stack.processes import free_port
from services.stack.service_processes import stop_process

BATCH = 100  # events per POST: an end-of-shift upload from a scanner that was offline


def run(
    stack: EphemeralStack, *, rate: float, seconds: float, runs: int, logs: Path
) -> list[Figure]:
    # One device stands in for a whole network here, so the per-device limit is off.
    settings = stack.settings(
        ingest_port=free_port(),
        ledger_port=free_port(),
        registry_cache_s=TOKEN_CACHE_S,
        rate_limit_per_device=0,
    )
    engine = make_engine(settings.database_url, pool_size=1)
    registry = RegistryStore(engine, cache_seconds=0)
    registry.add_party("site-a", "Site A", PartyRole.SITE)
    device_token = registry.add_device("bench-e2e-dev", "site-a")
    auditor_token = registry.add_api_token("bench-e2e-auditor", ApiRole.AUDITOR)
    engine.dispose()
    ingest_url = f"http://127.0.0.1:{settings.ingest_port}"
    ledger_url = f"http://127.0.0.1:{settings.ledger_port}"
    log = {name: logs / f"e2e-{name}.log" for name in ("ingest", "consumer", "ledger")}
    processes = {name: start_service(settings, name, log[name]) for name in log}
    p50, p99, achieved, post_p99, refused = ([] for _ in range(5))
    try:
        ready(ingest_url, processes["ingest"], log["ingest"])
        ready(ledger_url, processes["ledger"], log["ledger"])
        for index in range(runs):
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.steady_load",
                    ingest_url,
                    ledger_url,
                    device_token,
                    auditor_token,
                    str(rate),
                    str(seconds),
                    str(BATCH),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(f"the steady load failed: {result.stderr[-2000:]}")
            figures = json.loads(result.stdout)
            p50.append(figures["visible_p50_ms"])
            p99.append(figures["visible_p99_ms"])
            post_p99.append(figures["post_p99_ms"])
            achieved.append(figures["acknowledged_events_per_s"])
            refused.append(sum(figures["refused_events"].values()))
            print(
                f"  e2e run {index + 1}: {achieved[-1]:,.0f} events/s acknowledged, "
                f"visible p50 {p50[-1]:.0f} ms, p99 {p99[-1]:.0f} ms, "
                f"POST p50 {figures['post_p50_ms']:.0f} ms, p99 {post_p99[-1]:.0f} ms, "
                f"{figures['samples']} samples, {figures['trail_polls_per_s']:.0f} trail polls/s, "
                f"refused {figures['refused_events'] or 'none'}",
                flush=True,
            )
        rss = {name: peak_rss_mb(process.pid) for name, process in processes.items()}
    finally:
        for process in processes.values():
            stop_process(process)
    note = (
        f"{rate:,.0f} events/s offered for {seconds:.0f} s, {BATCH} events per POST; "
        f"every {SAMPLE_EVERY}th POST followed, oldest first, one trail request at a time, "
        f"every {TRAIL_POLL_S * 1000:.0f} ms or a tenth of its wait"
    )
    return [
        Figure("end to end: acknowledged rate", "events/s", achieved, note=note),
        Figure("end to end: events refused", "events", refused, higher_is_better=False),
        Figure("end to end: POST → in trail p50", "ms", p50, higher_is_better=False, note=note),
        Figure("end to end: POST → in trail p99", "ms", p99, higher_is_better=False, note=note),
        Figure("end to end: batch POST p99", "ms", post_p99, higher_is_better=False, note=note),
        *(
            Figure(f"{name} peak RSS under steady load", "MB", [mb], higher_is_better=False)
            for name, mb in rss.items()
        ),
    ]
