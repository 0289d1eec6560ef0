"""``custody audit``: recompute every hash, link and root against every signed checkpoint."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from services.ledger.adapters.merkle_log import all_checkpoints
from services.ledger.adapters.stored_entries import stream_stored_entries
from services.ledger.domain.chain import ChainChecker, ChainProblem
from services.ledger.domain.checkpoint import CheckpointError, VerifierKey, verify_signed_note
from services.ledger.domain.merkle import Frontier


@dataclass
class AuditReport:
    entries: int = 0
    checkpoints: int = 0
    entry_problems: list[ChainProblem] = field(default_factory=list)
    checkpoint_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.entry_problems and not self.checkpoint_problems

    @property
    def first_bad_entry(self) -> ChainProblem | None:
        return min(self.entry_problems, key=lambda problem: problem.seq, default=None)


def audit_ledger(
    engine: Engine,
    verifier: VerifierKey | None,
    *,
    on_entry: Callable[[int], None] | None = None,
) -> AuditReport:
    report = AuditReport()
    checkpoints = all_checkpoints(engine)
    report.checkpoints = len(checkpoints)
    for stored in checkpoints:
        if verifier is None:
            continue
        try:
            signed = verify_signed_note(stored.note, verifier)
        except CheckpointError as error:
            report.checkpoint_problems.append(
                f"checkpoint size {stored.checkpoint.tree_size}: {error}"
            )
            continue
        if signed != stored.checkpoint:
            report.checkpoint_problems.append(
                f"checkpoint size {stored.checkpoint.tree_size}: stored columns differ from the "
                "signed note"
            )
    by_size = {stored.checkpoint.tree_size: stored for stored in checkpoints}
    checker = ChainChecker()
    frontier = Frontier()
    for entry in stream_stored_entries(engine):
        checker.check(entry)
        frontier.append(entry.recomputed_hash())
        signed_here = by_size.get(frontier.size)
        if signed_here is not None and frontier.root() != signed_here.checkpoint.root_hash:
            report.checkpoint_problems.append(
                f"checkpoint size {frontier.size}: the signed root does not match the root "
                f"recomputed from entries 0..{entry.seq}"
            )
        if on_entry is not None:
            on_entry(entry.seq)
    report.entries = checker.checked
    report.entry_problems = checker.problems
    for size in sorted(by_size):
        if size > frontier.size:
            report.checkpoint_problems.append(
                f"checkpoint size {size}: the ledger holds only {frontier.size} entries"
            )
    return report
