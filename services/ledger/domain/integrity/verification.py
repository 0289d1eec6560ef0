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
from services.ledger.domain.integrity.bundle import (
    BUNDLE_FIELDS,
    BUNDLE_FORMAT_V1,
    BUNDLE_FORMATS,
    BUNDLE_V2_FIELDS,
    MalformedBundle,
    hash_hex,
    load_json,
    parse_entry_record,
    parse_served_entry,
)
from services.ledger.domain.integrity.checkpoint import (
    Checkpoint,
    CheckpointError,
    VerifierKey,
    verify_signed_note,
)
from services.ledger.domain.integrity.cosignature import Policy
from services.ledger.domain.integrity.hashing import (
    ZERO_HASH,
    entry_bytes,
    entry_hash,
    hashed_document,
)
from services.ledger.domain.integrity.merkle import (
    Frontier,
    ProofError,
    consistency_proof_length,
    inclusion_proof_length,
    verify_consistency,
    verify_inclusion,
)
from services.ledger.domain.integrity.tlog_proof import TlogProofError, parse_tlog_proof


class VerificationError(ValueError):
    """Something does not verify; the message names the check and the entry."""


class BundleError(VerificationError):
    """The bundle does not verify, or is not a bundle."""


def recomputed_hash(entry: RecordedEntry) -> bytes:
    """The entry hash as recomputed from the entry's content."""
    return entry_hash(hashed_document(entry))


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
    needed = inclusion_proof_length(entry.seq, checkpoint.tree_size)
    if len(proof) != needed:
        raise VerificationError(
            f"inclusion of entry seq {entry.seq}: the proof has {len(proof)} hashes; a leaf at "
            f"index {entry.seq} of a tree of size {checkpoint.tree_size} needs {needed}"
        )
    try:
        verify_inclusion(
            entry.entry_hash, entry.seq, checkpoint.tree_size, proof, checkpoint.root_hash
        )
    except ProofError as error:
        raise VerificationError(f"inclusion of entry seq {entry.seq}: {error}") from error


def check_consistency(older: Checkpoint, newer: Checkpoint, proof: Sequence[bytes]) -> None:
    """That ``newer`` extends ``older`` (RFC 6962 consistency)."""
    if 0 < older.tree_size < newer.tree_size:
        needed = consistency_proof_length(older.tree_size, newer.tree_size)
        if len(proof) != needed:
            raise VerificationError(
                f"consistency with the trusted checkpoint: the proof has {len(proof)} hashes; "
                f"sizes {older.tree_size} → {newer.tree_size} need {needed}"
            )
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
    cosigned_by: tuple[str, ...] = ()


def _hashes(items: Any, what: str) -> list[bytes]:
    if not isinstance(items, list):
        raise BundleError(f"{what} must be a list of hex hashes")
    try:
        return [hash_hex(item, f"{what} item {number}") for number, item in enumerate(items)]
    except MalformedBundle as error:
        raise BundleError(str(error)) from error


Trust = VerifierKey | Policy
"""The log's key alone, or a tlog-policy: the log keys and the witness quorum."""


def trusted_checkpoint(note: str, trust: Trust) -> tuple[Checkpoint, list[str]]:
    """The checkpoint a note signs, and the policy witnesses that cosigned it."""
    if isinstance(trust, Policy):
        return trust.verify(note)
    return verify_signed_note(note, trust), []


def _signed(note: str, trust: Trust, what: str) -> tuple[Checkpoint, list[str]]:
    try:
        return trusted_checkpoint(note, trust)
    except CheckpointError as error:
        raise BundleError(f"{what}: {error}") from error


def verify_bundle(bundle: Any, trust: Trust, trusted_note: str | None = None) -> BundleReport:
    """Check everything a bundle claims, offline; raise BundleError naming what failed.

    Both formats are read; anything the format does not define is refused, so nothing a
    reader is shown escapes verification.
    """
    if not isinstance(bundle, dict) or bundle.get("format") not in BUNDLE_FORMATS:
        raise BundleError(f"not a bundle of format {' or '.join(BUNDLE_FORMATS)}")
    v1 = bundle["format"] == BUNDLE_FORMAT_V1
    unknown = sorted(set(bundle) - (BUNDLE_FIELDS if v1 else BUNDLE_V2_FIELDS))
    if unknown:
        raise BundleError(f"the bundle has unknown field(s) {', '.join(unknown)}")
    container_id = bundle.get("container_id")
    if not isinstance(container_id, str):
        raise BundleError("the bundle's container_id is not a string")
    checkpoint, cosigned = _signed(str(bundle.get("checkpoint", "")), trust, "checkpoint")

    records = bundle.get("entries")
    if not isinstance(records, list) or not records:
        raise BundleError("the bundle holds no entries")
    parse = parse_entry_record if v1 else parse_served_entry
    try:
        entries = [parse(record, position) for position, record in enumerate(records)]
    except MalformedBundle as error:
        raise BundleError(str(error)) from error
    for entry in entries:
        if entry.container_id != container_id:
            raise BundleError(
                f"entry seq {entry.seq}: belongs to container {entry.container_id}, "
                f"not {container_id}"
            )
    inclusion = _hashes(bundle.get("inclusion_proof"), "inclusion_proof")
    try:
        check_container_chain(entries)
        head = entries[-1]
        check_inclusion(head, checkpoint, inclusion)
    except VerificationError as error:
        raise BundleError(str(error)) from error
    if not v1:
        _check_tlog_proof(bundle.get("tlog_proof"), head, inclusion, str(bundle["checkpoint"]))

    trusted_size = None
    if trusted_note is not None:
        trusted, _ = _signed(trusted_note, trust, "trusted checkpoint")
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
    return BundleReport(
        container_id, len(entries), head.seq, checkpoint, trusted_size, tuple(cosigned)
    )


def _check_tlog_proof(text: Any, head: RecordedEntry, inclusion: list[bytes], note: str) -> None:
    """A format-2 bundle's tlog-proof must prove the same head entry the same way."""
    if not isinstance(text, str):
        raise BundleError("the bundle has no tlog_proof")
    try:
        proof = parse_tlog_proof(text)
    except TlogProofError as error:
        raise BundleError(f"tlog_proof: {error}") from error
    if (
        proof.index != head.seq
        or list(proof.proof) != inclusion
        or proof.checkpoint != note
        or proof.extra != entry_bytes(head)
    ):
        raise BundleError("tlog_proof does not prove the bundle's head entry as the bundle does")


@dataclass(frozen=True, slots=True)
class EntryProofReport:
    seq: int
    checkpoint: Checkpoint
    document: dict[str, Any]
    cosigned_by: tuple[str, ...] = ()


def verify_tlog_proof(text: str, trust: Trust, entry: bytes | None = None) -> EntryProofReport:
    """A c2sp.org/tlog-proof of one entry: ``E`` from its extra data or given as ``entry``."""
    try:
        proof = parse_tlog_proof(text)
    except TlogProofError as error:
        raise VerificationError(str(error)) from error
    data = entry if entry is not None else proof.extra
    if data is None:
        raise VerificationError("the tlog-proof carries no entry; give the entry file too")
    if proof.extra is not None and entry is not None and proof.extra != entry:
        raise VerificationError("the entry given differs from the one in the tlog-proof")
    try:
        document = load_json(data)
        parsed = parse_served_entry(
            {"entry": document, "entry_hash": entry_hash(document).hex()}, 0
        )
    except (MalformedBundle, ValueError) as error:
        raise VerificationError(f"the proven entry: {error}") from error
    if entry_bytes(parsed) != data:
        raise VerificationError("the proven entry is not in RFC 8785 canonical form")
    if parsed.seq != proof.index:
        raise VerificationError(
            f"the tlog-proof's index {proof.index} is not the entry's seq {parsed.seq}"
        )
    try:
        checkpoint, cosigned = trusted_checkpoint(proof.checkpoint, trust)
    except CheckpointError as error:
        raise VerificationError(f"checkpoint: {error}") from error
    # parse_served_entry took the hash of the canonical form, which is ``data``: the leaf.
    check_inclusion(parsed, checkpoint, list(proof.proof))
    return EntryProofReport(parsed.seq, checkpoint, document, tuple(cosigned))


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
