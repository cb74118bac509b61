"""EventBridge → Lambda delivery, which moto leaves out: asynchronous, with the target's retries and DLQ."""

from __future__ import annotations

import copy
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.events.models import Rule


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    by_target: dict[str, int] = field(default_factory=dict)


class EventDelivery:
    def __init__(self, client: Callable[[str], Any]) -> None:
        self.client = client
        self.stats = DeliveryStats()
        self._queue: queue.Queue[tuple[dict[str, Any], dict[str, Any]] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="agentplane-event-delivery", daemon=True)
        self._original: Any = None
        self._idle = threading.Condition()
        self._pending = 0

    def install(self) -> None:
        delivery = self
        original = Rule.send_to_targets
        self._original = original

        def send_to_targets(rule: Rule, event: Any, transform_input: bool = True) -> None:
            lambdas = [t for t in rule.targets if ":lambda:" in t["Arn"]]
            others = [t for t in rule.targets if ":lambda:" not in t["Arn"]]
            if others:  # moto's own delivery (queues, log groups, archives, buses) for the rest
                view = copy.copy(rule)
                view.targets = others
                original(view, event, transform_input)
            if lambdas and rule.event_pattern.matches_event(event):
                for target in lambdas:
                    delivery.enqueue(dict(event), dict(target))

        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]
        self._worker.start()

    def uninstall(self) -> None:
        if self._original is not None:
            Rule.send_to_targets = self._original  # type: ignore[method-assign]
            self._original = None
        self._queue.put(None)
        self._worker.join(timeout=5)

    def enqueue(self, event: dict[str, Any], target: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((event, target))

    def wait_idle(self, timeout: float) -> bool:
        """True once every accepted event has been delivered or dead-lettered."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            event, target = item
            try:
                self._deliver(event, target)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, event: dict[str, Any], target: dict[str, Any]) -> None:
        attempts = 1 + int(target.get("RetryPolicy", {}).get("MaximumRetryAttempts", 185))
        error = ""
        for _ in range(min(attempts, 5)):  # locally a handful of attempts shows the behaviour
            response = self.client("lambda").invoke(
                FunctionName=target["Arn"], InvocationType="RequestResponse", Payload=json.dumps(event)
            )
            body = response["Payload"].read().decode()
            if "FunctionError" not in response:
                self.stats.delivered += 1
                self.stats.by_target[target["Arn"]] = self.stats.by_target.get(target["Arn"], 0) + 1
                return
            self.stats.failed_attempts += 1
            error = body
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        if dlq:
            queue_name = dlq.rsplit(":", 1)[1]
            url = self.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
            self.client("sqs").send_message(
                QueueUrl=url,
                MessageBody=json.dumps(event),
                MessageAttributes={
                    "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:1000] or "delivery failed"},
                    "RULE_ARN": {"DataType": "String", "StringValue": target.get("Id", "")},
                },
            )
            self.stats.dead_lettered += 1
