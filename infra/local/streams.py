"""DynamoDB Streams → Lambda as Lambda's event source mapping does it: asynchronously, in batches, per shard in order.

moto delivers each write synchronously, one record per call, ignoring the function's answer. Here a
mapping's worker takes up to ``BatchSize`` records, waiting up to ``MaximumBatchingWindowInSeconds`` (times the
plane's ``batching_window_scale``, as for queues) from the first for more to join it, and on a failed batch honours
the mapping:
``ReportBatchItemFailures`` (retry from the first failed sequence number), ``BisectBatchOnFunctionError``
(split a failing batch), ``MaximumRetryAttempts``, then the ``OnFailure`` destination, and moves on.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.dynamodb.models.table import StreamRecord, StreamShard

from infra.local import moto_seam

Record = dict[str, Any]


@dataclass
class Mapping:
    function_arn: str
    batch_size: int = 100
    window_s: float = 0.0  # the batching window, scaled: how long a batch waits from its first record for more
    report_item_failures: bool = False
    bisect: bool = False
    max_retries: int = -1  # -1: until the record expires; capped locally
    on_failure: str | None = None
    delivered: int = 0
    invocations: int = 0  # batches handed to the function, retries included
    failed_batches: int = 0
    records: queue.Queue[Record | None] = field(default_factory=queue.Queue)


def lambda_record(record: StreamRecord, source_arn: str) -> Record:
    """A stream record as Lambda receives it (epoch seconds, the stream's ARN)."""
    raw = record.to_json()
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": raw["eventVersion"],
        "eventSource": raw["eventSource"],
        "awsRegion": raw.get("awsRegion", "us-east-1"),
        "dynamodb": dynamodb,
        "eventSourceARN": source_arn,
    }


class StreamDelivery:
    LOCAL_RETRY_CAP = 5

    def __init__(
        self, client: Callable[[str], Any], *, window_scale: float = 0.01, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.window_scale = window_scale
        self.clock = clock
        self.mappings: dict[str, Mapping] = {}  # function ARN -> mapping
        self._threads: list[threading.Thread] = []
        self._patches = moto_seam.Patches()
        self._idle = threading.Condition()
        self._pending = 0
        self._stopping = threading.Event()

    def register(self, function_arn: str, props: dict[str, Any]) -> None:
        mapping = self.mappings[function_arn] = Mapping(
            function_arn=function_arn,
            batch_size=int(props.get("BatchSize", 100)),
            window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)) * self.window_scale,
            report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            bisect=bool(props.get("BisectBatchOnFunctionError", False)),
            max_retries=int(props.get("MaximumRetryAttempts", -1)),
            on_failure=props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"),
        )
        thread = threading.Thread(target=self._run, args=(mapping,), daemon=True, name="stream-delivery")
        thread.start()
        self._threads.append(thread)

    def install(self) -> None:
        delivery = self

        def add(shard: StreamShard, old: Any, new: Any) -> None:
            view = shard.table.stream_specification["StreamViewType"]  # type: ignore[index]
            name = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
            seq = len(shard.items) + shard.starting_sequence_number
            record = StreamRecord(shard.table, view, name, old, new, seq)
            shard.items.append(record)  # GetRecords still reads the shard
            for function_arn, mapping in shard.table.lambda_event_source_mappings.items():
                delivery.enqueue(function_arn, lambda_record(record, mapping.event_source_arn))

        self._patches.apply("dynamodb.stream_add", add)

    def uninstall(self) -> None:
        self._patches.restore()
        # What is still queued stays undelivered (the state dir's journal resumes it): once moto stops, a delivery
        # would leave loopback for the real service.
        self._stopping.set()
        for mapping in self.mappings.values():
            mapping.records.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def enqueue(self, function_arn: str, record: Record) -> None:
        mapping = self.mappings.get(function_arn)
        if mapping is None:
            return
        with self._idle:
            self._pending += 1
        mapping.records.put(record)

    def wait_idle(self, timeout: float) -> bool:
        """True once every stream record has been delivered or sent to its failure destination."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _run(self, mapping: Mapping) -> None:
        while True:
            batch = self._collect(mapping)
            if batch is None or self._stopping.is_set():
                return
            try:
                self._deliver(mapping, batch, attempts=0)
            finally:
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _collect(self, mapping: Mapping) -> list[Record] | None:
        """The next batch: the first record, then what arrives until the batch is full or its window has passed
        (what is already queued joins it either way). None once the mapping is stopped and nothing is left."""
        first = mapping.records.get()
        if first is None:
            return None
        batch = [first]
        closes = self.clock() + mapping.window_s
        while len(batch) < mapping.batch_size:
            left = closes - self.clock()
            try:
                nxt = mapping.records.get(timeout=left) if left > 0 else mapping.records.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                mapping.records.put(None)  # stop after this batch
                break
            batch.append(nxt)
        return batch

    def _deliver(self, mapping: Mapping, batch: list[Record], *, attempts: int) -> None:
        limit = self.LOCAL_RETRY_CAP if mapping.max_retries < 0 else min(mapping.max_retries, self.LOCAL_RETRY_CAP)
        while batch:
            failed_from, error = self._invoke(mapping, batch)
            if failed_from is None:
                mapping.delivered += len(batch)
                return
            mapping.delivered += failed_from
            batch = batch[failed_from:]
            attempts += 1
            if attempts > limit:
                self._give_up(mapping, batch, error)
                return
            if error and mapping.bisect and len(batch) > 1:
                half = len(batch) // 2
                self._deliver(mapping, batch[:half], attempts=attempts)
                self._deliver(mapping, batch[half:], attempts=attempts)
                return

    def _invoke(self, mapping: Mapping, batch: list[Record]) -> tuple[int | None, str]:
        """None when the whole batch succeeded; else the index to retry from, and the error (if the call failed)."""
        mapping.invocations += 1
        response = self.client("lambda").invoke(
            FunctionName=mapping.function_arn, Payload=json.dumps({"Records": batch})
        )
        body = json.loads(response["Payload"].read() or b"null")
        if "FunctionError" in response:
            return 0, json.dumps(body)[:1000]
        failures = (body or {}).get("batchItemFailures", []) if mapping.report_item_failures else []
        if not failures:
            return None, ""
        failed = {str(f.get("itemIdentifier")) for f in failures}
        sequence = [str(r["dynamodb"]["SequenceNumber"]) for r in batch]
        return min(i for i, s in enumerate(sequence) if s in failed) if failed & set(sequence) else 0, ""

    def _give_up(self, mapping: Mapping, batch: list[Record], error: str) -> None:
        mapping.failed_batches += 1
        if mapping.on_failure and ":sqs:" in mapping.on_failure:
            url = self.client("sqs").get_queue_url(QueueName=mapping.on_failure.rsplit(":", 1)[1])["QueueUrl"]
            detail = {
                "requestContext": {"functionArn": mapping.function_arn, "condition": "RetryAttemptsExhausted"},
                "timestamp": datetime.now(UTC).isoformat(),
                "DDBStreamBatchInfo": {
                    "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                    "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                    "batchSize": len(batch),
                },
                "error": error,
            }
            self.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(detail))
