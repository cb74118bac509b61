"""risk-scorer: apply the written policy to the verdicts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import RiskAssessment, RiskInput
from functions.risk_scorer.service import default_policy, score
from functions.runtime import Agent

agent = Agent.from_environment(input_model=RiskInput, output_model=RiskAssessment)
policy = default_policy()


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(
        event,
        lambda request, _step: score(request, policy),
        lambda risk: {"high_risk_count": int(risk.level == "high")},
    )
