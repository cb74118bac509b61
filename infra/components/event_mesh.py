"""Choreography: the plane's bus, its archive for replay, and idempotent subscribers each with a DLQ."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.components.nag import acknowledge
from infra.components.retention import declare, period

EVENT_SOURCE = "agentplane"


class EventMesh(Construct):
    def __init__(self, scope: Construct, construct_id: str):
        super().__init__(scope, construct_id)
        self.dead_letter_queues: dict[str, sqs.Queue] = {}
        self.bus = events.EventBus(self, "Bus", event_bus_name=f"{Stack.of(self).stack_name}-agents")
        self.archive = self.bus.archive(
            "Archive",
            description="Every agentplane event, for replay",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE]),
            retention=period("event-archive"),
        )
        declare(self.archive, "event-archive")

    def subscribe(self, construct_id: str, *, detail_type: str, function: lambda_.IFunction) -> events.Rule:
        """Deliver one event type to a function, with retries and a dead-letter queue of its own."""
        dlq = sqs.Queue(
            self,
            f"{construct_id}Dlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=period("dead-letters"),
        )
        declare(dlq, "dead-letters")
        acknowledge(dlq, "AwsSolutions-SQS3", "this queue is the dead-letter queue of the rule's target")
        self.dead_letter_queues[construct_id] = dlq
        rule = events.Rule(
            self,
            construct_id,
            event_bus=self.bus,
            description=f"{detail_type} -> {construct_id}",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=[detail_type]),
        )
        rule.add_target(
            targets.LambdaFunction(function, dead_letter_queue=dlq, retry_attempts=4, max_event_age=Duration.hours(2))
        )
        return rule
