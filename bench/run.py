"""One command for every benchmark: `python -m bench.run [--quick]` (or `make bench`)."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from bench import capture_bench, consumer_bench, e2e_bench, ingest_bench, query_bench
from bench.stats import Figure, write_results
from services.stack.ephemeral import start_ephemeral_stack, stop_ephemeral_stack

RESULTS = Path(__file__).resolve().parent / "results"


def main(
    quick: Annotated[bool, typer.Option(help="Smaller sizes, for a check in minutes.")] = False,
    containers: Annotated[int, typer.Option(help="Containers for the query figures.")] = 100_000,
    runs: Annotated[int, typer.Option(min=1)] = 5,
    only: Annotated[
        str, typer.Option(help="Comma list of: ingest, capture, consumer, queries, e2e.")
    ] = "",
) -> None:
    if quick:
        containers = min(containers, 10_000)
    parts = set(only.split(",")) if only else {"ingest", "capture", "consumer", "queries", "e2e"}
    stack, root = start_ephemeral_stack(prefix="custody-bench-")
    logs = Path(tempfile.mkdtemp(prefix="custody-bench-logs-"))
    benches: dict[str, Callable[[], list[Figure]]] = {
        "ingest": lambda: ingest_bench.run(
            stack,
            events=5_000 if quick else 20_000,
            runs=runs,
            seconds=5 if quick else 10,
            logs=logs,
        ),
        "capture": lambda: capture_bench.run(
            stack, events=2_000 if quick else 10_000, runs=runs, logs=logs
        ),
        "consumer": lambda: consumer_bench.run(
            stack,
            events=5_000 if quick else 20_000,
            runs=runs,
            naive_events=1_000 if quick else 3_000,
        ),
        "e2e": lambda: e2e_bench.run(
            stack, rate=2_000, seconds=15 if quick else 60, runs=runs, logs=logs
        ),
        "queries": lambda: query_bench.run(
            stack, containers=containers, runs=runs, seconds=2 if quick else 4, logs=logs
        ),
    }
    figures: list[Figure] = []
    failed: list[str] = []
    try:
        for name, bench in benches.items():
            if name not in parts:
                continue
            print(f"{name} …", flush=True)
            # Start each part on a quiet disk: the write-back of what the previous part wrote
            # (gigabytes of Kafka log after the ingest runs) slowed the next part's COPY and
            # commits by ~40 %.
            os.sync()
            try:
                figures += bench()
            except Exception as error:  # one broken part must not discard the others' figures
                print(f"  {name} failed: {error}", flush=True)
                failed.append(name)
    finally:
        stop_ephemeral_stack(stack, root)
    command = "python -m bench.run " + " ".join(sys.argv[1:])
    table = write_results(figures, RESULTS, command.strip())
    print(table.read_text())
    if failed:
        print(f"failed: {', '.join(failed)} (service logs in {logs})")
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
