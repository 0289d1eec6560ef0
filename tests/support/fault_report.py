"""The figures each fault test reports: on stdout and in ``test-output/faults.jsonl``, which
docs/reliability.md quotes."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, text

from services.ledger.adapters.entry_rows import stream_entries
from services.ledger.domain.integrity.verification import LedgerAudit

REPORT = Path(__file__).resolve().parents[2] / "test-output" / "faults.jsonl"


def report_fault(
    engine: Engine, fault: str, *, sent: int, acknowledged: set[str], **extra: int
) -> dict[str, int]:
    """Tally the ledger against what was acknowledged; the chain must verify throughout."""
    with engine.connect() as connection:
        total, distinct, low, high = connection.execute(
            text(
                "SELECT count(*), count(DISTINCT event_id), min(seq), max(seq) FROM ledger.entries"
            )
        ).one()
        ids = set(connection.execute(text("SELECT event_id::text FROM ledger.entries")).scalars())
    assert LedgerAudit().check_all(stream_entries(engine)).entry_problems == []
    assert (low, high) == (0, total - 1), "seq is not gapless"
    figures = {
        "sent": sent,
        "acknowledged": len(acknowledged),
        "recorded": distinct,
        "duplicated": total - distinct,
        "lost": len(acknowledged - ids),
        **extra,
    }
    print(f"\nfault: {fault} — " + ", ".join(f"{key} {value}" for key, value in figures.items()))
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as out:
        out.write(json.dumps({"fault": fault, **figures}) + "\n")
    return figures
