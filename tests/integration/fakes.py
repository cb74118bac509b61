"""What the integration tests share: a Lambda context, the faked plane's resources, envelopes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3

from contracts.envelope import Envelope

REGION = "us-east-1"
ACCOUNT = "123456789012"
KNOWLEDGE_BASE = Path(__file__).parents[2] / "functions" / "knowledge_base" / "passages.jsonl"
TRACE_ID = "1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31"


@dataclass(frozen=True)
class LambdaContext:
    """What Powertools reads from the Lambda context object."""

    function_name: str = "agentplane-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:agentplane-test"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass(frozen=True)
class Plane:
    """The stateful resources of infra/components/data_store.py and the event bus, faked by moto."""

    decisions_table: str = "agentplane-decisions"
    executions_table: str = "agentplane-executions"
    idempotency_table: str = "agentplane-idempotency"
    registry_table: str = "agentplane-registry"
    documents_bucket: str = "agentplane-documents"
    event_bus: str = "agentplane-bus"

    def create(self) -> None:
        create_table(self.decisions_table, "correlation_id", "step_key")
        create_table(self.executions_table, "execution_id")
        create_table(self.idempotency_table, "id")
        create_table(self.registry_table, "implementation")
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=self.documents_bucket)
        boto3.client("events", region_name=REGION).create_event_bus(Name=self.event_bus)

    @property
    def decisions(self) -> Any:
        return table(self.decisions_table)

    @property
    def executions(self) -> Any:
        return table(self.executions_table)

    @property
    def idempotency(self) -> Any:
        return table(self.idempotency_table)

    def granted_environment(self) -> dict[str, tuple[str, str]]:
        """Permission verb -> the variable infra's grant sets for it (infra/components/agent_pool.py)."""
        return {
            "write:documents": ("DOCUMENTS_BUCKET", self.documents_bucket),
            "read:documents": ("DOCUMENTS_BUCKET", self.documents_bucket),
            "write:executions": ("EXECUTIONS_TABLE", self.executions_table),
            "publish:events": ("EVENT_BUS_NAME", self.event_bus),
            "write:idempotency": ("IDEMPOTENCY_TABLE", self.idempotency_table),
            "read:kb": ("KNOWLEDGE_BASE_PATH", str(KNOWLEDGE_BASE)),
        }


def table(name: str) -> Any:
    return boto3.resource("dynamodb", region_name=REGION).Table(name)


def create_table(name: str, partition: str, sort: str | None = None) -> None:
    keys = [{"AttributeName": partition, "KeyType": "HASH"}]
    attributes = [{"AttributeName": partition, "AttributeType": "S"}]
    if sort is not None:
        keys.append({"AttributeName": sort, "KeyType": "RANGE"})
        attributes.append({"AttributeName": sort, "AttributeType": "S"})
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=name, KeySchema=keys, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST"
    )


def scan(resource: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = resource.scan(ConsistentRead=True)["Items"]
    return items


def envelope(
    capability: str,
    payload: dict[str, Any],
    *,
    correlation_id: str | None = None,
    step: str = "Step",
    ttl_ms: int = 60_000,
    now: datetime | None = None,
    version: str = "1.0.0",
) -> dict[str, Any]:
    """A step input as the coordinator sends it: causation id ``<run>/<step>``, deadline ``now + ttl_ms``."""
    run = correlation_id or str(uuid.uuid4())
    built = Envelope.with_ttl(
        ttl_ms=ttl_ms,
        trace_id=TRACE_ID,
        causation_id=f"{run}/{step}",
        correlation_id=run,
        capability=capability,
        capability_version=version,
        payload=payload,
        now=now,
    )
    return built.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class DeployedAgent:
    """One agent's handler and the environment its Lambda function has; each call runs inside that environment.

    Handlers read some variables at import (identity, knowledge base) and some per call (bucket, table, bus),
    so both the import and every invocation see exactly what infra would set, and nothing another agent has.
    """

    name: str
    environment: dict[str, str]
    unset: frozenset[str]
    handler: Callable[..., Any]

    def __call__(self, event: Any, context: LambdaContext) -> Any:
        with lambda_environment(self.environment, self.unset):
            return self.handler(event, context)


@contextmanager
def lambda_environment(values: dict[str, str], unset: frozenset[str]) -> Iterator[None]:
    """``values`` set and the other ``unset`` variables absent, for the duration of the block."""
    with mock.patch.dict(os.environ, values):
        for name in unset - values.keys():
            os.environ.pop(name, None)
        yield


Deploy = Callable[[str], DeployedAgent]
ColdStart = Callable[[str], ModuleType]
