"""The loop function's AWS side: the model (Bedrock Converse, or a self-hosted model's SageMaker endpoint asked
the same turn as a chat completion), the tool dispatcher, and the documents bucket that keeps each turn's
content. Clients are made on first use and kept while warm; every refused or failed call is the loop's error.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from pydantic import ValidationError

from contracts.capability import MODEL_ENDPOINT_ENV
from contracts.envelope import Envelope
from contracts.models import ChatCompletion
from contracts.validation import first_error
from functions.llm_agent.chat import ChatTranslationError, chat_request, converse_response
from functions.llm_agent.loop import AgentConfig, ModelError, ThrottlingException, ToolFailed, ToolSpec
from functions.runtime.adapters import client
from functions.runtime.documents import DocumentStore

# Bedrock's and SageMaker's answers that mean "not now": another implementation should take the step.
THROTTLED = frozenset(
    {"ThrottlingException", "ServiceUnavailableException", "ServiceUnavailable", "ModelNotReadyException"}
)


@cache
def bedrock() -> Any:
    return client("bedrock-runtime")


@cache
def sagemaker() -> Any:
    return client("sagemaker-runtime")


@cache
def conversations() -> DocumentStore:
    from functions.runtime.adapters import S3DocumentStore

    return S3DocumentStore(os.environ["DOCUMENTS_BUCKET"])


def converse(config: AgentConfig, request: dict[str, Any]) -> dict[str, Any]:
    """One turn: Bedrock Converse, or the same turn asked of the self-hosted model's endpoint."""
    if config.provider == "sagemaker":
        return invoke_endpoint(config.model_id, request)
    with model_errors():
        response: dict[str, Any] = bedrock().converse(**request)
    response.pop("ResponseMetadata", None)
    return response


def invoke_endpoint(model_name: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        body = chat_request(request, model_name).model_dump_json(exclude_none=True)
    except ChatTranslationError as error:
        raise ModelError(f"the request cannot be asked of {model_name}: {error}") from None
    started = time.perf_counter()
    with model_errors():
        answer = sagemaker().invoke_endpoint(
            EndpointName=os.environ[MODEL_ENDPOINT_ENV],
            ContentType="application/json",
            Accept="application/json",
            Body=body,
        )
        raw = answer["Body"].read()
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        return converse_response(ChatCompletion.model_validate_json(raw), latency_ms)
    except ValidationError as error:
        raise ModelError(f"{model_name} answered no chat completion: {first_error(error)}"[:500]) from None
    except ChatTranslationError as error:
        raise ModelError(f"{model_name} answered a malformed turn: {error}"[:500]) from None


@contextmanager
def model_errors() -> Iterator[None]:
    """A refused or failed model call as the loop's error: throttled (another implementation should take the
    step) or the model's fault."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as error:
        code = str(error.response["Error"]["Code"])
        message = f"{code}: {error.response['Error'].get('Message', '')}"[:500]
        raise (ThrottlingException if code in THROTTLED else ModelError)(message) from None
    except BotoCoreError as error:
        raise ModelError(f"{type(error).__name__}: {error}"[:500]) from None


def dispatch(spec: ToolSpec, envelope: Envelope) -> dict[str, Any]:
    """A tool call through the dispatcher function (which picks the implementation): its output, or ToolFailed."""
    event = {"accept": spec.accept, "envelope": envelope.model_dump(mode="json")}
    response = client("lambda").invoke(FunctionName=os.environ["DISPATCHER_FUNCTION"], Payload=json.dumps(event))
    payload = json.loads(response["Payload"].read() or b"null")
    if "FunctionError" in response or not isinstance(payload, dict):
        body = payload if isinstance(payload, dict) else {}
        raise ToolFailed(f"{spec.name}: {body.get('errorType', 'Unhandled')}: {body.get('errorMessage', '')}")
    return payload
