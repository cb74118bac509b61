"""The ledger's AWS adapters on moto: conditional chain heads, write-once digests, KMS signatures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.ledger_appender.service import append_record
from functions.ledger_digest.service import run_digest
from functions.runtime import adapters as aws
from functions.runtime.ledger import GENESIS_HASH, make_entry, verify_signature
from functions.runtime.ledger_store import DigestExistsError, DynamoLedgerStore, KmsSigner, S3DigestArchive

pytestmark = pytest.mark.integration

TRACE = "1-6b000000-0123456789abcdef01234567"


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(key, value)
    aws.client.cache_clear()
    aws.table.cache_clear()
    with mock_aws():
        dynamodb = boto3.resource("dynamodb")
        table = dynamodb.create_table(
            TableName="ledger",
            KeySchema=[{"AttributeName": "chain_id", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "chain_id", "AttributeType": "S"},
                {"AttributeName": "seq", "AttributeType": "N"},
                {"AttributeName": "trace_id", "AttributeType": "S"},
                {"AttributeName": "appended_at", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "ByTrace",
                    "KeySchema": [
                        {"AttributeName": "trace_id", "KeyType": "HASH"},
                        {"AttributeName": "appended_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        boto3.client("s3").create_bucket(Bucket="ledger-digests", ObjectLockEnabledForBucket=True)
        key = boto3.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
        yield {"store": DynamoLedgerStore(table), "archive": S3DigestArchive("ledger-digests"), "key": key["Arn"]}
    aws.client.cache_clear()
    aws.table.cache_clear()


def test_appends_link_and_a_duplicate_is_refused(ledger: dict[str, Any]) -> None:
    store = ledger["store"]
    rec = {"correlation_id": "run-1", "step_key": "run-1/Intake", "trace_id": TRACE}

    first = append_record(rec, store=store, now=lambda: "2026-11-23T12:00:00+00:00")
    second = append_record({**rec, "step_key": "run-1/ScoreRisk"}, store=store, now=lambda: "2026-11-23T12:00:01+00:00")
    again = append_record(rec, store=store, now=lambda: "2026-11-23T12:00:02+00:00")

    assert (first.outcome, second.outcome, again.outcome) == ("appended", "appended", "duplicate")
    entries = store.entries(first.chain_id)
    assert [e.seq for e in entries] == [1, 2]
    assert entries[1].prev_hash == entries[0].entry_hash
    assert [e.record_id for e in store.entries_for_trace(TRACE)] == [e.record_id for e in entries]


def test_two_appenders_racing_on_one_head_cannot_fork(ledger: dict[str, Any]) -> None:
    store = ledger["store"]
    # GIVEN two appenders that both read the empty head
    a = make_entry(
        chain_id="chain-01",
        seq=1,
        record_id="a",
        record={},
        prev_hash=GENESIS_HASH,
        appended_at="2026-11-23T12:00:00+00:00",
    )
    b = make_entry(
        chain_id="chain-01",
        seq=1,
        record_id="b",
        record={},
        prev_hash=GENESIS_HASH,
        appended_at="2026-11-23T12:00:00+00:00",
    )

    # WHEN both write: the second finds the head moved
    outcomes = (
        store.append(a, trace_id=TRACE, expected_head_seq=0),
        store.append(b, trace_id=TRACE, expected_head_seq=0),
    )

    assert outcomes == ("appended", "conflict")
    assert [e.record_id for e in store.entries("chain-01")] == ["a"]
    assert store.head("chain-01").entry_hash == a.entry_hash


def test_digests_are_signed_by_kms_and_written_once(ledger: dict[str, Any]) -> None:
    store, archive = ledger["store"], ledger["archive"]
    signer = KmsSigner(ledger["key"])
    append_record(
        {"correlation_id": "run-1", "step_key": "run-1/Intake", "trace_id": TRACE},
        store=store,
        now=lambda: "2026-11-23T12:00:00+00:00",
    )

    digest = run_digest(store=store, signer=signer, archive=archive, now="2026-11-23T12:05:00+00:00", interval_s=900)

    assert verify_signature(digest, signer.public_key_pem())
    assert archive.all() == [digest]
    assert store.cursor().seq == 1
    with pytest.raises(DigestExistsError):
        archive.put(digest)
