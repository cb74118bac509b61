"""SQS → Lambda as Lambda's event source mapping does it: a poller per mapping, batches gathered over the
batching window, failed records (``ReportBatchItemFailures``) left on the queue to be retried and, past the
queue's ``maxReceiveCount``, moved to its dead-letter queue by the redrive policy.

moto would invoke the function inside ``SendMessage`` itself, one message per batch, and keep or drop a
partially failed batch as a whole.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.sqs.models import Queue

from infra.local import moto_seam
from infra.local.template import REGION

SQS_MAX_RECEIVE = 10


@dataclass
class QueueMapping:
    function_arn: str
    queue_arn: str
    batch_size: int = 10
    window_s: float = 0.0
    report_item_failures: bool = False
    delivered: int = 0
    failed_records: int = 0
    wake: threading.Event = field(default_factory=threading.Event)


class QueueDelivery:
    # A record failing this many rounds in a row stays on the queue (invisible) rather than spin locally.
    LOCAL_RETRY_CAP = 5

    def __init__(self, client: Callable[[str], Any], *, window_scale: float = 0.01) -> None:
        self.client = client
        self.window_scale = window_scale
        self.mappings: dict[str, QueueMapping] = {}  # queue ARN -> mapping
        self._threads: list[threading.Thread] = []
        self._patches = moto_seam.Patches()
        self._stopping = threading.Event()
        self._busy = 0
        self._lock = threading.Lock()

    def register(self, props: dict[str, Any]) -> None:
        mapping = QueueMapping(
            function_arn=str(props["FunctionName"]),
            queue_arn=str(props["EventSourceArn"]),
            batch_size=int(props.get("BatchSize", 10)),
            window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)) * self.window_scale,
            report_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
        )
        self.mappings[mapping.queue_arn] = mapping
        thread = threading.Thread(target=self._run, args=(mapping,), daemon=True, name="queue-delivery")
        thread.start()
        self._threads.append(thread)

    def install(self) -> None:
        delivery = self
        original = moto_seam.original("sqs.add_message")

        def add_message(queue: Queue, message: Any) -> None:
            original(queue, message)
            mapping = delivery.mappings.get(queue.queue_arn)
            if mapping is not None:
                mapping.wake.set()

        self._patches.apply("sqs.add_message", add_message)

    def uninstall(self) -> None:
        self._patches.restore()
        self._stopping.set()
        for mapping in self.mappings.values():
            mapping.wake.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def wait_idle(self, timeout: float) -> bool:
        """True once no batch is in flight and every buffered queue is empty (delivered or dead-lettered)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._idle():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def _idle(self) -> bool:
        with self._lock:
            if self._busy:
                return False
        return all(self._depth(mapping) == 0 for mapping in self.mappings.values())

    def _url(self, mapping: QueueMapping) -> str:
        url: str = self.client("sqs").get_queue_url(QueueName=mapping.queue_arn.rsplit(":", 1)[1])["QueueUrl"]
        return url

    def _depth(self, mapping: QueueMapping) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.client("sqs").get_queue_attributes(QueueUrl=self._url(mapping), AttributeNames=names)
        return sum(int(found["Attributes"].get(name, 0)) for name in names)

    def _run(self, mapping: QueueMapping) -> None:
        while True:
            mapping.wake.wait()
            if self._stopping.is_set():
                return
            with self._lock:
                self._busy += 1
            try:
                mapping.wake.clear()
                time.sleep(mapping.window_s)  # the batching window: what arrives meanwhile joins the batch
                self._drain(mapping)
            finally:
                with self._lock:
                    self._busy -= 1

    def _drain(self, mapping: QueueMapping) -> None:
        url = self._url(mapping)
        failing_rounds = 0
        while not self._stopping.is_set() and failing_rounds < self.LOCAL_RETRY_CAP:
            messages = self._receive(url, mapping.batch_size)
            if not messages:
                return
            failed = self._invoke(mapping, messages)
            sqs = self.client("sqs")
            for message in messages:
                if message["MessageId"] in failed:
                    sqs.change_message_visibility(
                        QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            mapping.delivered += len(messages) - len(failed)
            mapping.failed_records += len(failed)
            failing_rounds = failing_rounds + 1 if failed else 0

    def _receive(self, url: str, batch_size: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < batch_size:
            got = (
                self.client("sqs")
                .receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(SQS_MAX_RECEIVE, batch_size - len(messages)),
                    MessageSystemAttributeNames=["All"],
                    WaitTimeSeconds=0,
                )
                .get("Messages", [])
            )
            if not got:
                break
            messages.extend(got)
        return messages

    def _invoke(self, mapping: QueueMapping, messages: list[dict[str, Any]]) -> set[str]:
        """The ids of the messages to retry: all of them when the call failed, else those the function named."""
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": mapping.queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
        response = self.client("lambda").invoke(
            FunctionName=mapping.function_arn, Payload=json.dumps({"Records": records})
        )
        body = json.loads(response["Payload"].read() or b"null")
        every = {m["MessageId"] for m in messages}
        if "FunctionError" in response:
            return every
        if not mapping.report_item_failures or not isinstance(body, dict):
            return set()
        return {str(f.get("itemIdentifier")) for f in body.get("batchItemFailures", [])} & every
