"""Signs a checkpoint every N seconds or M new entries, whichever comes first."""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import Gauge
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert

from services.ledger.adapters import tables
from services.ledger.adapters.merkle_log import latest_checkpoint, root_at, tree_size
from services.ledger.domain.integrity.checkpoint import Checkpoint, sign_checkpoint
from services.ledger.service.witnessing import Witnessing

log = logging.getLogger("custody.checkpointer")


@dataclass(frozen=True, slots=True)
class CheckpointMetrics:
    ledger_size: Gauge
    checkpoint_size: Gauge
    checkpoint_age: Gauge


@cache
def checkpoint_metrics() -> CheckpointMetrics:
    """Registered by the first checkpointer, so only the checkpointer process exports them."""
    return CheckpointMetrics(
        Gauge("custody_ledger_tree_size", "Entries in the ledger's Merkle log"),
        Gauge("custody_checkpoint_tree_size", "Tree size of the newest signed checkpoint"),
        Gauge(
            "custody_checkpoint_age_seconds",
            "Seconds since the newest checkpoint was signed (NaN before the first)",
        ),
    )


class InconsistentLog(RuntimeError):
    """The tree to sign does not extend the last signed checkpoint."""


class Checkpointer:
    def __init__(
        self,
        engine: Engine,
        private_key: Ed25519PrivateKey,
        *,
        origin: str,
        interval_s: float,
        every_entries: int,
        witnessing: Witnessing | None = None,
    ) -> None:
        self._engine = engine.execution_options(isolation_level="REPEATABLE READ")
        self._key = private_key
        self._origin = origin
        self._interval_s = interval_s
        self._every_entries = every_entries
        self.witnessing = witnessing

    def checkpoint_now(self) -> Checkpoint | None:
        """Sign the current tree if it grew since the last checkpoint; None otherwise."""
        with self._engine.begin() as connection:
            size = tree_size(connection)
            latest = latest_checkpoint(connection)
            if size == 0 or (latest is not None and latest.checkpoint.tree_size >= size):
                return None
            if latest is not None:
                previous = latest.checkpoint
                if root_at(connection, previous.tree_size) != previous.root_hash:
                    # The stored tree no longer extends what was signed: sign nothing more.
                    raise InconsistentLog(
                        f"the stored tree does not reproduce the root signed at size "
                        f"{previous.tree_size}; no checkpoint will be signed"
                    )
            checkpoint = Checkpoint(self._origin, size, root_at(connection, size))
            note = sign_checkpoint(checkpoint, self._origin, self._key)
            connection.execute(
                insert(tables.checkpoints)
                .values(
                    tree_size=size,
                    root_hash=checkpoint.root_hash,
                    origin=self._origin,
                    key_name=self._origin,
                    note=note,
                )
                .on_conflict_do_nothing(index_elements=["tree_size"])
            )
        log.info("checkpoint signed at tree size %d", size)
        return checkpoint

    def run(self, stop: threading.Event, *, poll_s: float = 1.0) -> None:
        """Sign as due; witnesses are asked in a thread of their own, off this loop."""
        witnesses = None
        if self.witnessing is not None:
            witnesses = threading.Thread(
                target=self.witnessing.run, args=(stop,), name="witnessing", daemon=True
            )
            witnesses.start()
        try:
            self._sign_as_due(stop, poll_s)
        finally:
            if witnesses is not None:
                witnesses.join(timeout=30)

    def _sign_as_due(self, stop: threading.Event, poll_s: float) -> None:
        last_signed = time.monotonic()
        metrics = checkpoint_metrics()
        while not stop.is_set():
            with self._engine.connect() as connection:
                size = tree_size(connection)
                latest = latest_checkpoint(connection)
            signed_size = latest.checkpoint.tree_size if latest else 0
            metrics.ledger_size.set(size)
            metrics.checkpoint_size.set(signed_size)
            signed_at = latest.created_at if latest else None
            metrics.checkpoint_age.set(
                (datetime.now(UTC) - signed_at).total_seconds() if signed_at else math.nan
            )
            due = time.monotonic() - last_signed >= self._interval_s
            if size > signed_size and (due or size - signed_size >= self._every_entries):
                try:
                    self.checkpoint_now()
                except InconsistentLog as error:
                    log.error("%s", error)
                last_signed = time.monotonic()
            stop.wait(poll_s)
