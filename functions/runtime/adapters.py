"""The AWS adapters every function shares: clients (made on first use, reused while warm), tables, the documents
bucket and the event bus. A function's own adapters are in its ``adapters.py``; a store's DynamoDB side sits with
its port (``decisions``, ``executions``, ``approvals``, ``registry``, ``ledger_store``).
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel


@cache
def client(service: str) -> Any:
    import boto3

    return boto3.client(service)  # type: ignore[call-overload]


@cache
def table(name: str) -> Any:
    import boto3

    return boto3.resource("dynamodb").Table(name)


def scan_all(table: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item a Scan returns, page after page."""
    items: list[dict[str, Any]] = []
    while True:
        page = table.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs = {**kwargs, "ExclusiveStartKey": page["LastEvaluatedKey"]}


def put_new(table: Any, key: str, item: BaseModel) -> None:
    """Write ``item``, which must not exist yet: the put is conditional on its partition key ``key``."""
    table.put_item(
        Item=item.model_dump(mode="json", exclude_none=True), ConditionExpression=f"attribute_not_exists({key})"
    )


def get_item(table: Any, key: str, value: str) -> dict[str, Any] | None:
    """The item whose partition key ``key`` is ``value``, read consistently; None when there is none."""
    found: dict[str, Any] | None = table.get_item(Key={key: value}, ConsistentRead=True).get("Item")
    return found


class S3DocumentStore:
    """Documents bucket (claim-check): the production functions.runtime.documents.DocumentStore."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, key: str, body: bytes) -> None:
        client("s3").put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def get(self, key: str) -> bytes:
        body: bytes = client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


class EventPublisher:
    """Puts events on the plane's bus; a failed entry is an error, never a silent drop."""

    def __init__(self, bus_name: str, source: str = "agentplane") -> None:
        self.bus_name = bus_name
        self.source = source

    def publish(self, detail_type: str, detail: dict[str, Any], *, trace_header: str | None = None) -> str:
        entry: dict[str, Any] = {
            "EventBusName": self.bus_name,
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, separators=(",", ":")),
        }
        if trace_header:
            entry["TraceHeader"] = trace_header  # X-Ray links the targets' segments to this trace
        response = client("events").put_events(Entries=[entry])
        entry = response["Entries"][0]
        if response.get("FailedEntryCount", 0) or "EventId" not in entry:
            raise RuntimeError(f"event {detail_type} was not accepted: {entry.get('ErrorMessage', 'unknown error')}")
        event_id: str = entry["EventId"]
        return event_id
