"""quick-check (Express, synchronous): one claim -> the evidence verifier's verdict, inside the caller's request."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from contracts.capability import DEFAULT_ROLLOUT
from infra.components.agent_pool import AgentPool
from infra.components.coordinator_workflow import agent_step

WORKFLOW = "quick-check"
INPUT_MODEL = "QuickCheckRequest"
TTL_MS = 10 * 1000  # the hot path's whole budget; stale work is refused, not run
# The Express machine's own timeout: a run past its TTL answers nobody. The API waits on it inside the request, so
# it must end within API Gateway's 29 s (infra.components.public_api.INTEGRATION_TIMEOUT_S).
TIMEOUT_S = TTL_MS // 1000
AGENTS = ("evidence-verifier",)
# How a changed definition takes traffic through the "live" alias (a contracts.capability.Rollout).
ROLLOUT = DEFAULT_ROLLOUT


def definition(scope: Construct, pools: Mapping[str, AgentPool]) -> sfn.IChainable:
    at = sfn.JsonPath.string_at
    verify = agent_step(
        scope,
        "QuickVerify",
        pools["evidence-verifier"],
        payload={"claim": {"claim_id": "c-001", "text": at("$.request.claim"), "sentence_index": 0}},
        causation=sfn.JsonPath.format("{}/QuickVerify", at("$.correlation_id")),
        result_path="$.verdict",
    )
    answer = sfn.Pass(scope, "Answer", parameters={"execution_id": at("$.correlation_id"), "verdict": at("$.verdict")})
    return verify.next(answer)
