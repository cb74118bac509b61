"""EventBridge → Lambda delivery, which moto leaves out: asynchronous, with the target's retries and DLQ.

Dead-lettered events keep EventBridge's message attributes (``RULE_ARN``, ``TARGET_ARN``, ``ERROR_MESSAGE``),
which is what ``replay_dead_letters`` needs to deliver them again to the target that failed them.
"""

from __future__ import annotations

import copy
import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from moto.events.models import Rule

from infra.local import moto_seam
from infra.local.faults import FaultPlan


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    replayed: int = 0
    by_target: dict[str, int] = field(default_factory=dict)


class EventDelivery:
    def __init__(
        self,
        client: Callable[[str], Any],
        faults: FaultPlan | None = None,
        agent_of: Callable[[str], str] = str,
    ) -> None:
        self.client = client
        self.faults = faults or FaultPlan()
        self.agent_of = agent_of  # function ARN -> the agent name faults are keyed by
        self.stats = DeliveryStats()
        self._queue: queue.Queue[tuple[dict[str, Any], dict[str, Any]] | None] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="agentplane-event-delivery", daemon=True)
        self._patches = moto_seam.Patches()
        self._idle = threading.Condition()
        self._pending = 0
        self._targets: dict[str, dict[str, Any]] = {}  # ARN -> the rule target, for replays

    def install(self) -> None:
        delivery = self
        original = moto_seam.original("events.send_to_targets")

        def send_to_targets(rule: Rule, event: Any, transform_input: bool = True) -> None:
            # Ours: Lambda targets, and queues an agent drains (bursty agents): both are where faults apply.
            lambdas = [t for t in rule.targets if delivery.delivers(t["Arn"])]
            others = [t for t in rule.targets if not delivery.delivers(t["Arn"])]
            if others:  # moto's own delivery (queues, log groups, archives, buses) for the rest
                view = copy.copy(rule)
                view.targets = others
                original(view, event, transform_input)
            if lambdas and rule.event_pattern.matches_event(event):
                for target in lambdas:
                    for _ in range(delivery.faults.event_copies(delivery.agent_of(target["Arn"]))):
                        delivery.enqueue(dict(event), dict(target))

        self._patches.apply("events.send_to_targets", send_to_targets)
        self._worker.start()

    def uninstall(self) -> None:
        self._patches.restore()
        self._queue.put(None)
        self._worker.join(timeout=5)

    def enqueue(self, event: dict[str, Any], target: dict[str, Any]) -> None:
        with self._idle:
            self._pending += 1
            self._targets[target["Arn"]] = target
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

    def delivers(self, target_arn: str) -> bool:
        """Whether this delivery (not moto's) takes events to the target: a function, or an agent's buffer."""
        return ":lambda:" in target_arn or (":sqs:" in target_arn and self.agent_of(target_arn) != target_arn)

    def _deliver(self, event: dict[str, Any], target: dict[str, Any]) -> None:
        attempts = 1 + int(target.get("RetryPolicy", {}).get("MaximumRetryAttempts", 185))
        error = ""
        if self.faults.drops_event(self.agent_of(target["Arn"])):
            self.stats.failed_attempts += min(attempts, 5)
            self._dead_letter(event, target, "injected fault: the target never acknowledged the event")
            return
        if ":sqs:" in target["Arn"]:  # a bursty agent's buffer: the event is the message, as EventBridge sends it
            url = self.client("sqs").get_queue_url(QueueName=target["Arn"].rsplit(":", 1)[1])["QueueUrl"]
            self.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(event))
            self.stats.delivered += 1
            self.stats.by_target[target["Arn"]] = self.stats.by_target.get(target["Arn"], 0) + 1
            return
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
        self._dead_letter(event, target, error)

    def _dead_letter(self, event: dict[str, Any], target: dict[str, Any], error: str) -> None:
        dlq = target.get("DeadLetterConfig", {}).get("Arn")
        if not dlq:
            return
        queue_name = dlq.rsplit(":", 1)[1]
        url = self.client("sqs").get_queue_url(QueueName=queue_name)["QueueUrl"]
        self.client("sqs").send_message(
            QueueUrl=url,
            MessageBody=json.dumps(event),  # as EventBridge does: the event itself, the target in attributes
            MessageAttributes={
                "ERROR_MESSAGE": {"DataType": "String", "StringValue": error[:1000] or "delivery failed"},
                "RULE_ARN": {"DataType": "String", "StringValue": target.get("Id", "")},
                "TARGET_ARN": {"DataType": "String", "StringValue": target["Arn"]},
            },
        )
        self.stats.dead_lettered += 1

    def dead_letter_queues(self) -> list[str]:
        """URLs of the queues named as dead-letter queues by the bus's Lambda targets."""
        events = self.client("events")
        sqs = self.client("sqs")
        names: set[str] = set()
        for bus in events.list_event_buses()["EventBuses"]:
            for rule in events.list_rules(EventBusName=bus["Name"])["Rules"]:
                targets = events.list_targets_by_rule(Rule=rule["Name"], EventBusName=bus["Name"])["Targets"]
                names.update(t["DeadLetterConfig"]["Arn"].rsplit(":", 1)[1] for t in targets if "DeadLetterConfig" in t)
        return sorted(sqs.get_queue_url(QueueName=name)["QueueUrl"] for name in names)

    def replay_dead_letters(self) -> int:
        """Deliver every dead-lettered event again to the target that failed it; returns how many were re-queued.

        A message is deleted once its event is queued again: a replay that fails dead-letters it anew.
        """
        sqs = self.client("sqs")
        replayed = 0
        for url in self.dead_letter_queues():
            while True:
                received = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30, MessageAttributeNames=["All"]
                )
                messages = received.get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    target_arn = message["MessageAttributes"]["TARGET_ARN"]["StringValue"]
                    self.enqueue(json.loads(message["Body"]), self._targets[target_arn])
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    replayed += 1
        self.stats.replayed += replayed
        return replayed
