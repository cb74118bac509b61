from __future__ import annotations

import math
from typing import Any

import pytest

from functions.runtime.ledger import (
    InclusionProof,
    LocalSigner,
    ProofError,
    merkle,
    prove,
    sign_digest,
    verify_proof,
)
from tests.unit.ledger.ledger_fixture import Ledger, entry_at, entry_line, read

pytestmark = pytest.mark.unit


def test_every_digested_record_has_a_proof_that_verifies(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN the export and the 18 records its digests cover
    export = read(lines)
    digested = [e for e in ledger.entries if e.seq <= 6]

    for entry in digested:
        # WHEN a record is proved
        proof = prove(export, entry.record_id)

        # THEN the proof holds the entry and the first digest covering it, and verifies with the public key alone
        assert proof.entry == entry
        assert proof.digest.body.seq == (entry.seq + 1) // 2
        assert proof.tree_size == proof.digest.body.leaf_count == 9
        assert len(proof.path) <= math.ceil(math.log2(proof.tree_size))
        assert verify_proof(proof, ledger.signer.public_key_pem()) is None


def test_proof_survives_json(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a proof sent as JSON
    proof = prove(read(lines), ledger.entries[4].record_id)

    # WHEN read back
    again = InclusionProof.model_validate_json(proof.model_dump_json())

    # THEN it is unchanged and still verifies
    assert again == proof
    assert verify_proof(again, ledger.signer.public_key_pem()) is None


def test_records_without_a_digest_cannot_be_proved(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN the export: its last two entries came after the last digest
    export = read(lines)

    # THEN they, and unknown records, have no proof
    with pytest.raises(ProofError, match="not covered by a digest yet"):
        prove(export, ledger.entries[-1].record_id)
    with pytest.raises(ProofError, match="no entry holds record"):
        prove(export, "run-9/nothing")


def test_no_proof_from_an_export_that_disagrees_with_its_digest(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN an export in which a covered neighbour of the record was deleted
    del lines[entry_at(lines, "chain-00", 1)]

    # THEN no proof is made for a record in that digest
    with pytest.raises(ProofError, match="lacks entry chain-00#1, which digest 1 covers"):
        prove(read(lines), ledger.chain("chain-01")[0].record_id)


def test_no_proof_from_a_rewritten_export(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN an export in which one entry was replaced by a well-formed entry the digest never signed
    original = ledger.chain("chain-02")[0]
    fake = original.model_copy(update={"entry_hash": "ab" * 32})
    lines[entry_at(lines, "chain-02", 1)] = entry_line(fake)

    # THEN proving it fails: the path does not lead to the signed root
    with pytest.raises(ProofError, match="does not sign the export's entries"):
        prove(read(lines), original.record_id)


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda p: {"entry": p.entry.model_copy(update={"record": {**p.entry.record, "status": "FAILED"}})}, "entry:"),
        (lambda p: {"leaf_index": p.leaf_index ^ 1}, "leaf_index"),
        (lambda p: {"tree_size": p.tree_size + 1}, "tree_size"),
        (lambda p: {"path": [p.path[0][::-1], *p.path[1:]]}, "path does not lead"),
        (lambda p: {"path": p.path[:-1]}, "path does not lead"),
        (lambda p: {"path": ["zz", *p.path[1:]]}, "not hex"),
        (
            lambda p: {"digest": p.digest.model_copy(update={"signature": p.digest.signature[:-8] + "AAAAAAA="})},
            "signature",
        ),
    ],
)
def test_tampered_proof_fails(ledger: Ledger, lines: list[str], tamper: Any, reason: str) -> None:
    # GIVEN a valid proof with one part changed
    proof = prove(read(lines), ledger.chain("chain-01")[2].record_id)
    tampered = proof.model_copy(update=tamper(proof))

    # WHEN verified
    # THEN it fails, saying what broke
    assert reason in (verify_proof(tampered, ledger.signer.public_key_pem()) or "")


def test_proof_for_another_entry_of_the_same_digest_fails(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a valid proof, re-pointed at another entry the same digest covers
    export = read(lines)
    proof = prove(export, ledger.chain("chain-01")[2].record_id)
    other = ledger.chain("chain-02")[2]

    # WHEN verified
    reason = verify_proof(proof.model_copy(update={"entry": other}), ledger.signer.public_key_pem())

    # THEN the entry is not at that leaf
    assert reason is not None
    assert "leaf_index" in reason


def test_proof_signed_by_another_key_fails(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a proof whose digest an impostor re-signed
    proof = prove(read(lines), ledger.entries[0].record_id)
    impostor = LocalSigner.generate(key_id=ledger.signer.key_id)
    forged = proof.model_copy(update={"digest": sign_digest(proof.digest.body, impostor)})

    # THEN it verifies only under the impostor's key, never under the ledger's
    assert verify_proof(forged, impostor.public_key_pem()) is None
    assert (
        verify_proof(forged, ledger.signer.public_key_pem()) == "digest signature does not verify under the public key"
    )


def test_proof_uses_the_signed_root_not_the_displayed_one(ledger: Ledger, lines: list[str]) -> None:
    # GIVEN a proof whose digest's displayed body claims another root (the signed text is unchanged)
    proof = prove(read(lines), ledger.entries[0].record_id)
    leaves = [merkle.leaf_hash(b"x")]
    shown = proof.digest.body.model_copy(update={"merkle_root": merkle.root(leaves).hex()})
    altered = proof.model_copy(update={"digest": proof.digest.model_copy(update={"body": shown})})

    # THEN the proof is still checked against what was signed
    assert verify_proof(altered, ledger.signer.public_key_pem()) is None
