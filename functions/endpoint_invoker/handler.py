"""The step that reaches a SageMaker-served agent: envelope in, endpoint call, decision record, output out.

Deployed once per ``runtime: sagemaker`` contract (infra/components/sagemaker_endpoint.py) with that
contract's identity, its io models and its endpoint's name.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from contracts.models import MODELS
from functions.endpoint_invoker.adapters import client_for
from functions.endpoint_invoker.service import Endpoint, Sessions, invoke
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


def _call(request: BaseModel, step: Step) -> BaseModel:
    return invoke(client_for, endpoint, request, output_model, step.envelope, now=datetime.now(UTC), sessions=sessions)


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, _call)
