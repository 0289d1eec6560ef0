"""RFC 6962 vectors and property tests for the Merkle log (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ledger.domain.integrity.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    in_memory_source,
    inclusion_proof,
    leaf_hash,
    nodes_needed,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# Certificate Transparency's reference leaves and the root for each tree size 0..8.
DATA = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(bytes.fromhex(item)) for item in DATA]
INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CONSISTENCY = [
    (
        2,
        8,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]


def tree(n: int) -> tuple[int, object]:
    return in_memory_source(leaf_hash(i.to_bytes(4, "big")) for i in range(n))


def test_roots_match_rfc6962_vectors_for_every_size() -> None:
    assert EMPTY_ROOT.hex() == ROOTS[0]
    frontier = Frontier()
    for size in range(1, 9):
        frontier.append(LEAVES[size - 1])
        assert frontier.root().hex() == ROOTS[size]
        _, source = in_memory_source(LEAVES[:size])
        assert root_hash(size, source).hex() == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_proofs_match_vectors(index: int, size: int, expected: list[str]) -> None:
    _, source = in_memory_source(LEAVES[:size])
    proof = inclusion_proof(index, size, source)
    assert [item.hex() for item in proof] == expected
    verify_inclusion(LEAVES[index], index, size, proof, bytes.fromhex(ROOTS[size]))


@pytest.mark.parametrize(("first", "second", "expected"), CONSISTENCY)
def test_consistency_proofs_match_vectors(first: int, second: int, expected: list[str]) -> None:
    _, source = in_memory_source(LEAVES[:second])
    proof = consistency_proof(first, second, source)
    assert [item.hex() for item in proof] == expected
    verify_consistency(
        first, second, bytes.fromhex(ROOTS[first]), bytes.fromhex(ROOTS[second]), proof
    )


def flip(value: bytes, bit: int) -> bytes:
    changed = bytearray(value)
    changed[bit // 8 % len(changed)] ^= 1 << (bit % 8)
    return bytes(changed)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=300))
def test_every_inclusion_proof_verifies_and_any_change_fails(
    data: st.DataObject, size: int
) -> None:
    _, source = tree(size)
    root = root_hash(size, source)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    leaf = source(0, index)
    proof = inclusion_proof(index, size, source)
    verify_inclusion(leaf, index, size, proof, root)
    bit = data.draw(st.integers(min_value=0, max_value=255))
    with pytest.raises(ProofError):
        verify_inclusion(flip(leaf, bit), index, size, proof, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, proof, flip(root, bit))
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        tampered = [*proof]
        tampered[position] = flip(tampered[position], bit)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, tampered, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf, index, size, [*proof, bytes(32)], root)
    # A size is bound to its root (the checkpoint signs both): another size, with the root of
    # that size, must not verify this proof.
    _, big_source = tree(size + 3)
    for other in {size + 1, size + 3, *([size - 1] if size - 1 > index else [])}:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, other, proof, root_hash(other, big_source))
    if size > 1:
        wrong = (index + 1) % size
        with pytest.raises(ProofError):
            verify_inclusion(leaf, wrong, size, proof, root)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), second=st.integers(min_value=1, max_value=300))
def test_every_consistency_proof_verifies_and_any_change_fails(
    data: st.DataObject, second: int
) -> None:
    _, source = tree(second)
    first = data.draw(st.integers(min_value=1, max_value=second))
    first_root, second_root = root_hash(first, source), root_hash(second, source)
    proof = consistency_proof(first, second, source)
    verify_consistency(first, second, first_root, second_root, proof)
    bit = data.draw(st.integers(min_value=0, max_value=255))
    with pytest.raises(ProofError):
        verify_consistency(first, second, flip(first_root, bit), second_root, proof)
    with pytest.raises(ProofError):
        verify_consistency(first, second, first_root, flip(second_root, bit), proof)
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        tampered = [*proof]
        tampered[position] = flip(tampered[position], bit)
        with pytest.raises(ProofError):
            verify_consistency(first, second, first_root, second_root, tampered)
        with pytest.raises(ProofError):
            verify_consistency(first, second, first_root, second_root, proof[:-1])
    _, big_source = tree(second + 2)
    with pytest.raises(ProofError):
        verify_consistency(first, second + 1, first_root, root_hash(second + 1, big_source), proof)
    if first > 1:
        with pytest.raises(ProofError):
            verify_consistency(first - 1, second, root_hash(first - 1, source), second_root, proof)


def test_proofs_read_logarithmically_many_nodes() -> None:
    size = 1_000_003
    for index in (0, 1, size // 2, size - 1):
        needed = nodes_needed(lambda source, i=index: inclusion_proof(i, size, source))
        assert len(needed) <= 2 * size.bit_length()
    needed = nodes_needed(lambda source: consistency_proof(999_999, size, source))
    assert len(needed) <= 2 * size.bit_length()


def test_frontier_appends_write_few_nodes_and_reload_from_store() -> None:
    frontier = Frontier()
    stored: dict[tuple[int, int], bytes] = {}
    for i in range(1000):
        for level, index, digest in frontier.append(leaf_hash(i.to_bytes(4, "big"))):
            stored[(level, index)] = digest
    assert len(stored) == 2 * 1000 - bin(1000).count("1")  # leaves + complete interior nodes
    reloaded = Frontier.load(1000, lambda level, index: stored[(level, index)])
    assert reloaded.root() == frontier.root()
    assert root_hash(1000, lambda level, index: stored[(level, index)]) == frontier.root()
