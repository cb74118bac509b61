"""Merkle trees as RFC 6962 / RFC 9162 §2.1 define them: hashes, roots, inclusion and consistency proofs.

Leaves and inner nodes are hashed with different one-byte prefixes (0x00 for a leaf, 0x01 for a node).
That domain separation is what stops an inner node from being presented as a leaf: a record's leaf hash is
SHA-256(0x00 || data), and making it equal some SHA-256(0x01 || left || right) would need a SHA-256
collision. The proof verifiers also bind a proof to the tree size, so a shortened path that starts at an
inner node fails for the size the digest signed.

Roots are computed level by level (pair neighbours, carry an odd last node up unchanged), which gives the
same tree as the RFC's largest-power-of-two split, in linear time and without recursion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_sha256 = hashlib.sha256
HASH_SIZE = 32
EMPTY_ROOT = _sha256(b"").digest()
"""MTH({}): the root of the empty tree."""


def leaf_hash(data: bytes) -> bytes:
    """MTH of one leaf: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An inner node: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _parent_level(level: Sequence[bytes]) -> list[bytes]:
    parents = [_sha256(b"\x01" + left + right).digest() for left, right in zip(level[0::2], level[1::2], strict=False)]
    if len(level) % 2:
        parents.append(level[-1])  # an odd last node is carried up unchanged
    return parents


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the leaves (already leaf-hashed); the empty tree's is SHA-256 of nothing."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = leaf_hashes
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path of leaf ``index`` (RFC 6962 PATH), sibling hashes from the leaf up: ceil(log2 n) at most."""
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf {index} is outside a tree of {len(leaf_hashes)} leaves")
    path: list[bytes] = []
    level = leaf_hashes
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _parent_level(level)
        index >>= 1
    return path


def verify_inclusion(*, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` lead from the leaf at ``index`` of a ``size``-leaf tree to ``root``?

    Fails for an index outside the tree and for a path of the wrong length (too short, too long, or one that
    starts from an inner node instead of the leaf).
    """
    if not 0 <= index < size or len(leaf_hash) != HASH_SIZE:
        return False
    fn, sn = index, size - 1
    computed = leaf_hash
    for sibling in proof:
        if sn == 0 or len(sibling) != HASH_SIZE:
            return False
        if fn & 1 or fn == sn:
            computed = node_hash(sibling, computed)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            computed = node_hash(computed, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and computed == root


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """RFC 6962 PROOF(m, D[n]): the nodes that show the first ``size1`` leaves are a prefix of these leaves."""
    size2 = len(leaf_hashes)
    if not 0 < size1 <= size2:
        raise ValueError(f"a consistency proof needs 0 < size1 <= {size2}, not {size1}")
    # SUBPROOF unrolled: walk down from the whole tree, noting the sibling subtree at each split.
    nodes: list[bytes] = []
    low, high, m = 0, size2, size1
    old_root_is_a_node = True  # RFC 6962's "b": the old tree is a complete subtree of the new one
    while m != high - low:
        k = _largest_power_of_two_below(high - low)
        if m <= k:
            nodes.append(root(leaf_hashes[low + k : high]))
            high = low + k
        else:
            nodes.append(root(leaf_hashes[low : low + k]))
            low, m = low + k, m - k
            old_root_is_a_node = False
    if not old_root_is_a_node:
        nodes.append(root(leaf_hashes[low:high]))
    nodes.reverse()
    return nodes


def verify_consistency(*, size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: is the ``size2``-leaf tree with ``root2`` an append-only extension of ``root1``?

    Equal sizes need an empty proof and equal roots (an empty tree's root is SHA-256 of nothing). A proof
    from the empty tree proves nothing and is refused, as RFC 9162 defines proofs only for 0 < size1 < size2.
    """
    if size1 < 0 or size2 < 0:
        return False
    if size1 == size2:
        if proof:
            return False
        return root1 == root2 == EMPTY_ROOT if size1 == 0 else root1 == root2
    if size1 == 0 or size1 > size2 or not proof or any(len(node) != HASH_SIZE for node in proof):
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)  # the old root is itself a node of the new tree
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first == root1 and second == root2
