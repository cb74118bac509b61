"""Stream → Lambda delivery on the local plane follows the event source mapping's failure rules."""

from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest

from infra.local.streams import Mapping, StreamDelivery

pytestmark = pytest.mark.unit


def records(*sequence: int) -> list[dict[str, Any]]:
    return [{"dynamodb": {"SequenceNumber": str(n)}} for n in sequence]


class FakeAws:
    """Lambda answers from a script (one answer per call); SQS keeps what it is sent."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.batches: list[list[str]] = []
        self.sent: list[dict[str, Any]] = []

    def __call__(self, service: str) -> FakeAws:
        return self

    def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.batches.append([r["dynamodb"]["SequenceNumber"] for r in json.loads(Payload)["Records"]])
        answer = self.answers.pop(0) if self.answers else {"batchItemFailures": []}
        if answer == "error":
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorType": "Boom"}')}
        return {"Payload": io.BytesIO(json.dumps(answer).encode())}

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803
        return {"QueueUrl": f"local/{QueueName}"}

    def send_message(self, QueueUrl: str, MessageBody: str) -> None:  # noqa: N803
        self.sent.append(json.loads(MessageBody))


def deliver(fake: FakeAws, mapping: Mapping, batch: list[dict[str, Any]]) -> None:
    StreamDelivery(fake)._deliver(mapping, batch, attempts=0)


def test_a_reported_item_failure_retries_from_that_record_only() -> None:
    fake = FakeAws([{"batchItemFailures": [{"itemIdentifier": "2"}]}])
    mapping = Mapping("arn:fn", report_item_failures=True)

    deliver(fake, mapping, records(1, 2, 3))

    assert fake.batches == [["1", "2", "3"], ["2", "3"]]
    assert mapping.delivered == 3


def test_a_failing_batch_is_bisected_to_isolate_the_bad_record() -> None:
    fake = FakeAws(["error", {"batchItemFailures": []}, "error", "error", "error", "error", "error", "error"])
    mapping = Mapping("arn:fn", bisect=True, max_retries=2, on_failure="arn:aws:sqs:us-east-1:1:failures")

    deliver(fake, mapping, records(1, 2, 3, 4))

    assert fake.batches[:3] == [["1", "2", "3", "4"], ["1", "2"], ["3", "4"]]
    assert mapping.delivered == 2
    assert mapping.failed_batches >= 1
    assert fake.sent[0]["requestContext"]["condition"] == "RetryAttemptsExhausted"


def test_retries_exhausted_go_to_the_on_failure_destination() -> None:
    fake = FakeAws(["error"] * 10)
    mapping = Mapping("arn:fn", max_retries=2, on_failure="arn:aws:sqs:us-east-1:1:failures")

    deliver(fake, mapping, records(7, 8))

    assert len(fake.batches) == 3  # the first try and two retries
    assert fake.sent == [
        {
            "requestContext": {"functionArn": "arn:fn", "condition": "RetryAttemptsExhausted"},
            "timestamp": fake.sent[0]["timestamp"],
            "DDBStreamBatchInfo": {"startSequenceNumber": "7", "endSequenceNumber": "8", "batchSize": 2},
            "error": '{"errorType": "Boom"}',
        }
    ]


def test_records_still_queued_when_the_plane_stops_are_not_delivered() -> None:
    # GIVEN a delivery thread busy with the first of three records
    entered, release = threading.Event(), threading.Event()

    class Blocking(FakeAws):
        def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
            entered.set()
            assert release.wait(5)
            return super().invoke(FunctionName, Payload)

    fake = Blocking([])
    delivery = StreamDelivery(fake)
    delivery.register("arn:fn", {"BatchSize": 1})
    for record in records(1, 2, 3):
        delivery.enqueue("arn:fn", record)
    assert entered.wait(5)

    # WHEN the plane stops while it delivers
    stopping = threading.Thread(target=delivery.uninstall)
    stopping.start()
    assert delivery._stopping.wait(5)
    release.set()
    stopping.join(timeout=10)

    # THEN the one in flight finishes and the rest stay queued: once moto stops, a delivery would leave loopback
    assert fake.batches == [["1"]]
