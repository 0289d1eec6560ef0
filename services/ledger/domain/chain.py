"""Checking stored entries against their hashes and their containers' chains (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.ledger.domain.hashing import ZERO_HASH, entry_document, entry_hash


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry exactly as stored: the body as raw JSON, not re-validated."""

    seq: int
    container_id: str
    body: Mapping[str, Any]
    received_at: Any
    recorded_at: Any
    origin: Mapping[str, Any]
    kafka_partition: int
    kafka_offset: int
    prev_hash: bytes
    entry_hash: bytes

    def recomputed_hash(self) -> bytes:
        return entry_hash(
            entry_document(
                seq=self.seq,
                event=dict(self.body),
                received_at=self.received_at,
                recorded_at=self.recorded_at,
                origin=dict(self.origin),
                kafka_partition=self.kafka_partition,
                kafka_offset=self.kafka_offset,
                prev_hash=self.prev_hash,
            )
        )


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    container_id: str
    problem: str


class ChainChecker:
    """Feed entries in seq order; collects every hash, link and gap problem."""

    def __init__(self) -> None:
        self._heads: dict[str, bytes] = {}
        self._expected_seq = 0
        self.problems: list[ChainProblem] = []
        self.checked = 0

    def check(self, entry: StoredEntry) -> None:
        if entry.seq != self._expected_seq:
            self.problems.append(
                ChainProblem(
                    entry.seq,
                    entry.container_id,
                    f"seq gap: expected {self._expected_seq}, found {entry.seq}",
                )
            )
        self._expected_seq = entry.seq + 1
        if entry.recomputed_hash() != entry.entry_hash:
            self.problems.append(
                ChainProblem(entry.seq, entry.container_id, "entry_hash does not match content")
            )
        expected_prev = self._heads.get(entry.container_id, ZERO_HASH)
        if entry.prev_hash != expected_prev:
            self.problems.append(
                ChainProblem(
                    entry.seq,
                    entry.container_id,
                    "prev_hash does not link to the container's previous entry",
                )
            )
        self._heads[entry.container_id] = entry.entry_hash
        self.checked += 1

    def check_all(self, entries: Iterable[StoredEntry]) -> list[ChainProblem]:
        for entry in entries:
            self.check(entry)
        return self.problems
