from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from functions.runtime.ledger import merkle

pytestmark = pytest.mark.unit

RFC6962_VECTORS = (Path(__file__).resolve().parents[3] / ".." / "shared" / "testdata" / "rfc6962").resolve()

# The leaves of the RFC 6962 reference tests (certificate-transparency, transparency-dev/merkle).
REFERENCE_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
# Roots of the first 1..8 reference leaves.
REFERENCE_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAF_HASHES = [merkle.leaf_hash(data) for data in REFERENCE_LEAVES]


def vectors(kind: str) -> list[Any]:
    files = sorted((RFC6962_VECTORS / kind).rglob("*.json"))
    if not files:
        return [pytest.param(None, id="shared-testdata-missing")]
    return [pytest.param(path, id=str(path.relative_to(RFC6962_VECTORS / kind))) for path in files]


def load(path: Path | None) -> dict[str, Any]:
    if path is None:
        pytest.skip(f"shared testdata not beside the checkout: {RFC6962_VECTORS}")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def reference_root(leaf_hashes: list[bytes]) -> bytes:
    """MTH exactly as RFC 6962 §2.1 writes it, recursively, to check the iterative root against."""
    if not leaf_hashes:
        return merkle.EMPTY_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = 1
    while k * 2 < len(leaf_hashes):
        k *= 2
    return merkle.node_hash(reference_root(leaf_hashes[:k]), reference_root(leaf_hashes[k:]))


@pytest.mark.parametrize("path", vectors("inclusion"))
def test_rfc6962_inclusion_vector(path: Path | None) -> None:
    # GIVEN an inclusion proof vector (base64 hashes; proof may be null)
    case = load(path)

    # WHEN it is verified
    accepted = merkle.verify_inclusion(
        leaf_hash=b64(case["leafHash"]),
        index=case["leafIdx"],
        size=case["treeSize"],
        proof=[b64(node) for node in case["proof"] or []],
        root=b64(case["root"]),
    )

    # THEN it is accepted exactly when the vector expects no error
    assert accepted is not case["wantErr"], case["desc"]


@pytest.mark.parametrize("path", vectors("consistency"))
def test_rfc6962_consistency_vector(path: Path | None) -> None:
    # GIVEN a consistency proof vector
    case = load(path)

    # WHEN it is verified
    accepted = merkle.verify_consistency(
        size1=case["size1"],
        size2=case["size2"],
        root1=b64(case["root1"]),
        root2=b64(case["root2"]),
        proof=[b64(node) for node in case["proof"] or []],
    )

    # THEN it is accepted exactly when the vector expects no error
    assert accepted is not case["wantErr"], case["desc"]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    # GIVEN no leaves
    # WHEN the root is computed
    # THEN it is SHA-256 of the empty string
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_tree_roots(size: int) -> None:
    # GIVEN the first `size` reference leaves
    # WHEN the root is computed
    # THEN it is the reference root
    assert merkle.root(LEAF_HASHES[:size]).hex() == REFERENCE_ROOTS[size - 1]


def test_small_trees_split_at_the_largest_power_of_two() -> None:
    # GIVEN three and five leaves
    a, b, c, d, e = LEAF_HASHES[:5]

    # WHEN their roots are computed
    # THEN the odd leaf joins at the top, as MTH's split at the largest power of two below n puts it
    assert merkle.root([a, b, c]) == merkle.node_hash(merkle.node_hash(a, b), c)
    assert merkle.root([a, b, c, d, e]) == merkle.node_hash(
        merkle.node_hash(merkle.node_hash(a, b), merkle.node_hash(c, d)), e
    )


def test_reference_proofs_match_the_vectors() -> None:
    # GIVEN the 8-leaf reference tree
    # WHEN the audit path of leaf 0 and the consistency proof from 5 to 8 leaves are made
    path = merkle.inclusion_proof(0, LEAF_HASHES)
    consistency = merkle.consistency_proof(5, LEAF_HASHES)

    # THEN they are the published ones
    assert [base64.b64encode(node).decode() for node in path] == [
        "lqKW0iTyhcZ77pPDD4owkVfw2qNdxbh+QQt4YwoJz8c=",
        "Xwg/ChozygdqlSeYMlgNs+DvRYS9/x9UyKNg9Q3jAx4=",
        "a0eq8p7jwq+a+Im8H7klTavTEXfxYjLdaqsDXKOb9uQ=",
    ]
    assert merkle.verify_consistency(
        size1=5, size2=8, root1=merkle.root(LEAF_HASHES[:5]), root2=merkle.root(LEAF_HASHES), proof=consistency
    )
    assert len(consistency) == 4


def test_every_proof_of_every_small_tree_verifies() -> None:
    for size in range(1, 34):
        # GIVEN a tree of `size` leaves
        leaves = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(size)]
        tree_root = merkle.root(leaves)

        # THEN the iterative root is the recursive MTH, every audit path and every consistency proof verifies
        assert tree_root == reference_root(leaves)
        for index in range(size):
            path = merkle.inclusion_proof(index, leaves)
            assert merkle.verify_inclusion(leaf_hash=leaves[index], index=index, size=size, proof=path, root=tree_root)
        for old in range(1, size + 1):
            proof = merkle.consistency_proof(old, leaves)
            assert merkle.verify_consistency(
                size1=old, size2=size, root1=merkle.root(leaves[:old]), root2=tree_root, proof=proof
            )


def test_inclusion_rejects_wrong_length_index_and_size() -> None:
    # GIVEN a valid audit path for leaf 2 of the 8-leaf tree
    root = merkle.root(LEAF_HASHES)
    path = merkle.inclusion_proof(2, LEAF_HASHES)

    def verifies(**changes: Any) -> bool:
        args: dict[str, Any] = {"leaf_hash": LEAF_HASHES[2], "index": 2, "size": 8, "proof": path, "root": root}
        return merkle.verify_inclusion(**(args | changes))

    # THEN only the exact claim verifies
    assert verifies()
    assert not verifies(proof=path[:-1])
    assert not verifies(proof=[*path, path[-1]])
    assert not verifies(index=8)
    assert not verifies(index=-1)
    assert not verifies(size=4)
    assert not verifies(size=16)
    assert not verifies(index=3)
    assert not verifies(leaf_hash=LEAF_HASHES[3])


def test_inner_node_is_not_accepted_as_a_leaf() -> None:
    # GIVEN the 4-leaf tree and its inner node over leaves 0 and 1
    leaves = LEAF_HASHES[:4]
    root = merkle.root(leaves)
    inner = merkle.node_hash(leaves[0], leaves[1])
    sibling = merkle.node_hash(leaves[2], leaves[3])

    # WHEN the inner node is presented as leaf 0 with the remaining (shortened) path
    # THEN it fails for the tree's real size: the path is one hash short
    assert not merkle.verify_inclusion(leaf_hash=inner, index=0, size=4, proof=[sibling], root=root)

    # AND data made of the two child hashes does not hash to the inner node: leaves are prefixed 0x00, nodes 0x01
    forged_leaf = merkle.leaf_hash(leaves[0] + leaves[1])
    assert forged_leaf != inner
    assert not merkle.verify_inclusion(leaf_hash=forged_leaf, index=0, size=2, proof=[sibling], root=root)


def test_proof_makers_refuse_impossible_requests() -> None:
    # GIVEN the 8-leaf tree
    # WHEN proofs are asked for a leaf or a size it does not have
    # THEN they are refused
    with pytest.raises(IndexError):
        merkle.inclusion_proof(8, LEAF_HASHES)
    with pytest.raises(ValueError, match="0 < size1"):
        merkle.consistency_proof(0, LEAF_HASHES)
    with pytest.raises(ValueError, match="0 < size1"):
        merkle.consistency_proof(9, LEAF_HASHES)


def test_proofs_at_100k_leaves_are_log_sized_and_verify() -> None:
    # GIVEN a tree of 100,000 leaves
    size = 100_000
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    tree_root = merkle.root(leaves)

    # WHEN proofs are made for the first, a middle and the last leaf, and for growth from 65,537 leaves
    paths = {index: merkle.inclusion_proof(index, leaves) for index in (0, 54_321, size - 1)}
    consistency = merkle.consistency_proof(65_537, leaves)

    # THEN each has at most ceil(log2 n) = 17 hashes and verifies
    for index, path in paths.items():
        assert len(path) <= 17
        assert merkle.verify_inclusion(leaf_hash=leaves[index], index=index, size=size, proof=path, root=tree_root)
    assert len(consistency) <= 2 * 17
    assert merkle.verify_consistency(
        size1=65_537, size2=size, root1=merkle.root(leaves[:65_537]), root2=tree_root, proof=consistency
    )
