"""record-decision: the run's decision goes to the executions view and, as decision.recorded, to the bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import Decision, DecisionInput
from functions.decision_recorder.adapters import publish_decision
from functions.decision_recorder.service import decide, decision_id_for
from functions.runtime import Agent, Step

agent = Agent.from_environment(input_model=DecisionInput, output_model=Decision)


def record(request: DecisionInput, step: Step) -> Decision:
    decision = decide(request, decision_id=decision_id_for(step.envelope.correlation_id), now=step.started)
    publish_decision(decision, envelope=step.envelope, claims=request.claims)
    return decision


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, record, lambda _decision: {"decisions_recorded": 1})
