"""evidence-verifier: score one claim against the shipped knowledge base."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from contracts.models import ClaimCheck, Verdict
from functions.evidence_verifier.service import KnowledgeBase, approximate, verify
from functions.runtime import Agent

agent = Agent.from_environment(input_model=ClaimCheck, output_model=Verdict)
knowledge_base = KnowledgeBase.load(Path(os.environ["KNOWLEDGE_BASE_PATH"]))  # indexed once per warm instance


def _evidence_hits(verdict: Verdict) -> dict[str, float]:
    return {"evidence_hits": len(verdict.evidence)}


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return agent.run(event, lambda check, _step: verify(check, knowledge_base), _evidence_hits)


@agent.logger.inject_lambda_context
@agent.metrics.log_metrics
def approximate_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The contract's degraded handler: dispatch falls back to it when the full verifier fails."""
    return agent.run(event, lambda check, _step: approximate(check, knowledge_base), _evidence_hits)
