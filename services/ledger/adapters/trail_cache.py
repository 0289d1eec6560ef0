"""The consumer's memory of recent containers' entries, so a batch need not re-read them.

Entries are append-only, so a cached list stays right as long as its last hash is what the
next appended entry links to; anything else (another consumer wrote meanwhile, a restart,
eviction) is reported stale and re-read from PostgreSQL.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

from services.ledger.domain.entries import RecordedEntry
from services.ledger.domain.integrity.hashing import ZERO_HASH


class TrailCache:
    def __init__(self, max_containers: int) -> None:
        self._max = max_containers
        self._entries: OrderedDict[str, list[RecordedEntry]] = OrderedDict()

    def extend(
        self, appended: Mapping[str, list[RecordedEntry]]
    ) -> tuple[dict[str, list[RecordedEntry]], set[str]]:
        """Full entry lists for containers whose cache links to the new entries; the rest stale."""
        complete: dict[str, list[RecordedEntry]] = {}
        stale: set[str] = set()
        for container_id, new in appended.items():
            cached = self._entries.get(container_id)
            if cached is not None and cached[-1].entry_hash == new[0].prev_hash:
                complete[container_id] = [*cached, *new]
            elif new[0].prev_hash == ZERO_HASH:
                complete[container_id] = list(new)
            else:
                stale.add(container_id)
        return complete, stale

    def remember(self, entries: Mapping[str, list[RecordedEntry]]) -> None:
        """Call only after the transaction that wrote these entries committed."""
        for container_id, items in entries.items():
            self._entries[container_id] = items
            self._entries.move_to_end(container_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
