"""summarizer-cpu: the summarization capability in-process on Lambda, the endpoint's fallback."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import SummarizeRequest, Summary
from functions.runtime import Agent
from functions.summarizer.core import MODEL_PATH, OnnxScorer, summarize

agent = Agent.from_environment(input_model=SummarizeRequest, output_model=Summary)
scorer = OnnxScorer(MODEL_PATH, threads=1)  # the same model file the endpoint's image bundles; once per instance


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, lambda request, _step: summarize(request, scorer))
