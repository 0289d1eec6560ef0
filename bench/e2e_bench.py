"""End to end: a scan POSTed to ingest until it shows in the custody trail, at a steady rate,
with ingest, the consumer, the ledger API and the checkpointer as real processes; and their
peak memory. Each run is made twice, the checkpointer signing alone and then with a real
witness (litewitness) cosigning every checkpoint, to show what witnessing costs the appends."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.service_process import ROOT, TOKEN_CACHE_S, peak_rss_mb, ready, start_service
from bench.stats import Figure
from bench.steady_load import SAMPLE_EVERY, TRAIL_POLL_S
from services.db.engine import make_engine
from services.ledger.adapters.signing_keys import create_key
from services.registry.principals import ApiRole, PartyRole
from services.registry.store import RegistryStore
from services.stack.ephemeral import EphemeralStack
from services.stack.processes import free_port
from services.stack.service_processes import stop_process
from services.stack.witness import LocalWitness

BATCH = 100  # events per POST: an end-of-shift upload from a scanner that was offline


def steady_load(
    ingest_url: str,
    ledger_url: str,
    device_token: str,
    auditor_token: str,
    rate: float,
    seconds: float,
) -> dict[str, Any]:
    """One steady-load run in its own process (bench.steady_load); its figures."""
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
    figures: dict[str, Any] = json.loads(result.stdout)
    return figures


def run(
    stack: EphemeralStack, *, rate: float, seconds: float, runs: int, logs: Path
) -> list[Figure]:
    # One device stands in for a whole network here, so the per-device limit is off.
    key_file = logs / "e2e-keys" / "checkpoint.key"
    settings = stack.settings(
        ingest_port=free_port(),
        ledger_port=free_port(),
        checkpointer_ops_port=free_port(),
        registry_cache_s=TOKEN_CACHE_S,
        rate_limit_per_device=0,
        signing_key_file=key_file,
    )
    verifier = create_key(key_file, settings.log_origin, force=True)
    witness = LocalWitness(
        home=Path(tempfile.mkdtemp(prefix="custody-bench-witness-")),
        port=free_port(),
        name="bench.local/witness",
        cache_root=settings.cache_dir,
    )
    witness.start(settings.log_origin, str(verifier))
    witnessed = settings.model_copy(update={"witnesses": witness.config()})
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
    phases = ("checkpointer alone", "with the witness")
    p50, p99, achieved, post_p99, refused = ([] for _ in range(5))
    witnessed_p99: list[float] = []
    checkpointer_rss = 0.0
    checkpointer_url = f"http://127.0.0.1:{settings.checkpointer_ops_port}"
    try:
        ready(ingest_url, processes["ingest"], log["ingest"])
        ready(ledger_url, processes["ledger"], log["ledger"])
        for index in range(runs):
            for phase, phase_settings in zip(phases, (settings, witnessed), strict=True):
                checkpointer_log = logs / "e2e-checkpointer.log"
                checkpointer = start_service(phase_settings, "checkpointer", checkpointer_log)
                try:
                    ready(checkpointer_url, checkpointer, checkpointer_log)
                    figures = steady_load(
                        ingest_url, ledger_url, device_token, auditor_token, rate, seconds
                    )
                    checkpointer_rss = max(checkpointer_rss, peak_rss_mb(checkpointer.pid))
                finally:
                    stop_process(checkpointer)
                if phase_settings is witnessed:
                    witnessed_p99.append(figures["visible_p99_ms"])
                    print(
                        f"  e2e run {index + 1} {phase}: visible p99 "
                        f"{figures['visible_p99_ms']:.0f} ms",
                        flush=True,
                    )
                    continue
                p50.append(figures["visible_p50_ms"])
                p99.append(figures["visible_p99_ms"])
                post_p99.append(figures["post_p99_ms"])
                achieved.append(figures["acknowledged_events_per_s"])
                refused.append(sum(figures["refused_events"].values()))
                print(
                    f"  e2e run {index + 1} {phase}: {achieved[-1]:,.0f} events/s acknowledged, "
                    f"visible p50 {p50[-1]:.0f} ms, p99 {p99[-1]:.0f} ms, "
                    f"POST p50 {figures['post_p50_ms']:.0f} ms, p99 {post_p99[-1]:.0f} ms, "
                    f"{figures['samples']} samples, "
                    f"{figures['trail_polls_per_s']:.0f} trail polls/s, "
                    f"refused {figures['refused_events'] or 'none'}",
                    flush=True,
                )
        rss = {name: peak_rss_mb(process.pid) for name, process in processes.items()}
        rss["checkpointer"] = checkpointer_rss
    finally:
        for process in processes.values():
            stop_process(process)
        witness.stop()
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
        Figure(
            "end to end: POST → in trail p99, witness cosigning",
            "ms",
            witnessed_p99,
            baseline="the same load, the checkpointer signing alone (same run)",
            baseline_runs=p99,
            higher_is_better=False,
            note=note + "; litewitness cosigning each checkpoint",
        ),
        Figure("end to end: batch POST p99", "ms", post_p99, higher_is_better=False, note=note),
        *(
            Figure(f"{name} peak RSS under steady load", "MB", [mb], higher_is_better=False)
            for name, mb in rss.items()
        ),
    ]
