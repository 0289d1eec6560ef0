"""Collects witness cosignatures for the newest signed checkpoint (c2sp.org/tlog-witness).

Runs beside the checkpointer, never in the append path: a witness that is down or slow only
delays its own cosignature. Each valid cosignature is stored once (ledger.cosignatures) and
served with the checkpoint from then on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

import httpx
from prometheus_client import Counter, Gauge
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert

from services.ledger.adapters import tables
from services.ledger.adapters.merkle_log import consistency_between, latest_checkpoint
from services.ledger.adapters.witness_client import Conflict, Cosigned, add_checkpoint
from services.ledger.domain.integrity.checkpoint import CheckpointError
from services.ledger.domain.integrity.cosignature import (
    Witness,
    WitnessKey,
    note_body,
    verify_cosignature,
)

log = logging.getLogger("custody.witnessing")
ROUND_LIMIT = 100
"""Checkpoints submitted to one witness per round; a witness far behind catches up over rounds."""


@dataclass(frozen=True, slots=True)
class WitnessMetrics:
    cosigned_size: Gauge
    lag: Gauge
    failures: Counter


@cache
def witness_metrics() -> WitnessMetrics:
    return WitnessMetrics(
        Gauge("custody_witness_cosigned_size", "Tree size of the newest cosignature", ["witness"]),
        Gauge(
            "custody_witness_lag_entries",
            "Entries between the newest checkpoint and the witness's newest cosignature",
            ["witness"],
        ),
        Counter("custody_witness_failures", "Submissions that got no cosignature", ["witness"]),
    )


def parse_witnesses(text: str) -> list[Witness]:
    """``'<vkey> <url>, <vkey> <url>'`` (the ``witnesses`` setting)."""
    witnesses = []
    for item in text.split(","):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2:
            raise CheckpointError(f"a witness is '<verifier key> <URL>', not {item.strip()!r}")
        key = WitnessKey.parse(parts[0])
        witnesses.append(Witness(key.name, key, parts[1]))
    return witnesses


@dataclass
class WitnessState:
    witness: Witness
    cosigned_size: int = 0
    cosigned_at: float | None = None  # monotonic
    last_error: str | None = None


class Witnessing:
    def __init__(self, engine: Engine, witnesses: Sequence[Witness], *, timeout_s: float) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self.states = {witness.name: WitnessState(witness) for witness in witnesses}
        self._started = time.monotonic()
        with engine.connect() as connection:
            c = tables.cosignatures.c
            for name, size in connection.execute(
                select(c.witness, func.max(c.tree_size)).group_by(c.witness)
            ):
                if name in self.states:
                    self.states[name].cosigned_size = int(size)

    def round(self, client: httpx.Client) -> None:
        """Ask every witness that is behind to cosign each checkpoint it has not, oldest first."""
        with self._engine.connect() as connection:
            latest = latest_checkpoint(connection)
        if latest is None:
            return
        metrics = witness_metrics()
        for state in self.states.values():
            name = state.witness.name
            try:
                for size, note in self._unwitnessed(state.cosigned_size):
                    self._submit(client, state, size, note)
                state.last_error = None
            except (httpx.HTTPError, CheckpointError, LookupError) as error:
                state.last_error = str(error) or type(error).__name__
                metrics.failures.labels(name).inc()
                log.warning("witness %s: %s", name, state.last_error)
            metrics.cosigned_size.labels(name).set(state.cosigned_size)
            metrics.lag.labels(name).set(latest.checkpoint.tree_size - state.cosigned_size)

    def _unwitnessed(self, after: int) -> list[tuple[int, str]]:
        k = tables.checkpoints.c
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(k.tree_size, k.note)
                .where(k.tree_size > after)
                .order_by(k.tree_size)
                .limit(ROUND_LIMIT)
            ).all()
        return [(int(size), str(note)) for size, note in rows]

    def _submit(self, client: httpx.Client, state: WitnessState, size: int, note: str) -> None:
        witness = state.witness
        assert witness.url is not None
        old = state.cosigned_size
        for _ in range(2):  # once more after a 409 that names the witness's size
            with self._engine.connect() as connection:
                proof = consistency_between(connection, old, size) if 0 < old < size else []
            answer = add_checkpoint(client, witness.url, old, proof, note)
            if isinstance(answer, Conflict) and answer.size != old and answer.size < size:
                old = answer.size
                continue
            if isinstance(answer, Conflict) and answer.size >= size:
                # The witness has cosigned this size or a later one already (its cosignature
                # was not kept here): it will not cosign this one again, so move on.
                log.warning(
                    "witness %s is at size %d; not asked for %d", witness.name, answer.size, size
                )
                state.cosigned_size = max(state.cosigned_size, min(answer.size, size))
                return
            if not isinstance(answer, Cosigned):
                raise CheckpointError(f"the witness answered {answer}")
            self._store(state, size, note, answer.lines)
            return
        raise CheckpointError("the witness kept answering 409")

    def _store(self, state: WitnessState, size: int, note: str, lines: list[str]) -> None:
        body = note_body(note)
        key = state.witness.key
        for line in lines:
            try:
                timestamp = verify_cosignature(body, line, key)
            except CheckpointError:
                continue  # other keys' lines are ignored, as the spec says
            with self._engine.begin() as connection:
                connection.execute(
                    insert(tables.cosignatures)
                    .values(
                        tree_size=size,
                        witness=key.name,
                        line=line,
                        signed_at=datetime.fromtimestamp(timestamp, UTC),
                    )
                    .on_conflict_do_nothing()
                )
            state.cosigned_size = size
            state.cosigned_at = time.monotonic()
            log.info("witness %s cosigned tree size %d", key.name, size)
            return
        raise CheckpointError(f"the witness answered no valid cosignature by {key.name}")

    def run(self, stop: threading.Event, *, poll_s: float = 1.0) -> None:
        with httpx.Client(timeout=self._timeout_s) as client:
            while not stop.is_set():
                self.round(client)
                stop.wait(poll_s)

    def unready_reason(self, after_s: float) -> str | None:
        """Why the witnesses are a problem: one has not cosigned for ``after_s`` seconds."""
        now = time.monotonic()
        stale = [
            f"{name}: no cosignature for {now - (state.cosigned_at or self._started):.0f} s"
            + (f" ({state.last_error})" if state.last_error else "")
            for name, state in self.states.items()
            if now - (state.cosigned_at or self._started) > after_s and state.last_error
        ]
        return "; ".join(stale) or None
