from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from functions.runtime.canonical import canonical_bytes
from functions.runtime.ledger import (
    GENESIS_HASH,
    ChainHead,
    DigestBody,
    DigestError,
    LedgerEntry,
    LocalSigner,
    SignedDigest,
    build_digest,
    digest_leaves,
    merkle,
    sign_digest,
    verify_signature,
)
from tests.unit.ledger.ledger_fixture import INTERVAL_S, Ledger, append, at, decision

pytestmark = pytest.mark.unit


def heads_of(entries: list[LedgerEntry]) -> dict[str, ChainHead]:
    heads: dict[str, ChainHead] = {}
    for entry in sorted(entries, key=lambda e: (e.chain_id, e.seq)):
        heads[entry.chain_id] = ChainHead(seq=entry.seq, entry_hash=entry.entry_hash)
    return heads


def test_digests_cover_new_entries_and_every_head(ledger: Ledger) -> None:
    # GIVEN the fixture's three digests (six entries each over three chains, two per chain)
    first, second, third = (d.body for d in ledger.digests)

    # THEN each covers the next two entries of every chain, names every head, and has entries + heads leaves
    assert first.ranges == {"chain-00": (1, 2), "chain-01": (1, 2), "chain-02": (1, 2)}
    assert second.ranges == {"chain-00": (3, 4), "chain-01": (3, 4), "chain-02": (3, 4)}
    assert third.ranges == {"chain-00": (5, 6), "chain-01": (5, 6), "chain-02": (5, 6)}
    assert {chain: head.seq for chain, head in third.heads.items()} == {"chain-00": 6, "chain-01": 6, "chain-02": 6}
    assert [body.leaf_count for body in (first, second, third)] == [9, 9, 9]
    assert first.interval_s == INTERVAL_S
    assert first.algorithm == "ECDSA_SHA_256"


def test_digests_link_to_their_predecessor(ledger: Ledger) -> None:
    # GIVEN the fixture's digests
    first, second, third = ledger.digests

    # THEN the first links to the genesis hash, the others to the SHA-256 of the previous body's canonical text
    assert first.body.previous_digest_hash == GENESIS_HASH
    assert second.body.previous_digest_hash == first.digest_hash
    assert third.body.previous_digest_hash == second.digest_hash
    for digest in ledger.digests:
        assert digest.digest_hash == hashlib.sha256(digest.body_canonical.encode()).hexdigest()
        assert digest.body_canonical.encode() == canonical_bytes(digest.body.model_dump(mode="json"))
        assert digest.signed_body() == digest.body


def test_merkle_root_is_over_entry_hashes_then_heads(ledger: Ledger) -> None:
    # GIVEN the second digest and the entries it covers
    digest = ledger.digests[1].body
    covered = [e for e in ledger.entries if 3 <= e.seq <= 4]

    # WHEN its leaves are rebuilt by hand: entry hashes in (chain, seq) order, then one leaf per head
    by_hand = [
        merkle.leaf_hash(bytes.fromhex(e.entry_hash)) for e in sorted(covered, key=lambda e: (e.chain_id, e.seq))
    ]
    for chain_id, head in sorted(digest.heads.items()):
        data = json.dumps({"chain_id": chain_id, "entry_hash": head.entry_hash, "seq": head.seq}, separators=(",", ":"))
        by_hand.append(merkle.leaf_hash(data.encode()))

    # THEN they are the digest's leaves, whatever order the entries come in, and their root is the signed root
    shuffled = covered[:]
    random.Random(7).shuffle(shuffled)
    assert digest_leaves(shuffled, digest.heads) == by_hand
    assert merkle.root(by_hand).hex() == digest.merkle_root


def test_signature_verifies_with_the_public_key_only(ledger: Ledger) -> None:
    # GIVEN a signed digest and only the signer's public key
    digest = ledger.digests[0]
    public_pem = ledger.signer.public_key_pem()

    # WHEN verified, by us and as any ECDSA P-256/SHA-256 verifier (KMS ECDSA_SHA_256 over the raw message) would
    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    signature = base64.b64decode(digest.signature)
    key.verify(signature, digest.body_canonical.encode(), ec.ECDSA(hashes.SHA256()))

    # THEN it holds, and the signature is DER (r, s)
    assert verify_signature(digest, public_pem)
    assert all(n > 0 for n in utils.decode_dss_signature(signature))


def test_signature_fails_for_another_key_or_altered_text(ledger: Ledger) -> None:
    # GIVEN a signed digest
    digest = ledger.digests[0]
    altered = digest.body_canonical.replace('"seq":1', '"seq":9')

    # THEN it does not verify under another key, with altered text, or with a garbled signature or key
    assert not verify_signature(digest, LocalSigner.generate().public_key_pem())
    assert not verify_signature(digest.model_copy(update={"body_canonical": altered}), ledger.signer.public_key_pem())
    assert not verify_signature(digest.model_copy(update={"signature": "not base64!"}), ledger.signer.public_key_pem())
    assert not verify_signature(digest, "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_local_signer_round_trips_through_pem() -> None:
    # GIVEN a generated signer
    signer = LocalSigner.generate()

    # WHEN reloaded from its private PEM
    again = LocalSigner.from_pem(signer.private_pem())

    # THEN it is the same key with the same fingerprint-derived key id, and its signatures verify
    assert again.public_key_pem() == signer.public_key_pem()
    assert again.key_id == signer.key_id
    assert signer.key_id.startswith("local-")
    assert LocalSigner.from_pem(signer.private_pem(), key_id="alias/ledger").key_id == "alias/ledger"


def test_local_signer_refuses_other_curves() -> None:
    # GIVEN a P-384 key
    # WHEN a signer is made from it
    # THEN it is refused: digests are ECDSA P-256, as the KMS key is
    with pytest.raises(ValueError, match="P-256"):
        LocalSigner(ec.generate_private_key(ec.SECP384R1()))


def test_digest_body_fits_a_kms_raw_message_with_16_chains(signer: LocalSigner) -> None:
    # GIVEN 16 chains with an entry each (KMS Sign takes at most 4,096 bytes as a RAW message)
    entries: list[LedgerEntry] = []
    heads: dict[str, ChainHead] = {}
    for n in range(16):
        append(entries, heads, chain_id=f"chain-{n:02d}", record=decision(n), appended_at=at(n))

    # WHEN digested
    body = build_digest(
        seq=1,
        previous=None,
        entries_since=entries,
        heads=heads,
        created_at=at(30),
        interval_s=60,
        key_id=signer.key_id,
    )
    signed = sign_digest(body, signer)

    # THEN the signed text fits, with room to spare
    assert len(signed.body_canonical.encode()) < 3000


def test_build_digest_refuses_what_does_not_fit_the_chains(ledger: Ledger) -> None:
    # GIVEN the first digest and the entries after it
    first = ledger.digests[0]
    after = [e for e in ledger.entries if 3 <= e.seq <= 4]
    heads = heads_of([e for e in ledger.entries if e.seq <= 4])

    def build(**changes: Any) -> DigestBody:
        args: dict[str, Any] = {
            "seq": 2,
            "previous": first,
            "entries_since": after,
            "heads": heads,
            "created_at": at(115),
            "interval_s": 60,
            "key_id": ledger.signer.key_id,
        }
        return build_digest(**(args | changes))

    # THEN the right arguments build the published digest's body again
    assert build() == ledger.digests[1].body
    # AND a wrong number, a gap, a head that is not the last entry, or a head moved without entries are refused
    with pytest.raises(DigestError, match="cannot follow digest 1"):
        build(seq=3)
    with pytest.raises(DigestError, match="without gaps"):
        build(entries_since=[e for e in after if e.seq != 3])
    with pytest.raises(DigestError, match="head must be its last new entry"):
        build(heads=heads | {"chain-00": ChainHead(seq=3, entry_hash=after[0].entry_hash)})
    with pytest.raises(DigestError, match="head moved"):
        build(entries_since=[e for e in after if e.chain_id != "chain-01"])
    with pytest.raises(DigestError, match="heads missing"):
        build(
            entries_since=[e for e in after if e.chain_id != "chain-02"],
            heads={chain_id: head for chain_id, head in heads.items() if chain_id != "chain-02"},
        )


def test_sign_digest_refuses_a_body_for_another_key(ledger: Ledger) -> None:
    # GIVEN a body naming the ledger's key and a signer holding another
    # WHEN signed
    # THEN it is refused
    with pytest.raises(DigestError, match="names key"):
        sign_digest(ledger.digests[0].body, LocalSigner.generate())


def test_signed_digest_round_trips_through_json(ledger: Ledger) -> None:
    # GIVEN a signed digest stored as JSON (as the S3 archive stores it)
    digest = ledger.digests[2]

    # WHEN read back
    again = SignedDigest.model_validate_json(digest.model_dump_json())

    # THEN nothing changed and it still verifies
    assert again == digest
    assert verify_signature(again, ledger.signer.public_key_pem())
