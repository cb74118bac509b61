"""What the local plane journals while moto serves it comes back into a new emulator, as a restarted plane sees it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.persistence import StateDir
from infra.local.template import REGION, Physical

pytestmark = pytest.mark.integration

TABLE, BUCKET, QUEUE = "items", "documents", "dead-letters"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


def _resources() -> dict[str, Any]:
    """What provisioning creates: a table, a bucket, a queue and a signing key (new ids every time)."""
    _client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    _client("s3").create_bucket(Bucket=BUCKET)
    url = _client("sqs").create_queue(QueueName=QUEUE)["QueueUrl"]
    key = _client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    return {"url": url, "key": Physical(ref=key["KeyId"], attributes={"Arn": key["Arn"], "KeyId": key["KeyId"]})}


def _provisioned(state: StateDir, created: dict[str, Any]) -> Physical:
    state.provisioned("Table", "AWS::DynamoDB::Table", Physical(ref=TABLE), {})
    state.provisioned("Bucket", "AWS::S3::Bucket", Physical(ref=BUCKET), {})
    state.provisioned("Queue", "AWS::SQS::Queue", Physical(ref=created["url"], attributes={"QueueName": QUEUE}), {})
    return state.provisioned("SigningKey", "AWS::KMS::Key", created["key"], {})


def test_items_objects_messages_and_the_signing_key_survive_into_a_new_emulator(aws: None, tmp_path: Path) -> None:
    # GIVEN a plane's writes while its journal is installed
    with mock_aws():
        state = StateDir(tmp_path).open()
        state.install()
        created = _resources()
        key = _provisioned(state, created)
        ddb, sqs = _client("dynamodb"), _client("sqs")
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": "a"}, "sk": {"S": "1"}, "n": {"N": "1"}})
        ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "a"}, "sk": {"S": "1"}},
            UpdateExpression="SET n = n + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "c"}, "sk": {"S": "1"}}}},
            ]
        )
        ddb.delete_item(TableName=TABLE, Key={"pk": {"S": "c"}, "sk": {"S": "1"}})
        _client("s3").put_object(Bucket=BUCKET, Key="documents/x.json", Body=b'{"x": 1}')
        sqs.send_message(QueueUrl=created["url"], MessageBody="kept")
        sqs.send_message(QueueUrl=created["url"], MessageBody="handled")
        handled = next(
            m
            for m in sqs.receive_message(QueueUrl=created["url"], MaxNumberOfMessages=10)["Messages"]
            if m["Body"] == "handled"
        )
        sqs.delete_message(QueueUrl=created["url"], ReceiptHandle=handled["ReceiptHandle"])
        signature = _client("kms").sign(
            KeyId=key.ref, Message=b"digest", MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
        )["Signature"]
        state.uninstall()
        state.close()

    # WHEN a new emulator provisions the same resources on the same state dir
    with mock_aws():
        state = StateDir(tmp_path).open()
        created = _resources()
        restored_key = _provisioned(state, created)
        state.close()

        # THEN each holds what it held, and the key is the same key
        items = _client("dynamodb").scan(TableName=TABLE)["Items"]
        assert sorted((i["pk"]["S"], i.get("n", {}).get("N")) for i in items) == [("a", "2"), ("b", None)]
        body = _client("s3").get_object(Bucket=BUCKET, Key="documents/x.json")["Body"].read()
        assert body == b'{"x": 1}'
        messages = _client("sqs").receive_message(QueueUrl=created["url"], MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in messages] == ["kept"]
        assert restored_key.ref == key.ref != created["key"].ref
        verified = _client("kms").verify(
            KeyId=key.ref,
            Message=b"digest",
            MessageType="RAW",
            Signature=signature,
            SigningAlgorithm="ECDSA_SHA_256",
        )
        assert verified["SignatureValid"]
