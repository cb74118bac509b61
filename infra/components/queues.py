"""The plane's dead-letter queues: encrypted, TLS-only, kept as the retention table says, alarmed on depth."""

from __future__ import annotations

from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.components.nag import acknowledge
from infra.components.retention import declare, period


def dead_letter_queue(scope: Construct, construct_id: str, *, holds: str) -> sqs.Queue:
    """A queue that keeps what failed (``holds``: whose failures, for the cdk-nag acknowledgement)."""
    queue = sqs.Queue(
        scope,
        construct_id,
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=period("dead-letters"),
    )
    declare(queue, "dead-letters")
    acknowledge(queue, "AwsSolutions-SQS3", f"this queue is {holds}: a dead-letter queue needs none of its own")
    return queue
