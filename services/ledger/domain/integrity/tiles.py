"""C2SP tlog-tiles: tile paths, which tiles a tree size has, entry bundles, and a node source
that reads Merkle nodes out of fetched tiles (docs/verifiable-log.md). Pure.

A hash tile (L, N) holds the stored perfect nodes (8·L, 256·N + i); level 0 holds leaf hashes.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from services.ledger.domain.integrity.merkle import NodeKey, NodeSource, node_hash

TILE_WIDTH = 256
TILE_HEIGHT = 8
HASH_SIZE = 32
MAX_ENTRY_BYTES = 0xFFFF
_ELEMENT = re.compile(r"\d{3}")


class TileError(ValueError):
    """A malformed tile path or tile, or a tile the tree does not have."""


@dataclass(frozen=True, slots=True)
class TileRef:
    """Tile ``index`` of ``level``; ``width`` < 256 for a partial tile; ``level`` -1: entries."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def is_entries(self) -> bool:
        return self.level < 0

    @property
    def is_partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def start(self) -> int:
        """Index of the first node, at level 8·L (for entries: the first leaf)."""
        return self.index * TILE_WIDTH

    def path(self) -> str:
        level = "entries" if self.is_entries else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{level}/{encode_index(self.index)}{suffix}"

    def node_keys(self) -> list[NodeKey]:
        level = 0 if self.is_entries else self.level * TILE_HEIGHT
        return [(level, self.start + i) for i in range(self.width)]


def encode_index(index: int) -> str:
    """1234067 → ``x001/x234/067``."""
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join(["x" + group for group in groups[:-1]] + [groups[-1]])


def parse_tile_path(path: str) -> TileRef:
    """``<L>/<N>[.p/<W>]`` or ``entries/<N>[.p/<W>]`` (the part after ``tile/``)."""
    parts = path.split("/")
    if len(parts) < 2:
        raise TileError(f"not a tile path: {path!r}")
    level_text, rest = parts[0], parts[1:]
    if level_text == "entries":
        level = -1
    elif level_text.isdigit() and (level_text == "0" or not level_text.startswith("0")):
        level = int(level_text)
        if level > 63:
            raise TileError(f"tile level {level} is above 63")
    else:
        raise TileError(f"tile level is not a decimal number: {level_text!r}")
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        width_text = rest.pop()
        rest[-1] = rest[-1][: -len(".p")]
        if (
            not width_text.isdigit()
            or width_text.startswith("0")
            or not 1 <= int(width_text) <= 255
        ):
            raise TileError(f"partial tile width is not 1 to 255: {width_text!r}")
        width = int(width_text)
    if not rest or any(not _ELEMENT.fullmatch(element.removeprefix("x")) for element in rest):
        raise TileError(f"tile index is not zero-padded 3-digit elements: {'/'.join(rest)!r}")
    if any(not element.startswith("x") for element in rest[:-1]) or rest[-1].startswith("x"):
        raise TileError("all but the last tile index element must start with 'x'")
    index = int("".join(element.removeprefix("x") for element in rest))
    ref = TileRef(level, index, width)
    if ref.path() != "tile/" + path:
        raise TileError(f"not the canonical tile path: {path!r}")
    return ref


def tile_span(ref: TileRef) -> int:
    """How many leaves one hash of the tile covers."""
    return 1 if ref.is_entries else TILE_WIDTH**ref.level


def leaves_needed(ref: TileRef) -> int:
    """The smallest tree size that holds the whole tile."""
    return (ref.start + ref.width) * tile_span(ref)


def check_within(ref: TileRef, size: int) -> None:
    """A tile is served only if a tree of ``size`` (the signed one) has it as given."""
    if leaves_needed(ref) > size:
        raise TileError(f"{ref.path()} is beyond the signed tree size {size}")


def tiles_for_size(size: int, *, entries: bool = False) -> Iterator[TileRef]:
    """Every hash tile (and, with ``entries``, entry bundle) of a tree of ``size``."""
    level = 0
    while True:
        span = TILE_WIDTH**level
        nodes = size // span
        if nodes == 0:
            break
        full, partial = divmod(nodes, TILE_WIDTH)
        for index in range(full):
            yield TileRef(level, index)
            if entries and level == 0:
                yield TileRef(-1, index)
        if partial:
            yield TileRef(level, full, partial)
            if entries and level == 0:
                yield TileRef(-1, full, partial)
        level += 1


def partial_tiles(size: int, *, entries: bool = False) -> Iterator[TileRef]:
    """Only the partial tiles of a tree of ``size`` (at most one per level)."""
    level = 0
    while size // TILE_WIDTH**level:
        full, partial = divmod(size // TILE_WIDTH**level, TILE_WIDTH)
        if partial:
            yield TileRef(level, full, partial)
            if entries and level == 0:
                yield TileRef(-1, full, partial)
        level += 1


def tile_ref_for_size(level: int, index: int, size: int) -> TileRef:
    """Tile (level, index) as a tree of ``size`` has it: full or partial."""
    nodes = size // TILE_WIDTH**level
    width = min(TILE_WIDTH, nodes - index * TILE_WIDTH)
    if width <= 0:
        raise TileError(f"a tree of size {size} has no tile {index} at level {level}")
    return TileRef(level, index, width)


def encode_hash_tile(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)


def decode_hash_tile(ref: TileRef, data: bytes) -> list[bytes]:
    if len(data) != ref.width * HASH_SIZE:
        raise TileError(f"{ref.path()} has {len(data)} bytes, not {ref.width * HASH_SIZE}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    parts = []
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise TileError(f"an entry of {len(entry)} bytes does not fit an entry bundle")
        parts.append(struct.pack(">H", len(entry)) + entry)
    return b"".join(parts)


def decode_entry_bundle(ref: TileRef, data: bytes) -> list[bytes]:
    entries: list[bytes] = []
    position = 0
    while position < len(data):
        if position + 2 > len(data):
            raise TileError(f"{ref.path()} ends inside a length prefix")
        (length,) = struct.unpack_from(">H", data, position)
        position += 2
        if position + length > len(data):
            raise TileError(f"{ref.path()} ends inside entry {len(entries)}")
        entries.append(data[position : position + length])
        position += length
    if len(entries) != ref.width:
        raise TileError(f"{ref.path()} holds {len(entries)} entries, not {ref.width}")
    return entries


def tiles_for_nodes(keys: Sequence[NodeKey], size: int) -> set[TileRef]:
    """The hash tiles of a tree of ``size`` that hold or can rebuild each node."""
    refs = set()
    for level, index in keys:
        tile_level, height = divmod(level, TILE_HEIGHT)
        tile_index = (index << height) // TILE_WIDTH
        refs.add(tile_ref_for_size(tile_level, tile_index, size))
    return refs


def tile_source(tiles: Mapping[TileRef, Sequence[bytes]]) -> NodeSource:
    """Merkle nodes rebuilt from fetched tiles: node (l, i) hashes up its tile's l mod 8 levels."""
    by_position = {(ref.level, ref.index): hashes for ref, hashes in tiles.items()}

    def source(level: int, index: int) -> bytes:
        tile_level, height = divmod(level, TILE_HEIGHT)
        first = index << height
        hashes = by_position.get((tile_level, first // TILE_WIDTH))
        offset = first % TILE_WIDTH
        if hashes is None or offset + (1 << height) > len(hashes):
            raise LookupError(f"no fetched tile holds Merkle node ({level}, {index})")
        return _subtree(hashes[offset : offset + (1 << height)])

    return source


def _subtree(hashes: Sequence[bytes]) -> bytes:
    layer = list(hashes)
    while len(layer) > 1:
        layer = [node_hash(layer[i], layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]
