"""The dispatcher's AWS side: the registry and decisions tables, and the synchronous Lambda call of a target."""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.dispatcher.service import ImplementationFailed
from functions.runtime import tracing
from functions.runtime.adapters import client, table
from functions.runtime.decisions import DynamoDecisionStore
from functions.runtime.registry import DynamoRegistry


@cache  # made on the first claim, not at import (boto3 is most of a cold start); kept while warm
def registry() -> DynamoRegistry:
    return DynamoRegistry(table(os.environ["REGISTRY_TABLE"]))


@cache
def decisions() -> DynamoDecisionStore:
    return DynamoDecisionStore(table(os.environ["DECISIONS_TABLE"]))


def invoke(target: str, event: dict[str, Any]) -> dict[str, Any]:
    """One synchronous call; an error answer, a throttle or a timeout is the implementation's failure."""
    traceparent = tracing.current_traceparent()
    if traceparent is not None:  # the implementation's work hangs under this dispatch in the trace
        event = {**event, "traceparent": traceparent}
    try:
        response = client("lambda").invoke(FunctionName=target, Payload=json.dumps(event).encode())
    except (ClientError, BotoCoreError) as error:
        code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
        raise ImplementationFailed(code, str(error)) from None
    payload = json.loads(response["Payload"].read() or b"null")
    if "FunctionError" in response:
        body = payload if isinstance(payload, dict) else {}
        raise ImplementationFailed(str(body.get("errorType", "Unhandled")), str(body.get("errorMessage", ""))[:500])
    if not isinstance(payload, dict):
        raise ImplementationFailed("BadOutput", f"{target} answered {type(payload).__name__}, not an object")
    return payload
