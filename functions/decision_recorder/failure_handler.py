"""record-failure: the Catch path's last step. A failed run still leaves a decision, and says why."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import Decision, FailureInput
from functions.decision_recorder.adapters import publish_decision
from functions.decision_recorder.service import decision_id_for, record_failure
from functions.runtime import Agent, Step

# A failure is recorded however late it comes: refusing it for the deadline would lose the run's record.
agent = Agent.from_environment(input_model=FailureInput, output_model=Decision, refuses_stale=False)


def record(request: FailureInput, step: Step) -> Decision:
    decision = record_failure(request, decision_id=decision_id_for(step.envelope.correlation_id), now=step.started)
    publish_decision(decision, envelope=step.envelope, claims=[])
    return decision


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, record, lambda _decision: {"failures_recorded": 1})
