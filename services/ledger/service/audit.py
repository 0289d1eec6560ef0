"""``custody audit``: every entry and every stored checkpoint through the one verifier."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from services.ledger.adapters.entry_rows import stream_entries
from services.ledger.adapters.merkle_log import all_checkpoints
from services.ledger.domain.integrity.checkpoint import VerifierKey
from services.ledger.domain.integrity.verification import LedgerAudit, SignedCheckpoint


def audit_ledger(
    engine: Engine,
    verifier: VerifierKey | None,
    *,
    on_entry: Callable[[int], None] | None = None,
) -> LedgerAudit:
    """Recompute every hash, link and root; the report names each problem found."""
    stored = all_checkpoints(engine)
    audit = LedgerAudit([SignedCheckpoint(item.checkpoint, item.note) for item in stored], verifier)
    for entry in stream_entries(engine):
        audit.check(entry)
        if on_entry is not None:
            on_entry(entry.seq)
    return audit.finish()
