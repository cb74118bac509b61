"""The step that reaches a SageMaker-served agent: envelope in, endpoint call, decision record, output out.

Deployed once per ``runtime: sagemaker`` contract (infra/components/sagemaker_endpoint.py) with that
contract's identity, its io models and its endpoint's name.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from contracts.models import MODELS
from functions.endpoint_invoker.service import (
    Endpoint,
    RuntimeClient,
    Sessions,
    classify,
    client_timeout_bucket,
    invoke,
)
from functions.runtime import Agent, Step

input_model: type[BaseModel] = MODELS[os.environ["AGENT_INPUT_MODEL"]]
output_model: type[BaseModel] = MODELS[os.environ["AGENT_OUTPUT_MODEL"]]
agent = Agent.from_environment(input_model=input_model, output_model=output_model)
endpoint = Endpoint(
    name=os.environ["ENDPOINT_NAME"],
    stateful=os.environ.get("ENDPOINT_STATEFUL") == "true",
    timeout_s=float(os.environ.get("ENDPOINT_TIMEOUT_S", "60")),
)
sessions = Sessions()


class _TypedErrors:
    """boto3's client with its errors mapped to the names the workflow's Catch matches."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def invoke_endpoint(self, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.invoke_endpoint(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("OriginalStatusCode")  # ModelError: the container's own status
            code, message = str(error.get("Code", "")), str(error.get("Message", ""))
            raise classify(code, message, status if isinstance(status, int) else None) from exc
        except BotoCoreError as exc:  # timeouts, connection failures
            raise classify(type(exc).__name__, str(exc)) from exc


@lru_cache(maxsize=8)
def _client(seconds: int) -> RuntimeClient:
    import boto3
    from botocore.config import Config

    # No SDK retries: a throttled or failed call goes to the contract's fallback, not round again.
    config = Config(read_timeout=seconds, connect_timeout=2, retries={"total_max_attempts": 1})
    return _TypedErrors(boto3.client("sagemaker-runtime", config=config))


def client_for(seconds: float) -> RuntimeClient:
    return _client(client_timeout_bucket(seconds))


def _call(request: BaseModel, step: Step) -> BaseModel:
    return invoke(client_for, endpoint, request, output_model, step.envelope, now=datetime.now(UTC), sessions=sessions)


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, _call)
