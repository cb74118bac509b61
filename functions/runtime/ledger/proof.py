"""Inclusion proofs: one record, the signed digest that covers it, and the log2-sized path between them.

A proof is checked with the public key alone: no export, no other entries.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from functions.runtime.ledger import merkle
from functions.runtime.ledger.chain import LedgerEntry, check_entry
from functions.runtime.ledger.digest import SignedDigest, digest_leaves, leaf_index, verify_signature
from functions.runtime.ledger.errors import ProofError
from functions.runtime.ledger.export import Export


class InclusionProof(BaseModel):
    """``entry`` is leaf ``leaf_index`` of the ``tree_size``-leaf tree whose root ``digest`` signs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry: LedgerEntry
    digest: SignedDigest
    leaf_index: int = Field(ge=0, strict=True)
    tree_size: int = Field(ge=1, strict=True)
    path: list[str]  # hex sibling hashes, leaf upwards


def prove(export: Export, record_id: str) -> InclusionProof:
    """The inclusion proof of ``record_id`` in the first digest that covers its entry.

    Raises :class:`ProofError` when the record is unknown, not yet covered by a digest, or when the export's
    entries do not rebuild that digest's tree (then the export fails verification too).
    """
    entry = next((e for e in export.all_entries() if e.record_id == record_id), None)
    if entry is None:
        raise ProofError(f"no entry holds record {record_id!r}")
    for digest in export.digests:
        try:
            body = digest.signed_body()
        except ValueError:
            raise ProofError(f"digest {digest.body.seq}'s body_canonical is not a digest body") from None
        index = leaf_index(body.ranges, entry.chain_id, entry.seq)
        if index is not None:
            break
    else:
        raise ProofError(f"{entry.chain_id}#{entry.seq} is not covered by a digest yet")
    by_seq = {(e.chain_id, e.seq): e for e in reversed(list(export.all_entries()))}
    covered: list[LedgerEntry] = []
    for chain_id, (first, last) in body.ranges.items():
        for seq in range(first, last + 1):
            if (found := by_seq.get((chain_id, seq))) is None:
                raise ProofError(f"the export lacks entry {chain_id}#{seq}, which digest {body.seq} covers")
            covered.append(found)
    leaves = digest_leaves(covered, body.heads)
    path = merkle.inclusion_proof(index, leaves)
    proof = InclusionProof(
        entry=entry, digest=digest, leaf_index=index, tree_size=len(leaves), path=[p.hex() for p in path]
    )
    if (reason := _path_reason(proof, body.merkle_root, body.leaf_count)) is not None:
        raise ProofError(f"digest {body.seq} does not sign the export's entries: {reason}")
    return proof


def _path_reason(proof: InclusionProof, merkle_root: str, leaf_count: int) -> str | None:
    if proof.tree_size != leaf_count:
        return f"tree_size {proof.tree_size} is not the digest's leaf_count {leaf_count}"
    try:
        path = [bytes.fromhex(node) for node in proof.path]
    except ValueError:
        return "path holds text that is not hex"
    verified = merkle.verify_inclusion(
        leaf_hash=merkle.leaf_hash(bytes.fromhex(proof.entry.entry_hash)),
        index=proof.leaf_index,
        size=proof.tree_size,
        proof=path,
        root=bytes.fromhex(merkle_root),
    )
    return None if verified else "path does not lead from the entry's hash to the digest's merkle_root"


def verify_proof(proof: InclusionProof, public_key_pem: str) -> str | None:
    """Why the proof fails, or None: the entry is intact, it is the leaf at ``leaf_index``, the path leads to
    the digest's Merkle root, and the digest's signature holds under ``public_key_pem``."""
    if (reason := check_entry(proof.entry)) is not None:
        return f"entry: {reason}"
    if not verify_signature(proof.digest, public_key_pem):
        return "digest signature does not verify under the public key"
    try:
        body = proof.digest.signed_body()
    except (ValueError, ValidationError):
        return "digest body_canonical is not a digest body"
    entry = proof.entry
    index = leaf_index(body.ranges, entry.chain_id, entry.seq)
    if index is None:
        return f"digest {body.seq} does not cover {entry.chain_id}#{entry.seq}"
    if index != proof.leaf_index:
        return f"leaf_index {proof.leaf_index} is not where digest {body.seq} holds {entry.chain_id}#{entry.seq}"
    return _path_reason(proof, body.merkle_root, body.leaf_count)
