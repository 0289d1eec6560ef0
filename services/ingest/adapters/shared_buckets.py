"""Rate-limit buckets shared by ingest's worker processes: a fixed table in a memory-mapped
file, read and written under an exclusive ``flock``.

Each slot holds a device key (16 bytes of SHA-256 of the device id), the bucket's tokens and
the monotonic time they were counted at; ``time.monotonic`` is one system-wide clock on Linux,
so every worker reads the same time. A device's slot is found by linear probing from its
hash. When all probed slots are taken (tens of thousands of devices active at once), the one
untouched longest is reused: its device, and any device whose probe ran past that slot, starts
again from a full bucket, which only ever errs on the lenient side.
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_SLOT = struct.Struct("<16sdd")  # device key, tokens, updated
_EMPTY_KEY = bytes(16)
PROBES = 32


def device_key(device_id: str) -> bytes:
    key = hashlib.sha256(device_id.encode()).digest()[:16]
    return key if key != _EMPTY_KEY else b"\x01" + key[1:]


class SharedBucketTable:
    """Open (or create) the table at ``path``; every process opening it shares its slots."""

    def __init__(self, path: Path, *, slots: int = 65_536) -> None:
        self._slots = slots
        size = slots * _SLOT.size
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        with self._locked():
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)
        self._map = mmap.mmap(self._fd, size)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    @contextmanager
    def bucket(self, device_id: str) -> Iterator[SharedSlot]:
        """The device's slot, locked against every other process while the block runs."""
        key = device_key(device_id)
        with self._locked():
            yield SharedSlot(self._map, self._find(key), key)

    def _find(self, key: bytes) -> int:
        start = int.from_bytes(key[:8], "little") % self._slots
        oldest_offset, oldest_updated = -1, float("inf")
        for probe in range(PROBES):
            offset = ((start + probe) % self._slots) * _SLOT.size
            stored, _, updated = _SLOT.unpack_from(self._map, offset)
            if stored in (key, _EMPTY_KEY):
                return offset
            if updated < oldest_updated:
                oldest_offset, oldest_updated = offset, updated
        _SLOT.pack_into(self._map, oldest_offset, _EMPTY_KEY, 0.0, 0.0)
        return oldest_offset

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


class SharedSlot:
    def __init__(self, table: mmap.mmap, offset: int, key: bytes) -> None:
        self._table = table
        self._offset = offset
        self._key = key

    def load(self) -> tuple[float, float] | None:
        """(tokens, updated), or None when the device has no bucket yet."""
        stored, tokens, updated = _SLOT.unpack_from(self._table, self._offset)
        return (tokens, updated) if stored == self._key else None

    def save(self, tokens: float, updated: float) -> None:
        _SLOT.pack_into(self._table, self._offset, self._key, tokens, updated)
