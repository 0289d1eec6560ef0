"""C2SP tlog-tiles (pure): paths, the tiles of a size, entry bundles, proofs rebuilt from tiles."""

from __future__ import annotations

import hashlib

import pytest

from services.ledger.domain.integrity.merkle import (
    consistency_proof,
    in_memory_source,
    inclusion_proof,
    nodes_needed,
    root_hash,
)
from services.ledger.domain.integrity.tiles import (
    TileError,
    TileRef,
    decode_entry_bundle,
    encode_entry_bundle,
    encode_index,
    parse_tile_path,
    tile_source,
    tiles_for_nodes,
    tiles_for_size,
)


def test_index_encoding_and_paths_follow_the_spec() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(5) == "005"
    assert TileRef(1, 1234067, 17).path() == "tile/1/x001/x234/067.p/17"
    assert parse_tile_path("1/x001/x234/067.p/17") == TileRef(1, 1234067, 17)
    assert parse_tile_path("entries/000") == TileRef(-1, 0)


@pytest.mark.parametrize(
    "path",
    [
        "01/000",
        "64/000",
        "0/1",
        "0/x000",
        "0/000/001",
        "0/x001/x002",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/010",
        "tiles/000",
        "0",
    ],
)
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_a_tree_of_70000_has_the_tiles_the_spec_lists() -> None:
    tiles = list(tiles_for_size(70_000))
    level0 = [tile for tile in tiles if tile.level == 0]
    assert len([tile for tile in level0 if not tile.is_partial]) == 273
    assert [tile.width for tile in level0 if tile.is_partial] == [112]
    assert [(tile.level, tile.width) for tile in tiles if tile.level > 0] == [
        (1, 256),
        (1, 17),
        (2, 1),
    ]
    assert [tile.width for tile in tiles_for_size(256)] == [256, 1]


def test_entry_bundles_round_trip_and_refuse_truncation() -> None:
    ref = TileRef(-1, 0, 3)
    entries = [b"{}", b"", b'{"a":1}']
    data = encode_entry_bundle(entries)
    assert decode_entry_bundle(ref, data) == entries
    with pytest.raises(TileError, match="ends inside"):
        decode_entry_bundle(ref, data[:-1])
    with pytest.raises(TileError, match="holds 3 entries, not 4"):
        decode_entry_bundle(TileRef(-1, 0, 4), data)


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 1000, 65_536 + 300])
def test_proofs_rebuilt_from_tiles_equal_proofs_from_stored_nodes(size: int) -> None:
    leaves = [hashlib.sha256(b"\x00" + str(i).encode()).digest() for i in range(size)]
    _, stored = in_memory_source(leaves)

    def tiles_for(compute: object) -> object:
        keys = nodes_needed(compute)  # type: ignore[arg-type]
        refs = tiles_for_nodes(sorted(keys), size)
        fetched = {ref: [stored(level, index) for level, index in ref.node_keys()] for ref in refs}
        return tile_source(fetched)

    for first in sorted({1, size // 3 or 1, size - 1 or 1, size}):
        compute = lambda source, f=first: consistency_proof(f, size, source)  # noqa: E731
        assert compute(tiles_for(compute)) == consistency_proof(first, size, stored)
    for index in sorted({0, size // 2, size - 1}):
        compute = lambda source, i=index: inclusion_proof(i, size, source)  # noqa: E731
        assert compute(tiles_for(compute)) == inclusion_proof(index, size, stored)
    compute = lambda source: root_hash(size, source)  # noqa: E731
    assert compute(tiles_for(compute)) == root_hash(size, stored)
