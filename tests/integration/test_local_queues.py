"""SQS → Lambda on the local plane: batches over the window, per-record failures retried, then dead-lettered."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.queues import QueueDelivery
from infra.local.template import REGION

pytestmark = pytest.mark.integration


class Function:
    """A stand-in for the Lambda API: records each batch; answers with the records it was told to fail."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.batches: list[list[str]] = []

    def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        records = json.loads(Payload)["Records"]
        self.batches.append([r["body"] for r in records])
        failed = [{"itemIdentifier": r["messageId"]} for r in records if r["body"] in self.failing]
        return {"Payload": io.BytesIO(json.dumps({"batchItemFailures": failed}).encode())}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def queue_with_dlq(sqs: Any) -> tuple[str, str, str]:
    dlq = sqs.create_queue(QueueName="buffer-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = sqs.create_queue(QueueName="buffer", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq


def test_records_arriving_within_the_window_share_a_batch_and_a_failed_one_is_dead_lettered(sqs: Any) -> None:
    # GIVEN a buffer queue drained by a function that always fails the record "bad"
    url, arn, dlq = queue_with_dlq(sqs)
    function = Function(failing={"bad"})
    delivery = QueueDelivery(lambda service: function if service == "lambda" else sqs, window_scale=1.0)
    delivery.install()
    try:
        delivery.register(
            {
                "FunctionName": "tagger",
                "EventSourceArn": arn,
                "BatchSize": 10,
                "MaximumBatchingWindowInSeconds": 0.2,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            }
        )
        # WHEN three records arrive together
        for body in ("one", "bad", "two"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        assert delivery.wait_idle(timeout=10)
    finally:
        delivery.uninstall()

    # THEN the first batch held all three; only the failed record was delivered again
    assert sorted(function.batches[0]) == ["bad", "one", "two"]
    assert all(batch == ["bad"] for batch in function.batches[1:])
    assert delivery.mappings[arn].delivered == 2
    # AND past the queue's maxReceiveCount it went to the dead-letter queue, the others were deleted
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in dead] == ["bad"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )
