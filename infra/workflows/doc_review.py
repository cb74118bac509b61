"""doc-review: intake -> summarize -> verify each claim (Map) -> score risk -> record the decision; failures too."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contracts.capability import DEFAULT_ROLLOUT
from infra.components.agent_pool import AgentPool
from infra.components.coordinator_workflow import ESCALATED, agent_step, dispatched_step, retry_transient
from infra.components.sagemaker_endpoint import FALLBACK_ERRORS, fallback_for

WORKFLOW = "doc-review"
INPUT_MODEL = "DocReviewRequest"
WORK_MS = 15 * 60 * 1000  # the budget for the run's own steps (intake to score, recording)
CLAIM_CONCURRENCY = 10
FACT_CHECK_RANGE = "1.x"  # the fact-check versions this workflow accepts from dispatch
APPROVAL_WINDOW_S = 60 * 60  # how long a high-risk run waits for a person before it escalates
# The run's deadline covers its declared waits: an approval (or the window's escalation) at the last minute still
# leaves the steps after it their budget. The state machine's timeout lies beyond the deadline, so a step late
# for it fails (and is recorded) before the execution itself could time out unrecorded.
TTL_MS = WORK_MS + APPROVAL_WINDOW_S * 1000
TIMEOUT_MS = TTL_MS + 15 * 60 * 1000
RECORD_FAILURE_ATTEMPTS = 4  # retries of the failure recorder on any error: a failure nobody records is a lost run
# How a changed definition takes traffic through the "live" alias (a contracts.capability.Rollout).
ROLLOUT = DEFAULT_ROLLOUT
# What a finished run returns (state path per output field).
OUTPUT_FIELDS = {
    "execution_id": "$.correlation_id",
    "decision": "$.decision",
    "risk": "$.risk",
    "summary": "$.summary.summary",
    "verdicts": "$.verdicts",
}
AGENTS = (
    "document-intake",
    "summarizer",
    "summarizer-cpu",
    "evidence-verifier",
    "risk-scorer",
    "decision-recorder",
    "failure-recorder",
)


def _caused_by(step: str, *extra: str) -> str:
    placeholders = "/".join(["{}", step, *("{}" for _ in extra)])
    return sfn.JsonPath.format(placeholders, sfn.JsonPath.string_at("$.correlation_id"), *extra)


def approval(scope: Construct, gate: lambda_.IFunction, then: sfn.IChainable, failed: sfn.IChainable) -> sfn.IChainable:
    """High risk waits for a person (task token); a closed window escalates; anything else is recorded."""
    at = sfn.JsonPath.string_at
    request = tasks.LambdaInvoke(
        scope,
        "RequestApproval",
        lambda_function=gate,
        integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
        retry_on_service_exceptions=False,  # our own retry below, with jitter
        payload=sfn.TaskInput.from_object(
            {
                "task_token": sfn.JsonPath.task_token,
                "execution_id": at("$.correlation_id"),
                "trace_id": at("$.trace_id"),
                "traceparent": at("$.traceparent"),
                "workflow": WORKFLOW,
                "policy_version": at("$.risk.policy_version"),
                "timeout_s": APPROVAL_WINDOW_S,
                "subject": {
                    "title": at("$.intake.title"),
                    "document_ref": at("$.intake.document_ref"),
                    "risk": at("$.risk"),
                },
            }
        ),
        result_path="$.approval",
        task_timeout=sfn.Timeout.duration(Duration.seconds(APPROVAL_WINDOW_S)),
        comment="a person approves or rejects; the token resumes this run",
    )
    retry_transient(request)
    timed_out = sfn.Pass(
        scope,
        "ApprovalTimedOut",
        result=sfn.Result.from_object({"decision": "timeout", "actor": "system:approval-window"}),
        result_path="$.approval",
    )
    request.add_catch(timed_out, errors=[sfn.Errors.TIMEOUT], result_path="$.approval_error")
    request.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.failure")
    not_needed = sfn.Pass(
        scope, "NoApprovalNeeded", result=sfn.Result.from_object({"decision": "not-required"}), result_path="$.approval"
    )
    timed_out.next(then)
    return (
        sfn.Choice(scope, "NeedsApproval")
        .when(sfn.Condition.string_equals("$.risk.level", "high"), request.next(then))
        .otherwise(not_needed.next(then))
    )


def summarize(
    scope: Construct, pools: Mapping[str, AgentPool], failed: sfn.IChainable, then: sfn.IChainable
) -> sfn.IChainable:
    """The summarizer endpoint (batched, warm); on its errors or throttling, the contract's CPU fallback."""
    at = sfn.JsonPath.string_at
    payload = {"title": at("$.intake.title"), "claims": at("$.intake.claims")}
    primary = agent_step(
        scope,
        "SummarizeDocument",
        pools["summarizer"],
        payload=payload,
        causation=_caused_by("SummarizeDocument"),
        result_path="$.summary",
    )
    fallback = agent_step(
        scope,
        "SummarizeOnCpu",
        fallback_for(pools["summarizer"].contract, pools),
        payload=payload,
        causation=_caused_by("SummarizeOnCpu"),
        result_path="$.summary",
    )
    primary.add_catch(fallback, errors=FALLBACK_ERRORS, result_path="$.summary_fallback")
    for step in (primary, fallback):
        step.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.failure")
    # What was degraded so far ($.degraded.steps, which the risk policy reads): nothing, or the CPU fallback.
    on_endpoint = sfn.Pass(
        scope, "SummarizedOnEndpoint", result=sfn.Result.from_object({"steps": []}), result_path="$.degraded"
    )
    on_cpu = sfn.Pass(
        scope,
        "SummarizedOnCpu",
        parameters={
            "steps": sfn.JsonPath.array(
                sfn.JsonPath.format(
                    "SummarizeOnCpu: the summarizer endpoint failed ({}), the CPU fallback summarized",
                    at("$.summary_fallback.Error"),
                )
            )
        },
        result_path="$.degraded",
    )
    fallback.next(on_cpu).next(then)
    return primary.next(on_endpoint).next(then)


def record_failure(scope: Construct, recorder: AgentPool) -> sfn.IChainable:
    """The Catch path: record the failure, then end the run failed with the original error and cause.

    Recording has its own retry (any error, with jitter) and its own Catch, so a recorder that fails or times
    out never replaces the run's error with its own; a failure caught without a cause is given one first.
    """
    at = sfn.JsonPath.string_at
    failed = sfn.Fail(scope, "Failed", error_path="$.failure.Error", cause_path="$.failure.Cause")
    # A Fail state may not raise a name in the reserved "States." namespace (States.Timeout caught from a step):
    # the run ends with the name after the prefix, and the cause says the whole of it.
    unprefixed = sfn.Pass(
        scope,
        "UnreservedErrorName",
        parameters={
            "Error": sfn.JsonPath.array_get_item(sfn.JsonPath.string_split(at("$.failure.Error"), "."), 1),
            "Cause": sfn.JsonPath.format("{}: {}", at("$.failure.Error"), at("$.failure.Cause")),
        },
        result_path="$.failure",
    )
    ended = (
        sfn.Choice(scope, "ReservedErrorName")
        .when(sfn.Condition.string_matches("$.failure.Error", "States.*"), unprefixed.next(failed))
        .otherwise(failed)
    )
    record = agent_step(
        scope,
        "RecordFailure",
        recorder,
        payload={"workflow": WORKFLOW, "error": at("$.failure.Error"), "cause": at("$.failure.Cause")},
        causation=_caused_by("RecordFailure"),
        result_path="$.decision",
    )
    record.add_retry(
        errors=[sfn.Errors.ALL],
        interval=Duration.seconds(2),
        max_attempts=RECORD_FAILURE_ATTEMPTS,
        backoff_rate=2.0,
        max_delay=Duration.seconds(30),
        jitter_strategy=sfn.JitterType.FULL,
    )
    record.add_catch(ended, errors=[sfn.Errors.ALL], result_path="$.record_failure_error")
    record.next(ended)
    named = sfn.Pass(
        scope,
        "NameTheCause",
        parameters={
            "Error": at("$.failure.Error"),
            "Cause": sfn.JsonPath.format("{} (the failing step gave no cause)", at("$.failure.Error")),
        },
        result_path="$.failure",
    )
    return (
        sfn.Choice(scope, "HasCause")
        .when(
            sfn.Condition.and_(sfn.Condition.is_present("$.failure.Cause"), sfn.Condition.is_string("$.failure.Cause")),
            record,
        )
        .otherwise(named.next(record))
    )


def definition(
    scope: Construct, pools: Mapping[str, AgentPool], gate: lambda_.IFunction, dispatcher: lambda_.IFunction
) -> sfn.IChainable:
    at = sfn.JsonPath.string_at
    failed = record_failure(scope, pools["failure-recorder"])

    intake = agent_step(
        scope,
        "Intake",
        pools["document-intake"],
        payload={"request_ref": sfn.JsonPath.object_at("$.request_ref")},  # the API claim-checked the request
        causation=_caused_by("Intake"),
        result_path="$.intake",
    )
    verify = sfn.Map(
        scope,
        "VerifyClaims",
        items_path="$.summary.claims",
        max_concurrency=CLAIM_CONCURRENCY,
        result_path="$.verdicts",
        item_selector={
            "claim": sfn.JsonPath.string_at("$$.Map.Item.Value"),
            "index": sfn.JsonPath.string_at("$$.Map.Item.Index"),
            "trace_id": at("$.trace_id"),
            "traceparent": at("$.traceparent"),
            "correlation_id": at("$.correlation_id"),
            "deadline": at("$.deadline"),
            "document_ref": at("$.intake.document_ref"),
        },
    )
    verify_claim = dispatched_step(
        scope,
        "VerifyClaim",
        dispatcher,
        pools["evidence-verifier"],
        accept=FACT_CHECK_RANGE,
        payload={"claim": at("$.claim"), "document_ref": at("$.document_ref")},
        causation=_caused_by("VerifyClaim", at("$.index")),
        result_path="$",
    )
    # Only a person can check this claim now: it goes on as unchecked and escalated, which the risk policy
    # turns into a high-risk run waiting at the approval gate.
    escalated = sfn.Pass(
        scope,
        "ClaimEscalated",
        parameters={
            "claim_id": at("$.claim.claim_id"),
            "label": "not-enough-info",
            "confidence": 0,
            "evidence": [],
            "rationale": "No implementation of fact-check could check this claim: escalated to a person.",
            "escalated": True,
        },
    )
    verify_claim.add_catch(escalated, errors=[ESCALATED], result_path="$.escalation")
    verify.item_processor(verify_claim)
    score = agent_step(
        scope,
        "ScoreRisk",
        pools["risk-scorer"],
        payload={
            "claims": at("$.intake.claims"),
            "verdicts": at("$.verdicts"),
            "degraded": at("$.degraded.steps"),
            "claims_left_out": at("$.intake.claims_left_out"),
        },
        causation=_caused_by("ScoreRisk"),
        result_path="$.risk",
    )
    record = agent_step(
        scope,
        "RecordDecision",
        pools["decision-recorder"],
        payload={
            "workflow": WORKFLOW,
            "title": at("$.intake.title"),
            "document_ref": at("$.intake.document_ref"),
            "claims": at("$.intake.claims"),
            "verdicts": at("$.verdicts"),
            "risk": at("$.risk"),
            "approval": sfn.JsonPath.object_at("$.approval"),
        },
        causation=_caused_by("RecordDecision"),
        result_path="$.decision",
    )
    summary = sfn.Pass(scope, "Summarize", parameters={key: at(path) for key, path in OUTPUT_FIELDS.items()})
    for step in (intake, verify, score, record):
        step.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.failure")
    record.next(summary).next(sfn.Succeed(scope, "Done"))
    verify.next(score).next(approval(scope, gate, record, failed))
    return intake.next(summarize(scope, pools, failed, verify))
