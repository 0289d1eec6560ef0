"""Certificate of recycling for one shipment: what it certifies, verified (pure; docs/reports.md).

The certificate shows the ledger **as of its latest signed checkpoint**: only entries with
``seq < tree_size`` are read, so everything on it is provable by that checkpoint. It names the
shipper, the hauler(s) and the plant and lists every container of the shipment (the
``shipment_id`` of its first effective pickup) with its sealed, intake and accepted weights, its
pickup, intake and processed dates and processing method. Each container that was taken in is
*certified* by its processed entry (its intake entry until it is processed): the certificate
prints that entry's ledger ``seq`` and ``entry_hash`` and the checkpoint's tree size and root.

Nothing is rendered unproven. For every certified container ``build_certificate`` first has
the one verifier (``integrity/verification.py``) recompute the hash of each of its entries and
check the chain links from its first entry, then verify the RFC 6962 inclusion proofs of the
certified entry and of the container's last entry (its chain head at the checkpoint) against the
checkpoint's root: so every figure printed for it is bound to the signed checkpoint. The PDF is
drawn by ``services/ledger/rendering/certificate_pdf.py``. The exact
signed note and the proofs are attached to the PDF as ``checkpoint.note`` and ``proofs.json``, so
an auditor can check them again offline.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.ledger.domain.custody import reconstruct
from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.checkpoint import Checkpoint
from services.ledger.domain.integrity.verification import (
    VerificationError,
    check_container_chain,
    check_inclusion,
)
from services.ledger.domain.report_facts import ContainerFacts, container_facts


class CertificateUnavailable(LookupError):
    """There is nothing (yet) to certify; the message says why."""


class CertificateError(ValueError):
    """A record does not verify against its hash or the checkpoint: nothing is rendered."""


@dataclass(frozen=True)
class CertificateLine:
    facts: ContainerFacts
    certified: RecordedEntry | None  # processed entry, else intake entry; None before intake
    head: RecordedEntry | None = None  # the container's last entry at the checkpoint
    proofs: Mapping[int, tuple[bytes, ...]] = field(default_factory=dict)  # seq → proof


@dataclass(frozen=True)
class Certificate:
    shipment_id: str
    shippers: tuple[str, ...]
    plants: tuple[str, ...]
    haulers: tuple[str, ...]
    lines: tuple[CertificateLine, ...]
    checkpoint: Checkpoint
    note: str
    issued_at: datetime
    names: Mapping[str, str] = field(default_factory=dict)

    @property
    def certified(self) -> tuple[CertificateLine, ...]:
        return tuple(line for line in self.lines if line.certified is not None)


@dataclass(frozen=True)
class _Member:
    facts: ContainerFacts
    entries: tuple[RecordedEntry, ...]  # by seq, all below the checkpoint

    @property
    def certified(self) -> RecordedEntry | None:
        step = self.facts.processed or self.facts.intake
        if step is None:
            return None
        return next(entry for entry in self.entries if entry.seq == step.seq)


def _members(entries: Iterable[RecordedEntry], shipment_id: str, tree_size: int) -> list[_Member]:
    """The shipment's containers as of the checkpoint, by container id."""
    grouped: dict[str, list[RecordedEntry]] = defaultdict(list)
    for entry in entries:
        if entry.seq < tree_size:
            grouped[entry.container_id].append(entry)
    members = []
    for container_entries in grouped.values():
        latest = max(entry.received_at for entry in container_entries)
        facts = container_facts(reconstruct(container_entries, now=latest))
        if facts.shipment_id == shipment_id:
            ordered = tuple(sorted(container_entries, key=lambda e: e.seq))
            members.append(_Member(facts, ordered))
    members.sort(key=lambda member: member.facts.container_id)
    return members


def seqs_to_prove(entries: Iterable[RecordedEntry], shipment_id: str, tree_size: int) -> list[int]:
    """The entries whose inclusion proofs at ``tree_size`` a certificate needs."""
    seqs: set[int] = set()
    for member in _members(entries, shipment_id, tree_size):
        if member.certified is not None:
            seqs.update((member.certified.seq, member.entries[-1].seq))
    return sorted(seqs)


def _verified(
    member: _Member, checkpoint: Checkpoint, proofs: Mapping[int, Sequence[bytes]]
) -> dict[int, tuple[bytes, ...]]:
    """The member's chain, then the inclusions of its certified entry and of its last entry."""
    assert member.certified is not None
    checked = {}
    try:
        check_container_chain(member.entries)
        for entry in (member.certified, member.entries[-1]):
            proof = tuple(proofs.get(entry.seq, ()))
            check_inclusion(entry, checkpoint, proof)
            checked[entry.seq] = proof
    except VerificationError as error:
        raise CertificateError(str(error)) from error
    return checked


def build_certificate(
    shipment_id: str,
    entries: Iterable[RecordedEntry],
    *,
    checkpoint: Checkpoint,
    note: str,
    proofs: Mapping[int, Sequence[bytes]],
    issued_at: datetime,
    names: Mapping[str, str] | None = None,
) -> Certificate:
    """The certificate of ``shipment_id`` as of ``checkpoint``, every record verified first.

    ``entries`` are the recorded entries of (at least) the shipment's containers; those at or
    beyond the checkpoint's tree size are left out. ``proofs`` maps each seq of
    ``seqs_to_prove`` to its inclusion proof at ``checkpoint.tree_size``. Raises
    CertificateUnavailable when, as of the checkpoint, the shipment is unknown or none of its
    containers has been taken in; CertificateError when a hash, a chain link or an inclusion
    proof does not verify.
    """
    members = _members(entries, shipment_id, checkpoint.tree_size)
    if not members:
        raise CertificateUnavailable(
            f"shipment {shipment_id!r} is not recorded as of the latest signed checkpoint "
            f"(tree size {checkpoint.tree_size})"
        )
    lines = []
    for member in members:
        certified = member.certified
        if certified is None:
            lines.append(CertificateLine(member.facts, None))
            continue
        checked = _verified(member, checkpoint, proofs)
        lines.append(CertificateLine(member.facts, certified, member.entries[-1], checked))
    if not any(line.certified is not None for line in lines):
        raise CertificateUnavailable(
            f"no container of shipment {shipment_id!r} has been taken in or processed as of "
            f"the latest signed checkpoint (tree size {checkpoint.tree_size})"
        )
    facts = [member.facts for member in members]
    return Certificate(
        shipment_id=shipment_id,
        shippers=tuple(sorted({item.site for item in facts if item.site})),
        plants=tuple(sorted({item.plant for item in facts if item.plant})),
        haulers=tuple(sorted({item.pickup.to_party for item in facts if item.pickup is not None})),
        lines=tuple(lines),
        checkpoint=checkpoint,
        note=note,
        issued_at=issued_at,
        names=dict(names or {}),
    )
