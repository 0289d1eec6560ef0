"""RFC 6962 / RFC 9162 Merkle tree over ledger entries in seq order (pure).

Leaves are entry hashes (already SHA-256(0x00 ‖ …)); interior nodes are
SHA-256(0x01 ‖ left ‖ right). The log stores every *perfect* subtree hash as a node
(level, index) covering leaves [index·2^level, (index+1)·2^level): appending costs O(1)
amortised writes, and a root or a proof needs only O(log n) of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

NodeKey = tuple[int, int]  # (level, index)
NodeSource = Callable[[int, int], bytes]
EMPTY_ROOT = hashlib.sha256(b"").digest()


class ProofError(ValueError):
    """A proof, size or root that does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """The largest power of two strictly smaller than ``size`` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


@dataclass
class Frontier:
    """The right edge of the tree: the perfect subtrees whose sizes make up ``size``."""

    size: int = 0
    nodes: dict[int, bytes] = field(default_factory=dict)  # level → hash, one per set bit

    @staticmethod
    def keys_for(size: int) -> list[NodeKey]:
        keys = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                keys.append((level, start >> level))
                start += 1 << level
        return keys

    @classmethod
    def load(cls, size: int, source: NodeSource) -> Frontier:
        return cls(size, {level: source(level, index) for level, index in cls.keys_for(size)})

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the new perfect nodes (level, index, hash) to store."""
        created = [(0, self.size, leaf)]
        carry, level, index = leaf, 0, self.size
        while level in self.nodes and index & 1:
            carry = node_hash(self.nodes.pop(level), carry)
            level, index = level + 1, index >> 1
            created.append((level, index, carry))
        self.nodes[level] = carry
        self.size += 1
        return created

    def root(self) -> bytes:
        if self.size == 0:
            return EMPTY_ROOT
        levels = sorted(self.nodes)
        digest = self.nodes[levels[0]]
        for level in levels[1:]:
            digest = node_hash(self.nodes[level], digest)
        return digest


def subtree_hash(start: int, end: int, source: NodeSource) -> bytes:
    """MTH(D[start:end]) for the ranges RFC 6962's recursion produces (start aligned)."""
    size = end - start
    if size <= 0:
        raise ValueError("empty range")
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return source(level, start >> level)
    k = _split(size)
    return node_hash(subtree_hash(start, start + k, source), subtree_hash(start + k, end, source))


def root_hash(size: int, source: NodeSource) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, source)


def inclusion_proof(index: int, size: int, source: NodeSource) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]), leaf to root."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree_hash(start + k, end, source))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, source))
            start += k
    proof.reverse()
    return proof


def consistency_proof(first: int, second: int, source: NodeSource) -> list[bytes]:
    """RFC 6962 PROOF(first, D[0:second])."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to {second}")
    proof: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end, source))
            break
        k = _split(n)
        if m <= k:
            proof.append(subtree_hash(start + k, end, source))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, source))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def inclusion_proof_length(index: int, size: int) -> int:
    """How many hashes PATH(index, D[0:size]) has."""
    length, start, end = 0, 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            end = start + k
        else:
            start += k
        length += 1
    return length


def consistency_proof_length(first: int, second: int) -> int:
    """How many hashes PROOF(first, D[0:second]) has."""
    return len(consistency_proof(first, second, lambda level, index: b""))


def nodes_needed(compute: Callable[[NodeSource], object]) -> set[NodeKey]:
    """Which stored nodes a computation reads, so an adapter can fetch them in one query."""
    needed: set[NodeKey] = set()

    def record(level: int, index: int) -> bytes:
        needed.add((level, index))
        return bytes(32)

    compute(record)
    return needed


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError unless the whole path leads to ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        _check_hash(sibling, "inclusion proof hash")
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            digest = node_hash(digest, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if digest != root:
        raise ProofError("inclusion proof does not lead to the checkpoint's root hash")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError unless both roots are proven."""
    if not 0 < first <= second:
        raise ProofError(f"sizes {first} → {second} cannot be consistent")
    if first == second:
        if proof:
            raise ProofError("a consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError("equal tree sizes with different root hashes")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    for item in path:
        _check_hash(item, "consistency proof hash")
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for item in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(item, fr)
            sr = node_hash(item, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, item)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != first_root:
        raise ProofError(f"consistency proof does not reproduce the root of size {first}")
    if sr != second_root:
        raise ProofError(f"consistency proof does not reproduce the root of size {second}")


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != 32:
        raise ProofError(f"{what} has {len(value)} bytes, not 32")


def in_memory_source(leaves: Iterable[bytes]) -> tuple[int, NodeSource]:
    """Build every perfect node of a small tree in memory (tests and offline tools)."""
    frontier = Frontier()
    nodes: dict[NodeKey, bytes] = {}
    for leaf in leaves:
        for level, index, digest in frontier.append(leaf):
            nodes[(level, index)] = digest
    return frontier.size, lambda level, index: nodes[(level, index)]
