"""Stream → Lambda delivery on the local plane follows the event source mapping's failure rules."""

from __future__ import annotations

import io
import json
import queue
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


class ArrivingRecords:
    """A mapping's record queue on a fake clock: each record arrives ``after`` seconds past the previous one."""

    def __init__(self, clock: list[float], *arrivals: tuple[float, dict[str, Any] | None]) -> None:
        self.clock = clock
        self.arrivals = list(arrivals)

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        if not self.arrivals:
            raise queue.Empty
        after, record = self.arrivals[0]
        if timeout is not None and after > timeout:
            self.clock[0] += timeout
            self.arrivals[0] = (after - timeout, record)
            raise queue.Empty
        self.clock[0] += after
        self.arrivals.pop(0)
        return record

    def get_nowait(self) -> dict[str, Any] | None:
        return self.get(timeout=0.0)

    def put(self, record: dict[str, Any] | None) -> None:
        self.arrivals.insert(0, (0.0, record))


def collect(mapping: Mapping, clock: list[float]) -> list[str] | None:
    batch = StreamDelivery(FakeAws([]), clock=lambda: clock[0])._collect(mapping)
    return None if batch is None else [r["dynamodb"]["SequenceNumber"] for r in batch]


def test_records_arriving_within_the_batching_window_join_one_batch() -> None:
    clock = [0.0]
    one, two, three, four = records(1, 2, 3, 4)
    mapping = Mapping("arn:fn", window_s=1.0)
    mapping.records = ArrivingRecords(clock, (0.0, one), (0.3, two), (0.6, three), (0.5, four))  # type: ignore[assignment]

    assert collect(mapping, clock) == ["1", "2", "3"]  # four arrives 1.4 s after one: the next batch's
    assert collect(mapping, clock) == ["4"]


def test_without_a_window_a_batch_is_what_is_already_queued() -> None:
    clock = [0.0]
    one, two, three = records(1, 2, 3)
    mapping = Mapping("arn:fn")
    mapping.records = ArrivingRecords(clock, (0.0, one), (0.0, two), (0.01, three))  # type: ignore[assignment]

    assert collect(mapping, clock) == ["1", "2"]


def test_a_full_batch_goes_before_its_window_ends() -> None:
    clock = [0.0]
    mapping = Mapping("arn:fn", batch_size=2, window_s=5.0)
    mapping.records = ArrivingRecords(clock, *((0.1, r) for r in records(1, 2, 3)))  # type: ignore[assignment]

    assert collect(mapping, clock) == ["1", "2"]
    assert clock[0] == pytest.approx(0.2)


def test_a_stop_ends_the_batch_and_the_next_collect() -> None:
    clock = [0.0]
    (one,) = records(1)
    mapping = Mapping("arn:fn", window_s=1.0)
    mapping.records = ArrivingRecords(clock, (0.0, one), (0.1, None))  # type: ignore[assignment]

    assert collect(mapping, clock) == ["1"]
    assert collect(mapping, clock) is None


def test_the_template_s_batching_window_is_scaled_like_a_queue_s() -> None:
    delivery = StreamDelivery(FakeAws([]), window_scale=0.01)
    delivery._run = lambda mapping: None  # type: ignore[method-assign] # no worker thread for this check

    delivery.register("arn:fn", {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 1})

    assert delivery.mappings["arn:fn"].window_s == pytest.approx(0.01)
    assert delivery.mappings["arn:fn"].batch_size == 100
