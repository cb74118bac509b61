"""doc-review with the LLM fact-checker on the local plane: the loop, its tool calls, its ledger, its failures.

The model is the local plane's deterministic stand-in (infra/local/bedrock); scripts registered for the
fact-checker's model make it loop, overrun its budget or answer outside the contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from contracts.registry import Circuit, Health
from functions.runtime.registry import DynamoRegistry
from infra.client import finished, request
from infra.local.bedrock import ModelTurn, ScriptedModel
from infra.local.faults import Fault
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e

LLM = "fact-checker-llm"
HEURISTIC = "evidence-verifier"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
CLAIM_STEP = re.compile(r"^VerifyClaim/\d+$")


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    with LocalPlane(plane_options(schedule_scale=0)) as running:
        yield running


@pytest.fixture(autouse=True)
def default_model(plane: LocalPlane) -> Iterator[None]:
    """Each test starts with the default stand-in, no faults and closed circuits, seen by fresh dispatchers."""
    registry = DynamoRegistry(boto3.resource("dynamodb").Table(plane.physical("RegistryTable", "AWS::DynamoDB::Table")))
    assert plane.settle()  # no health update of an earlier test still on its way
    for name in (LLM, HEURISTIC):
        registry.set_circuit(name, Circuit())
        registry.set_health(name, Health())
    for dispatcher in ("RegistryDispatcher", "RegistryToolDispatcher"):
        plane.lambdas.recycle(plane.physical(dispatcher, "AWS::Lambda::Function"))
    yield
    plane.bedrock.remove_model(MODEL)
    plane.bedrock.clear_faults()
    plane.options.faults.faults.clear()


def review(plane: LocalPlane) -> dict[str, Any]:
    answer = request(
        plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-low-risk.json"), {}
    )
    assert answer.status == 202, answer.body
    return finished(plane.url, answer.body["execution_id"], timeout=180, approve="approve")


def claim_steps(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in run["steps"] if CLAIM_STEP.match(s["step"])]


def test_the_llm_fact_checker_checks_each_claim_with_tools_through_the_registry(plane: LocalPlane) -> None:
    run = review(plane)

    assert run["status"] == "SUCCEEDED"
    claims = claim_steps(run)
    assert claims
    assert {(s["agent"], s["route"]["chosen"], s["status"]) for s in claims} == {(LLM, LLM, "SUCCEEDED")}
    steps = {s["step"]: s for s in run["steps"]}
    first = claims[0]["step"]
    # its tool call went through dispatch to the heuristic verifier, under the run's trace and envelope
    tool = steps[f"{first}/tool/1.0"]
    assert (tool["agent"], tool["capability"], tool["route"]["chosen"]) == (HEURISTIC, "confidence-scoring", HEURISTIC)
    # and each model turn is a decision by the model: tokens, stop reason, tool calls (digests, not content)
    turns = [s for s in run["steps"] if s["step"].startswith(f"{first}/turn/")]
    assert [s["step"] for s in turns] == [f"{first}/turn/1", f"{first}/turn/2"]
    assert {s["actor"] for s in turns} == {f"model:us.{MODEL}"}
    assert request(plane.url, "POST", "/local/schedules/run").status == 200  # the ledger caught up, a digest signed
    lineage = request(plane.url, "GET", f"/v1/audit/traces/{run['trace_id']}", persona="auditor").body
    unverified = [(s["step"], s["verification"]) for s in lineage["steps"] if s["verification"] != "verified"]
    assert lineage["verified"] is True, unverified
    recorded = {s["step"]: s for s in lineage["steps"]}
    assert {f"{first}/turn/1", f"{first}/turn/2", f"{first}/tool/1.0"} <= set(recorded)


def test_every_turn_records_its_model_tokens_stop_reason_and_cost(plane: LocalPlane) -> None:
    run = review(plane)
    table = plane.client("dynamodb")
    decisions = plane.physical("DataDecisions", "AWS::DynamoDB::Table")
    items = table.query(
        TableName=decisions,
        KeyConditionExpression="correlation_id = :c",
        ExpressionAttributeValues={":c": {"S": run["execution_id"]}},
    )["Items"]
    turns = [json.loads(i["output_json"]["S"]) for i in items if "/turn/" in i["step_key"]["S"]]

    assert turns
    for turn in turns:
        assert turn["model_id"] == f"us.{MODEL}"
        assert turn["usage"]["input_tokens"] > 0
        assert turn["usage"]["output_tokens"] > 0
        assert turn["stop_reason"] == "tool_use"
        assert turn["cost_usd"] > 0
        assert len(turn["prompt_sha256"]) == 64
        assert turn["served_by"] == f"local stand-in {MODEL}"  # the local plane says it is not a real model
    names = sorted({c["name"] for t in turns for c in t["tool_calls"]})
    assert names == ["confidence-scoring", "final_answer"]
    # the token counts are in the agent's metrics too (EMF in its log)
    assert plane.bedrock.usage()[f"us.{MODEL}"].input_tokens >= sum(t["usage"]["input_tokens"] for t in turns)


def test_a_throttled_model_falls_back_to_the_heuristic(plane: LocalPlane) -> None:
    plane.options.faults.faults[LLM] = Fault(error="ThrottlingException")
    plane._fault_models()  # what `--fault fact-checker-llm=ThrottlingException` does at start

    run = review(plane)

    assert LLM not in plane.options.faults.faults  # the model is faulted, not the function
    assert run["status"] == "SUCCEEDED"
    routes = [s["route"] for s in claim_steps(run) if s["status"] == "SUCCEEDED"]
    assert {r["chosen"] for r in routes} == {HEURISTIC}
    assert {s["error"]["type"] for s in claim_steps(run) if s["status"] == "FAILED"} <= {"ThrottlingException"}
    tried = [t for r in routes for t in r["tried"]]
    skipped = [n for r in routes for n in r["skipped"]]
    assert all(t["implementation"] == LLM and t["error"].startswith("ThrottlingException") for t in tried)
    assert tried or any(n.startswith(f"{LLM}: circuit open") for n in skipped)
    assert plane.bedrock.usage()[f"us.{MODEL}"].errors.get("ThrottlingException", 0) >= 1
    # each throttled step is counted in the agent's own metric, which its throttling alarm reads
    function = plane.physical("AgentFactCheckerLlmFunction", "AWS::Lambda::Function")
    emitted = [
        json.loads(line)
        for log in plane.lambdas.logs_dir.glob("AgentFactCheckerLlmFunction*.log")
        for line in log.read_text(encoding="utf-8").splitlines()
        if '"throttle_count"' in line
    ]
    assert emitted, f"no throttle_count in the logs of {function}"
    assert emitted[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "agentplane"
    assert emitted[-1]["service"] == LLM


@pytest.mark.parametrize(
    ("script", "error"),
    [
        pytest.param([ModelTurn.tool_use("confidence-scoring", {"claim": {}})], "BudgetExceeded", id="endless-tools"),
        pytest.param([ModelTurn.final_answer({"label": "probably"})], "ModelError", id="invalid-answer"),
        pytest.param([ModelTurn.text("It is true.")], "ModelError", id="text-not-a-tool"),
    ],
)
def test_a_loop_that_fails_its_contract_is_a_typed_failure_and_the_heuristic_answers(
    plane: LocalPlane, script: list[ModelTurn], error: str
) -> None:
    plane.bedrock.add_model(ScriptedModel(id=MODEL, script=script))

    run = review(plane)

    assert run["status"] == "SUCCEEDED"
    claims = claim_steps(run)
    failed = [s for s in claims if s["agent"] == LLM and s["status"] == "FAILED"]
    assert failed
    assert {s["error"]["type"] for s in failed} == {error}
    answered = [s for s in claims if s["status"] == "SUCCEEDED"]
    assert {s["agent"] for s in answered} == {HEURISTIC}
