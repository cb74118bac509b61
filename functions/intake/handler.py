"""document-intake: store the document (claim-check) and extract the claims to verify."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import IntakeRequest, IntakeResult
from functions.intake.service import intake, load_request
from functions.runtime import Agent, Step
from functions.runtime.adapters import S3DocumentStore

agent = Agent.from_environment(input_model=IntakeRequest, output_model=IntakeResult)


def take_in(request: IntakeRequest, step: Step) -> IntakeResult:
    bucket = os.environ["DOCUMENTS_BUCKET"]
    store = S3DocumentStore(bucket)
    document = request.request if request.request_ref is None else load_request(request.request_ref, store)
    assert document is not None  # IntakeRequest holds exactly one of the two
    return intake(document, store=store, bucket=bucket)


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, take_in, lambda result: {"claims_extracted": len(result.claims)})
