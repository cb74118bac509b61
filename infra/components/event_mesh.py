"""Choreography: the plane's bus, its archive for replay, and idempotent subscribers each with a DLQ."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.components.agent_pool import Buffering
from infra.components.queues import dead_letter_queue
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

    def subscribe(
        self,
        construct_id: str,
        *,
        detail_types: Sequence[str],
        function: lambda_.IFunction,
        buffering: Buffering | None = None,
        timeout: Duration | None = None,
        scope: Construct | None = None,
    ) -> events.Rule:
        """Deliver events of the given types to a function, with retries and a dead-letter queue of its own.

        With ``buffering`` (bursty agents) the rule feeds a queue the function drains in batches, reporting
        failed records one by one; a record that keeps failing goes to the same dead-letter queue. ``scope`` holds
        the rule and its queues: the function's own stack when it is not the bus's (a project's), so the plane's
        stack never refers to a project's.
        """
        where = scope or self
        dlq = dead_letter_queue(where, f"{construct_id}Dlq", holds="the dead-letter queue of the rule's target")
        self.dead_letter_queues[construct_id] = dlq
        rule = events.Rule(
            where,
            construct_id,
            event_bus=self.bus,
            description=f"{', '.join(detail_types)} -> {construct_id}",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE], detail_type=list(detail_types)),
        )
        if buffering is None:
            rule.add_target(
                targets.LambdaFunction(
                    function, dead_letter_queue=dlq, retry_attempts=4, max_event_age=Duration.hours(2)
                )
            )
            return rule
        # SQS wants the visibility timeout to cover the function's timeout and the batching window, six-fold.
        visibility = Duration.seconds(
            6 * ((timeout or Duration.seconds(30)).to_seconds() + buffering.max_window.to_seconds())
        )
        buffer = sqs.Queue(
            where,
            f"{construct_id}Buffer",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=period("work-buffers"),
            visibility_timeout=visibility,
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=5),
        )
        declare(buffer, "work-buffers")
        rule.add_target(
            targets.SqsQueue(buffer, dead_letter_queue=dlq, retry_attempts=4, max_event_age=Duration.hours(2))
        )
        function.add_event_source(
            sources.SqsEventSource(
                buffer,
                batch_size=buffering.batch_size,
                max_batching_window=buffering.max_window,
                report_batch_item_failures=True,
            )
        )
        return rule
