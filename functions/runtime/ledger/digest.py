"""Signed digests: a Merkle root over the entries appended since the last digest and every chain head.

Each digest names the hash of the one before it (as CloudTrail digest files do), so digests form a chain of
their own: dropping, reordering or replacing one breaks the link, and the signature holds only for the exact
canonical text of the body. Signing is ECDSA P-256 over SHA-256 of that text, which is what KMS ``Sign``
does with ``MessageType=RAW`` and ``ECDSA_SHA_256``; verifying needs only the public key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from functions.runtime.canonical import canonical_bytes, sha256_hex
from functions.runtime.ledger import merkle
from functions.runtime.ledger.chain import GENESIS_HASH, LedgerEntry, Sha256Hex, UtcTimestamp
from functions.runtime.ledger.errors import DigestError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

# ``cryptography`` is imported where a key is used, not with this module: the functions that only build or
# read digests (the API, the appender) do not pay for it at a cold start.


class ChainHead(BaseModel):
    """A chain's last entry when the digest was made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1, strict=True)
    entry_hash: Sha256Hex


class DigestBody(BaseModel):
    """What a digest signs. ``ranges`` covers only chains with new entries; ``heads`` covers every chain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1, strict=True)
    previous_digest_hash: Sha256Hex
    created_at: UtcTimestamp
    interval_s: int = Field(gt=0, strict=True)
    ranges: dict[str, tuple[int, int]]
    heads: dict[str, ChainHead]
    leaf_count: int = Field(ge=0, strict=True)
    merkle_root: Sha256Hex
    key_id: str = Field(min_length=1)
    algorithm: Literal["ECDSA_SHA_256"] = "ECDSA_SHA_256"


class SignedDigest(BaseModel):
    """A digest as published: the body, the exact text that was signed, the signature, and its hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    body: DigestBody
    body_canonical: str
    signature: str  # base64 of the DER-encoded ECDSA signature over body_canonical's UTF-8 bytes
    digest_hash: Sha256Hex  # SHA-256 of body_canonical: what the next digest links to

    def signed_body(self) -> DigestBody:
        """The body as signed (parsed from ``body_canonical``); ValueError when that text is not a body."""
        return DigestBody.model_validate(json.loads(self.body_canonical))


class Signer(Protocol):
    """Signs digests: KMS in the cloud, :class:`LocalSigner` on the local plane and in tests."""

    key_id: str

    def sign(self, message: bytes) -> bytes:
        """DER ECDSA P-256 signature over SHA-256 of ``message``."""
        ...

    def public_key_pem(self) -> str:
        """The SubjectPublicKeyInfo PEM that verifies the signatures."""
        ...


def _public_pem(key: ec.EllipticCurvePublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def key_fingerprint(public_key_pem: str) -> str:
    """SHA-256 hex of the key's DER SubjectPublicKeyInfo: the same key gives the same text however it is wrapped."""
    from cryptography.hazmat.primitives import serialization

    key = load_public_key(public_key_pem)
    if key is None:
        raise ValueError("not a P-256 public key in PEM")
    return sha256_hex(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_public_key(public_key_pem: str) -> ec.EllipticCurvePublicKey | None:
    """The P-256 public key in the PEM text, or None when it holds none."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_public_key(public_key_pem.encode("utf-8"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    return None


class LocalSigner:
    """An in-process P-256 key; its ``key_id`` defaults to ``local-`` and the key's fingerprint."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, key_id: str | None = None) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError(f"digests are signed with P-256, not {private_key.curve.name}")
        self._key = private_key
        self.key_id = key_id or f"local-{key_fingerprint(self.public_key_pem())[:16]}"

    @classmethod
    def generate(cls, key_id: str | None = None) -> LocalSigner:
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(ec.generate_private_key(ec.SECP256R1()), key_id)

    @classmethod
    def from_pem(cls, private_pem: str, key_id: str | None = None) -> LocalSigner:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = serialization.load_pem_private_key(private_pem.encode("utf-8"), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("not an EC private key")
        return cls(key, key_id)

    def private_pem(self) -> str:
        """Unencrypted PKCS#8 PEM: keep it where the local plane keeps its other secrets."""
        from cryptography.hazmat.primitives import serialization

        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def sign(self, message: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))

    def public_key_pem(self) -> str:
        return _public_pem(self._key.public_key())


def head_leaf_data(chain_id: str, head: ChainHead) -> bytes:
    """A chain head's leaf data: the canonical bytes of ``{"chain_id", "seq", "entry_hash"}``."""
    return canonical_bytes({"chain_id": chain_id, "seq": head.seq, "entry_hash": head.entry_hash})


def digest_leaves(entries: Sequence[LedgerEntry], heads: Mapping[str, ChainHead]) -> list[bytes]:
    """The digest's leaf hashes: each entry's hash in (chain_id, seq) order, then each head in chain order."""
    leaves = [
        merkle.leaf_hash(bytes.fromhex(entry.entry_hash))
        for entry in sorted(entries, key=lambda e: (e.chain_id, e.seq))
    ]
    leaves.extend(merkle.leaf_hash(head_leaf_data(chain_id, heads[chain_id])) for chain_id in sorted(heads))
    return leaves


def leaf_index(ranges: Mapping[str, tuple[int, int]], chain_id: str, seq: int) -> int | None:
    """Where entry ``chain_id#seq`` sits among a digest's leaves, from its ranges alone; None if not covered."""
    span = ranges.get(chain_id)
    if span is None or not span[0] <= seq <= span[1]:
        return None
    before = sum(last - first + 1 for chain, (first, last) in ranges.items() if chain < chain_id)
    return before + seq - span[0]


def _ranges(
    entries_since: Sequence[LedgerEntry], covered: Mapping[str, ChainHead], heads: Mapping[str, ChainHead]
) -> dict[str, tuple[int, int]]:
    by_chain: dict[str, list[LedgerEntry]] = {}
    for entry in entries_since:
        by_chain.setdefault(entry.chain_id, []).append(entry)
    ranges: dict[str, tuple[int, int]] = {}
    for chain_id, chain in sorted(by_chain.items()):
        chain.sort(key=lambda e: e.seq)
        first = covered[chain_id].seq + 1 if chain_id in covered else 1
        if [e.seq for e in chain] != list(range(first, first + len(chain))):
            raise DigestError(f"{chain_id}: entries since the last digest must run from #{first} without gaps")
        head = heads.get(chain_id)
        if head is None or (head.seq, head.entry_hash) != (chain[-1].seq, chain[-1].entry_hash):
            raise DigestError(f"{chain_id}: its head must be its last new entry, #{chain[-1].seq}")
        ranges[chain_id] = (first, chain[-1].seq)
    for chain_id, head in heads.items():
        if chain_id not in ranges and covered.get(chain_id) != head:
            raise DigestError(f"{chain_id}: its head moved but none of its new entries were given")
    if missing := sorted(covered.keys() - heads.keys()):
        raise DigestError(f"heads missing for chains the previous digest had: {', '.join(missing)}")
    return ranges


def build_digest(
    *,
    seq: int,
    previous: SignedDigest | None,
    entries_since: Sequence[LedgerEntry],
    heads: Mapping[str, ChainHead],
    created_at: str,
    interval_s: int,
    key_id: str,
) -> DigestBody:
    """The next digest body: ``entries_since`` (every entry after the previous digest's heads, up to ``heads``)
    and every chain head, linked to ``previous``. Raises :class:`DigestError` when they do not fit together."""
    expected_seq = previous.body.seq + 1 if previous else 1
    if seq != expected_seq:
        raise DigestError(f"digest {seq} cannot follow digest {expected_seq - 1}")
    covered = dict(previous.body.heads) if previous else {}
    ranges = _ranges(entries_since, covered, heads)
    leaves = digest_leaves(entries_since, heads)
    return DigestBody(
        seq=seq,
        previous_digest_hash=previous.digest_hash if previous else GENESIS_HASH,
        created_at=created_at,
        interval_s=interval_s,
        ranges=ranges,
        heads=dict(sorted(heads.items())),
        leaf_count=len(leaves),
        merkle_root=merkle.root(leaves).hex(),
        key_id=key_id,
    )


def sign_digest(body: DigestBody, signer: Signer) -> SignedDigest:
    """Canonicalise the body once and sign that text."""
    if body.key_id != signer.key_id:
        raise DigestError(f"body names key {body.key_id!r} but the signer holds {signer.key_id!r}")
    data = canonical_bytes(body.model_dump(mode="json"))
    signature = signer.sign(data)
    return SignedDigest(
        body=body,
        body_canonical=data.decode("utf-8"),
        signature=base64.b64encode(signature).decode("ascii"),
        digest_hash=sha256_hex(data),
    )


def verify_signature(digest: SignedDigest, public_key_pem: str) -> bool:
    """Is ``signature`` a valid ECDSA P-256/SHA-256 signature of ``body_canonical`` under this public key?"""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = load_public_key(public_key_pem)
    if key is None:
        return False
    try:
        signature = base64.b64decode(digest.signature, validate=True)
        key.verify(signature, digest.body_canonical.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, InvalidSignature):
        return False
    return True
