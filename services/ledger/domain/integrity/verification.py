"""The one verifier: every check of entry hashes, chain links, Merkle proofs and checkpoints.

``custody verify`` (bundles), ``custody audit`` (the whole ledger), the certificate of recycling
and the UI's verified badge all call this module; nothing else recomputes a hash or checks a
proof (docs/architecture.md §4). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.bundle import BUNDLE_FORMAT, parse_entry_record
from services.ledger.domain.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    verify_signed_note,
)
from services.ledger.domain.integrity.hashing import ZERO_HASH, entry_document, entry_hash
from services.ledger.domain.integrity.merkle import (
    Frontier,
    ProofError,
    verify_consistency,
    verify_inclusion,
)


class VerificationError(ValueError):
    """Something does not verify; the message names the check and the entry."""


class BundleError(VerificationError):
    """The bundle does not verify, or is not a bundle."""


def recomputed_hash(entry: RecordedEntry) -> bytes:
    """The entry hash as recomputed from the entry's content."""
    return entry_hash(
        entry_document(
            seq=entry.seq,
            event=entry.hashed_body,
            received_at=entry.received_at,
            recorded_at=entry.recorded_at,
            origin=entry.origin.model_dump(mode="json"),
            kafka_partition=entry.kafka_partition,
            kafka_offset=entry.kafka_offset,
            prev_hash=entry.prev_hash,
        )
    )


def check_container_chain(entries: Sequence[RecordedEntry]) -> None:
    """One container's entries from its first, in seq order: each hash and each link."""
    previous: RecordedEntry | None = None
    for entry in entries:
        if recomputed_hash(entry) != entry.entry_hash:
            raise VerificationError(f"entry seq {entry.seq}: content does not match its entry_hash")
        if previous is None:
            if entry.prev_hash != ZERO_HASH:
                raise VerificationError(
                    f"entry seq {entry.seq}: the container's first entry must link to zero hash"
                )
        else:
            if entry.seq <= previous.seq:
                raise VerificationError(f"entry seq {entry.seq}: entries are not in seq order")
            if entry.prev_hash != previous.entry_hash:
                raise VerificationError(
                    f"entry seq {entry.seq}: prev_hash does not link to entry seq {previous.seq} "
                    f"of container {entry.container_id}"
                )
        previous = entry


def check_inclusion(entry: RecordedEntry, checkpoint: Checkpoint, proof: Sequence[bytes]) -> None:
    """The RFC 6962 inclusion of ``entry`` (leaf ``seq``) under the checkpoint's root."""
    if entry.seq >= checkpoint.tree_size:
        raise VerificationError(
            f"entry seq {entry.seq} is not covered by the checkpoint (size {checkpoint.tree_size})"
        )
    try:
        verify_inclusion(
            entry.entry_hash, entry.seq, checkpoint.tree_size, proof, checkpoint.root_hash
        )
    except ProofError as error:
        raise VerificationError(f"inclusion of entry seq {entry.seq}: {error}") from error


def check_consistency(older: Checkpoint, newer: Checkpoint, proof: Sequence[bytes]) -> None:
    """That ``newer`` extends ``older`` (RFC 6962 consistency)."""
    try:
        verify_consistency(
            older.tree_size, newer.tree_size, older.root_hash, newer.root_hash, proof
        )
    except ProofError as error:
        raise VerificationError(f"consistency with the trusted checkpoint: {error}") from error


# --- bundles ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleReport:
    container_id: str
    entries: int
    head_seq: int
    checkpoint: Checkpoint
    trusted_size: int | None


def _hashes(items: Any, what: str) -> list[bytes]:
    if not isinstance(items, list):
        raise BundleError(f"{what} must be a list of hex hashes")
    try:
        return [bytes.fromhex(item) for item in items]
    except (TypeError, ValueError) as error:
        raise BundleError(f"{what} holds a value that is not hex") from error


def _signed(note: str, verifier: VerifierKey, what: str) -> Checkpoint:
    try:
        return verify_signed_note(note, verifier)
    except CheckpointError as error:
        raise BundleError(f"{what}: {error}") from error


def verify_bundle(
    bundle: dict[str, Any], verifier: VerifierKey, trusted_note: str | None = None
) -> BundleReport:
    """Check everything a bundle claims, offline; raise BundleError naming what failed."""
    if bundle.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"not a {BUNDLE_FORMAT} bundle")
    container_id = bundle.get("container_id")
    checkpoint = _signed(str(bundle.get("checkpoint", "")), verifier, "checkpoint")

    records = bundle.get("entries")
    if not isinstance(records, list) or not records:
        raise BundleError("the bundle holds no entries")
    try:
        entries = [parse_entry_record(record) for record in records]
    except ValueError as error:
        raise BundleError(str(error)) from error
    for entry, record in zip(entries, records, strict=True):
        if record.get("container_id") != container_id or entry.container_id != container_id:
            raise BundleError(f"entry seq {entry.seq}: belongs to another container")
    try:
        check_container_chain(entries)
        head = entries[-1]
        check_inclusion(head, checkpoint, _hashes(bundle.get("inclusion_proof"), "inclusion_proof"))
    except VerificationError as error:
        raise BundleError(str(error)) from error

    trusted_size = None
    if trusted_note is not None:
        trusted = _signed(trusted_note, verifier, "trusted checkpoint")
        trusted_size = trusted.tree_size
        if trusted.tree_size > checkpoint.tree_size:
            raise BundleError(
                f"the bundle's checkpoint (size {checkpoint.tree_size}) is older than the "
                f"trusted one (size {trusted.tree_size})"
            )
        consistency = bundle.get("consistency")
        if trusted.tree_size == checkpoint.tree_size:
            if trusted.root_hash != checkpoint.root_hash:
                raise BundleError("the trusted checkpoint and the bundle's disagree on the root")
        elif not isinstance(consistency, dict) or consistency.get("first") != trusted.tree_size:
            raise BundleError(
                f"the bundle has no consistency proof from size {trusted.tree_size}; "
                f"download it with ?trusted_size={trusted.tree_size}"
            )
        else:
            proof = _hashes(consistency.get("proof"), "consistency proof")
            try:
                check_consistency(trusted, checkpoint, proof)
            except VerificationError as error:
                raise BundleError(str(error)) from error
    return BundleReport(str(container_id), len(entries), head.seq, checkpoint, trusted_size)


# --- the whole ledger -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    container_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    """A checkpoint as stored: its columns and the signed note they came from."""

    checkpoint: Checkpoint
    note: str


@dataclass
class LedgerAudit:
    """Feed every entry in seq order; collects every hash, link, gap and root problem.

    ``checkpoints`` are the stored ones: each signed note is checked against ``verifier`` (when
    given) and its columns, and each root against the root recomputed from the entries.
    """

    checkpoints: Sequence[SignedCheckpoint] = ()
    verifier: VerifierKey | None = None
    entry_problems: list[ChainProblem] = field(default_factory=list)
    checkpoint_problems: list[str] = field(default_factory=list)
    checked: int = 0

    def __post_init__(self) -> None:
        self._heads: dict[str, bytes] = {}
        self._expected_seq = 0
        self._frontier = Frontier()
        self._by_size = {stored.checkpoint.tree_size: stored for stored in self.checkpoints}
        for stored in self.checkpoints:
            self._check_signature(stored)

    def _check_signature(self, stored: SignedCheckpoint) -> None:
        if self.verifier is None:
            return
        size = stored.checkpoint.tree_size
        try:
            signed = verify_signed_note(stored.note, self.verifier)
        except CheckpointError as error:
            self.checkpoint_problems.append(f"checkpoint size {size}: {error}")
            return
        if signed != stored.checkpoint:
            self.checkpoint_problems.append(
                f"checkpoint size {size}: stored columns differ from the signed note"
            )

    def _entry_problem(self, entry: RecordedEntry, problem: str) -> None:
        self.entry_problems.append(ChainProblem(entry.seq, entry.container_id, problem))

    def check(self, entry: RecordedEntry) -> None:
        if entry.seq != self._expected_seq:
            self._entry_problem(entry, f"seq gap: expected {self._expected_seq}, found {entry.seq}")
        self._expected_seq = entry.seq + 1
        recomputed = recomputed_hash(entry)
        if recomputed != entry.entry_hash:
            self._entry_problem(entry, "entry_hash does not match content")
        if entry.prev_hash != self._heads.get(entry.container_id, ZERO_HASH):
            self._entry_problem(entry, "prev_hash does not link to the container's previous entry")
        self._heads[entry.container_id] = entry.entry_hash
        self.checked += 1
        self._frontier.append(recomputed)
        signed_here = self._by_size.get(self._frontier.size)
        if signed_here is not None and self._frontier.root() != signed_here.checkpoint.root_hash:
            self.checkpoint_problems.append(
                f"checkpoint size {self._frontier.size}: the signed root does not match the "
                f"root recomputed from entries 0..{entry.seq}"
            )

    def check_all(self, entries: Iterable[RecordedEntry]) -> LedgerAudit:
        for entry in entries:
            self.check(entry)
        return self.finish()

    def finish(self) -> LedgerAudit:
        """Call after the last entry: checkpoints beyond the ledger are problems too."""
        for size in sorted(self._by_size):
            if size > self._frontier.size:
                self.checkpoint_problems.append(
                    f"checkpoint size {size}: the ledger holds only {self._frontier.size} entries"
                )
        return self

    @property
    def ok(self) -> bool:
        return not self.entry_problems and not self.checkpoint_problems

    @property
    def first_bad_entry(self) -> ChainProblem | None:
        return min(self.entry_problems, key=lambda problem: problem.seq, default=None)
