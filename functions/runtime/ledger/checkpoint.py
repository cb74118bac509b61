"""Checkpoints: what a verifier last verified, so that a later export that rolls the ledger back is caught.

An export alone cannot show that its newest digest, and the entries only that digest covers, were dropped: what
is left is a consistent, older ledger. A verifier that keeps a checkpoint (as a transparency log's witness
does) can. The checkpoint holds the newest digest it verified and the root of the *digest log*: an RFC 6962
Merkle tree whose leaf i is digest i's ``digest_hash`` (each digest signs its entries, its chain heads and
the digest before it, so the log's root commits to the whole ledger up to it). A later export must reach at
least that digest, and its digest log must extend the checkpoint's, which an RFC 6962 consistency proof
from the old tree size to the new one shows. The checkpoint also pins the signing key it verified with:
trust on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from functions.runtime.ledger import merkle
from functions.runtime.ledger.chain import Sha256Hex, UtcTimestamp
from functions.runtime.ledger.digest import SignedDigest, key_fingerprint
from functions.runtime.ledger.export import Export


class Checkpoint(BaseModel):
    """The newest digest a verifier verified, the digest log's size and root up to it, and the key it trusted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    digest_seq: int = Field(ge=1, strict=True)
    digest_hash: Sha256Hex
    digest_created_at: UtcTimestamp
    tree_size: int = Field(ge=1, strict=True)
    root: Sha256Hex
    key_fingerprint: Sha256Hex


def digest_log_leaves(digests: Sequence[SignedDigest]) -> list[bytes]:
    """The digest log's leaf hashes: each digest's ``digest_hash``, in the export's order."""
    return [merkle.leaf_hash(bytes.fromhex(digest.digest_hash)) for digest in digests]


def checkpoint_of(export: Export) -> Checkpoint | None:
    """The checkpoint to keep after ``export`` verified; None when it has no digest (nothing signed to pin)."""
    if not export.digests:
        return None
    newest = export.digests[-1]
    return Checkpoint(
        digest_seq=newest.body.seq,
        digest_hash=newest.digest_hash,
        digest_created_at=newest.body.created_at,
        tree_size=len(export.digests),
        root=merkle.root(digest_log_leaves(export.digests)).hex(),
        key_fingerprint=key_fingerprint(export.public_key_pem),
    )


def rollback_reasons(export: Export, checkpoint: Checkpoint) -> list[str]:
    """Why ``export`` does not extend what ``checkpoint`` verified (empty when it does)."""
    reasons: list[str] = []
    try:
        fingerprint: str | None = key_fingerprint(export.public_key_pem)
    except ValueError:
        fingerprint = None  # reported at the export's key line
    if fingerprint is not None and fingerprint != checkpoint.key_fingerprint:
        reasons.append(
            f"the export's key (fingerprint {fingerprint[:16]}) is not the key the checkpoint trusted "
            f"({checkpoint.key_fingerprint[:16]})"
        )
    newest = export.digests[-1].body.seq if export.digests else 0
    if newest < checkpoint.digest_seq:
        reasons.append(
            f"rolled back: the newest digest is {newest or 'none'}, the checkpoint already verified digest "
            f"{checkpoint.digest_seq} (dropped digests and the entries only they cover)"
        )
    size = len(export.digests)
    if size < checkpoint.tree_size:
        if not reasons:
            reasons.append(f"rolled back: {size} digests, the checkpoint already verified {checkpoint.tree_size}")
        return reasons
    leaves = digest_log_leaves(export.digests)
    proof = merkle.consistency_proof(checkpoint.tree_size, leaves)
    if not merkle.verify_consistency(
        size1=checkpoint.tree_size,
        size2=size,
        root1=bytes.fromhex(checkpoint.root),
        root2=merkle.root(leaves),
        proof=proof,
    ):
        reasons.append(
            f"the digest log does not extend the checkpoint's (size {checkpoint.tree_size}, root "
            f"{checkpoint.root[:16]}): digests it verified were replaced"
        )
    return reasons
