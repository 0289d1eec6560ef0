"""``custody monitor``: follow a log's public read path (c2sp.org/tlog-tiles) as an outsider.

Each run fetches the checkpoint, checks its signature (and a policy's witness quorum), proves
it consistent with the last checkpoint seen (from hash tiles), and, with an auditor token,
re-hashes every new entry of the entry bundles: each must hash to its leaf in the level-0
tiles, and all the leaves together to the checkpoint's root. The state file keeps what was
verified: the size and root, and the compact range of the leaves checked so far.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.ledger.domain.integrity.bundle import MalformedBundle, load_json, parse_served_entry
from services.ledger.domain.integrity.checkpoint import Checkpoint, CheckpointError
from services.ledger.domain.integrity.merkle import (
    Frontier,
    consistency_proof,
    leaf_hash,
    nodes_needed,
    root_hash,
)
from services.ledger.domain.integrity.tiles import (
    TILE_WIDTH,
    TileError,
    TileRef,
    decode_entry_bundle,
    decode_hash_tile,
    tile_ref_for_size,
    tile_source,
    tiles_for_nodes,
)
from services.ledger.domain.integrity.verification import (
    Trust,
    VerificationError,
    check_consistency,
    trusted_checkpoint,
)

STATE_FORMAT = "battery-custody-monitor/1"


class MonitorError(RuntimeError):
    """The log misbehaved or could not be read; the message says exactly what."""


@dataclass
class MonitorState:
    origin: str = ""
    size: int = 0
    root: bytes = b""
    entries_checked: int = 0
    frontier: dict[int, bytes] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "origin": self.origin,
            "size": self.size,
            "root": base64.b64encode(self.root).decode(),
            "entries_checked": self.entries_checked,
            "frontier": {
                str(level): base64.b64encode(digest).decode()
                for level, digest in self.frontier.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MonitorState:
        if data.get("format") != STATE_FORMAT:
            raise MonitorError(f"the state file is not a {STATE_FORMAT} file")
        return cls(
            origin=data["origin"],
            size=int(data["size"]),
            root=base64.b64decode(data["root"]),
            entries_checked=int(data["entries_checked"]),
            frontier={
                int(level): base64.b64decode(digest) for level, digest in data["frontier"].items()
            },
        )

    @classmethod
    def load(cls, path: Path) -> MonitorState | None:
        if not path.exists():
            return None
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise MonitorError(f"cannot read the state file {path}: {error}") from error

    def save(self, path: Path) -> None:
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        temporary.replace(path)


@dataclass(frozen=True, slots=True)
class MonitorReport:
    checkpoint: Checkpoint
    cosigned_by: tuple[str, ...]
    previous_size: int
    entries_checked: int  # by this run


class LogFollower:
    def __init__(
        self,
        client: httpx.Client,
        trust: Trust,
        *,
        entries: bool,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self._client = client
        self._trust = trust
        self._entries = entries
        self._on_progress = on_progress or (lambda done, total: None)

    def follow(self, state: MonitorState) -> MonitorReport:
        """Check the log's growth since ``state``; ``state`` is updated only as far as verified."""
        note = self._get("checkpoint").decode()
        try:
            checkpoint, cosigned = trusted_checkpoint(note, self._trust)
        except CheckpointError as error:
            raise MonitorError(f"checkpoint: {error}") from error
        previous = state.size
        if state.origin and checkpoint.origin != state.origin:
            raise MonitorError(
                f"the log's origin is now {checkpoint.origin!r}, not {state.origin!r}"
            )
        if checkpoint.tree_size < state.size:
            raise MonitorError(
                f"the log shrank: checkpoint size {checkpoint.tree_size} after {state.size}"
            )
        if checkpoint.tree_size == state.size and checkpoint.root_hash != state.root:
            raise MonitorError(
                f"split view: checkpoint size {state.size} now has a different root hash"
            )
        if state.size and checkpoint.tree_size > state.size:
            self._check_consistency(state, checkpoint)
        elif not state.size:
            self._check_root(checkpoint)
        checked = self._check_entries(state, checkpoint) if self._entries else 0
        state.origin, state.size, state.root = (
            checkpoint.origin,
            checkpoint.tree_size,
            checkpoint.root_hash,
        )
        return MonitorReport(checkpoint, tuple(cosigned), previous, checked)

    # --- the tree, from hash tiles ------------------------------------------------------------

    def _source_for(self, size: int, compute: Callable[[Any], object]) -> Any:
        refs = tiles_for_nodes(sorted(nodes_needed(compute)), size)
        return tile_source({ref: self._hashes(ref) for ref in refs})

    def _check_root(self, checkpoint: Checkpoint) -> None:
        size = checkpoint.tree_size
        if size == 0:
            return
        source = self._source_for(size, lambda source: root_hash(size, source))
        if root_hash(size, source) != checkpoint.root_hash:
            raise MonitorError(f"the hash tiles do not reproduce the root of size {size}")

    def _check_consistency(self, state: MonitorState, checkpoint: Checkpoint) -> None:
        old, new = state.size, checkpoint.tree_size

        def compute(source: Any) -> object:
            return consistency_proof(old, new, source)

        proof = consistency_proof(old, new, self._source_for(new, compute))
        try:
            check_consistency(Checkpoint(state.origin, old, state.root), checkpoint, proof)
        except VerificationError as error:
            raise MonitorError(
                f"checkpoint size {new} is not consistent with size {old} seen before: {error}"
            ) from error

    # --- the entries, from entry bundles -------------------------------------------------------

    def _check_entries(self, state: MonitorState, checkpoint: Checkpoint) -> int:
        size = checkpoint.tree_size
        frontier = Frontier(state.entries_checked, dict(state.frontier))
        start = state.entries_checked
        for tile_index in range(start // TILE_WIDTH, -(-size // TILE_WIDTH)):
            ref = tile_ref_for_size(0, tile_index, size)
            leaves = self._hashes(ref)
            bundle = self._get(TileRef(-1, ref.index, ref.width).path())
            try:
                entries = decode_entry_bundle(TileRef(-1, ref.index, ref.width), bundle)
            except TileError as error:
                raise MonitorError(str(error)) from error
            for offset, data in enumerate(entries):
                seq = ref.start + offset
                if seq < frontier.size:
                    continue
                self._check_entry(seq, data, leaves[offset])
                frontier.append(leaves[offset])
            self._on_progress(frontier.size - start, size - start)
        if frontier.root() != checkpoint.root_hash:
            raise MonitorError(
                f"the leaves of entries 0..{size - 1} do not hash to the checkpoint's root"
            )
        state.entries_checked, state.frontier = frontier.size, dict(frontier.nodes)
        return size - start

    @staticmethod
    def _check_entry(seq: int, data: bytes, leaf: bytes) -> None:
        if leaf_hash(data) != leaf:
            raise MonitorError(
                f"entry seq {seq}: its content does not hash to leaf {seq} of the log"
            )
        try:
            document = load_json(data)
            entry = parse_served_entry({"entry": document, "entry_hash": leaf.hex()}, seq)
        except (MalformedBundle, ValueError) as error:
            raise MonitorError(f"entry seq {seq}: {error}") from error
        if entry.seq != seq:
            raise MonitorError(f"entry at leaf {seq} says it is seq {entry.seq}")

    # --- HTTP ---------------------------------------------------------------------------------

    def _hashes(self, ref: TileRef) -> list[bytes]:
        try:
            return decode_hash_tile(ref, self._get(ref.path()))
        except TileError as error:
            raise MonitorError(str(error)) from error

    def _get(self, path: str) -> bytes:
        try:
            response = self._client.get(path)
        except httpx.HTTPError as error:
            raise MonitorError(f"cannot fetch {path}: {error}") from error
        if response.status_code != 200:
            raise MonitorError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
        return response.content
