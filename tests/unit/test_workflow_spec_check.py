"""`agentplane workflows check`: a spec held against the contracts, one line per problem, non-zero exit."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.loader import load_contracts
from contracts.workflow import WORKFLOWS_DIR, WorkflowSpec
from infra.cli import main
from infra.workflows.check import check_paths, check_spec
from infra.workflows.resolve import ResolveError, resolve, workflow_agents

pytestmark = pytest.mark.unit

CONTRACTS = load_contracts()
DOC_REVIEW: dict[str, Any] = yaml.safe_load((WORKFLOWS_DIR / "doc-review.yaml").read_text())
QUICK_CHECK: dict[str, Any] = yaml.safe_load((WORKFLOWS_DIR / "quick-check.yaml").read_text())


def step(document: dict[str, Any], name: str) -> dict[str, Any]:
    found = [s for s in document["steps"] if name in s.values()]
    assert found, name
    return found[0]


def problems(document: dict[str, Any]) -> list[str]:
    return check_spec(WorkflowSpec.model_validate(document), CONTRACTS, "spec.yaml")


def test_the_shipped_specs_hold_against_the_shipped_contracts() -> None:
    count, found = check_paths([WORKFLOWS_DIR], CONTRACTS)

    assert (count, found) == (2, [])


def _unknown_capability(d: dict[str, Any]) -> None:
    step(d, "Intake")["capability"] = "document-magic"


def _wrong_type(d: dict[str, Any]) -> None:
    step(d, "SummarizeDocument")["input"]["claims"] = "$.intake.title"


def _wrong_model(d: dict[str, Any]) -> None:
    step(d, "ScoreRisk")["input"]["verdicts"] = "$.summary"


def _not_in_state(d: dict[str, Any]) -> None:
    step(d, "ScoreRisk")["input"]["verdicts"] = "$.verdict"


def _unknown_field(d: dict[str, Any]) -> None:
    step(d, "ScoreRisk")["input"]["urgency"] = "high"


def _missing_field(d: dict[str, Any]) -> None:
    del step(d, "ScoreRisk")["input"]["claims"]


def _impossible_case(d: dict[str, Any]) -> None:
    step(d, "NeedsApproval")["cases"][0]["equals"] = "urgent"


def _no_such_version(d: dict[str, Any]) -> None:
    step(d, "ScoreRisk")["version"] = "7.x"


def _undeclared_error(d: dict[str, Any]) -> None:
    d["steps"][2]["steps"][0]["catch"][0]["errors"] = ["Escalate"]


def _not_a_decider(d: dict[str, Any]) -> None:
    step(d, "NeedsApproval")["cases"][0]["steps"][0]["who"] = "auditor"


def _lost_context(d: dict[str, Any]) -> None:
    step(d, "Intake")["result"] = "$"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_unknown_capability, "spec.yaml: Intake.capability: no contract serves capability document-magic"),
        (
            _wrong_type,
            "spec.yaml: SummarizeDocument.input.claims: $.intake.title is str, SummarizeRequest.claims takes "
            "list[Claim]",
        ),
        (_wrong_model, "spec.yaml: ScoreRisk.input.verdicts: $.summary is Summary, RiskInput.verdicts takes list"),
        (_not_in_state, "spec.yaml: ScoreRisk.input.verdicts: $.verdict is not in the run's state here"),
        (_unknown_field, "spec.yaml: ScoreRisk.input.urgency: RiskInput has no field 'urgency'"),
        (_missing_field, "spec.yaml: ScoreRisk.input: RiskInput.claims is required"),
        (_impossible_case, "spec.yaml: NeedsApproval.cases[0].equals: 'urgent' is never Literal["),
        (_no_such_version, "spec.yaml: ScoreRisk.capability: no contract serves capability risk-scoring 7.x"),
        (_undeclared_error, "spec.yaml: VerifyClaim.catch[0].errors: Escalate is not an error the contract declares"),
        (_not_a_decider, "spec.yaml: RequestApproval.who: 'auditor' is not a persona who decides approvals"),
        (_lost_context, "spec.yaml: SummarizeDocument: the run's trace_id, traceparent, correlation_id, deadline"),
    ],
    ids=lambda v: v.__name__.strip("_") if callable(v) else "",
)
def test_a_broken_spec_gets_a_one_line_problem(change: Callable[[dict[str, Any]], None], expected: str) -> None:
    document = copy.deepcopy(DOC_REVIEW)
    change(document)

    found = problems(document)

    assert any(line.startswith(expected) for line in found), found
    assert all("\n" not in line for line in found)


def test_a_literal_is_validated_against_the_field_it_fills() -> None:
    document = copy.deepcopy(QUICK_CHECK)
    step(document, "QuickVerify")["input"]["claim"]["claim_id"] = "claim-1"

    (problem,) = problems(document)

    assert problem.startswith("spec.yaml: QuickVerify.input.claim.claim_id: 'claim-1' is not a valid Claim.claim_id")


def test_a_sync_workflow_must_answer_within_api_gateways_limit() -> None:
    document = copy.deepcopy(QUICK_CHECK)
    document["deadline"] = {"work_s": 30, "grace_s": 0}

    assert problems(document) == ["spec.yaml: deadline: a sync run must end within API Gateway's 29 s"]


def test_steps_after_the_run_ends_are_never_reached() -> None:
    document = copy.deepcopy(QUICK_CHECK)
    document["steps"].insert(1, {"succeed": "Early"})

    assert problems(document) == ["spec.yaml: Answer: never reached: the run ends before it (steps)"]


def test_an_emitted_event_is_checked_against_its_subscribers_input() -> None:
    # GIVEN an event entity-tagger subscribes to (its input: DecisionRecordedDetail), missing required fields
    document = copy.deepcopy(QUICK_CHECK)
    document["steps"].insert(1, {"emit": "Announce", "detail_type": "decision.recorded", "detail": {"x": "$.verdict"}})

    found = problems(document)

    assert "spec.yaml: Announce.detail (entity-tagger).x: DecisionRecordedDetail has no field 'x'" in found
    assert "spec.yaml: Announce.detail (entity-tagger): DecisionRecordedDetail.execution_id is required" in found


def test_a_capability_resolves_to_its_primary_not_its_fallback_and_the_newest_in_range() -> None:
    assert resolve("summarization", "1.x", CONTRACTS).name == "summarizer"  # summarizer-cpu is its fallback
    assert resolve("fact-check", None, CONTRACTS).name == "evidence-verifier"
    newer = CONTRACTS["risk-scorer"].model_copy(update={"name": "risk-scorer-next", "version": "1.9.0"})
    with_newer = {**CONTRACTS, newer.name: newer}
    assert resolve("risk-scoring", "1.x", with_newer).name == "risk-scorer-next"
    with pytest.raises(ResolveError, match=r"no contract serves capability risk-scoring 2\.x"):
        resolve("risk-scoring", "2.x", with_newer)


def test_the_agents_of_a_workflow_come_from_its_capabilities() -> None:
    spec = WorkflowSpec.model_validate(DOC_REVIEW)

    assert workflow_agents(spec, CONTRACTS) == [
        "document-intake",
        "summarizer",
        "summarizer-cpu",
        "evidence-verifier",
        "risk-scorer",
        "decision-recorder",
        "failure-recorder",
    ]


def test_the_cli_prints_one_line_per_problem_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = copy.deepcopy(DOC_REVIEW)
    step(broken, "Intake")["capability"] = "document-magic"
    express = copy.deepcopy(DOC_REVIEW)
    express["type"] = "express"
    (tmp_path / "doc-review.yaml").write_text(yaml.safe_dump(broken))
    (tmp_path / "other").mkdir()
    express["name"] = "express-review"
    (tmp_path / "other" / "express-review.yaml").write_text(yaml.safe_dump(express))

    code = main(["workflows", "check", str(tmp_path / "doc-review.yaml"), str(tmp_path / "other")])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    unknown = f"{tmp_path / 'doc-review.yaml'}: Intake.capability: no contract serves capability document-magic 3.x"
    assert unknown in err
    assert any("express-review.yaml" in line and "an express workflow cannot wait for a person" in line for line in err)


def test_the_cli_passes_the_shipped_specs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workflows", "check"]) == 0
    assert capsys.readouterr().out.strip() == f"2 workflow specs valid against {len(CONTRACTS)} contracts"


def agent_spec(**agent: Any) -> dict[str, Any]:
    """A workflow whose one step is the llm fact-checker as an agent step."""
    spec = {**copy.deepcopy(QUICK_CHECK), "type": "standard", "api": {"mode": "async"}}
    spec["steps"] = [
        {
            "agent": "CheckClaim",
            "capability": "fact-check",
            "version": "1.x",
            "input": {"claim": {"claim_id": "c-001", "text": "$.request.claim", "sentence_index": 0}},
            "result": "$.verdict",
            **agent,
        }
    ]
    return spec


def acting_contracts() -> dict[str, Any]:
    """The shipped contracts, with the fact-checker's tool turned into an external action."""
    contracts = dict(CONTRACTS)
    tool = contracts["evidence-verifier"]
    contracts["evidence-verifier"] = tool.model_copy(update={"side_effects": "external-action"})
    return contracts


def test_an_agent_step_runs_an_llm_contract_and_types_its_result() -> None:
    spec = WorkflowSpec.model_validate(agent_spec())

    assert workflow_agents(spec, CONTRACTS)[0] == "fact-checker-llm"
    with pytest.raises(ResolveError, match=r"no contract serves capability risk-scoring \(as kind: llm\)"):
        workflow_agents(WorkflowSpec.model_validate(agent_spec(capability="risk-scoring", version=None)), CONTRACTS)


def test_an_agent_whose_tools_act_externally_needs_someone_to_approve_them() -> None:
    spec = WorkflowSpec.model_validate(agent_spec())
    approved = WorkflowSpec.model_validate(agent_spec(approvals={"who": "approver", "window_s": 60}))
    nobody = WorkflowSpec.model_validate(agent_spec(approvals={"who": "submitter", "window_s": 60}))

    (found,) = check_spec(spec, acting_contracts(), "spec.yaml")
    assert found.startswith("spec.yaml: CheckClaim.approvals: fact-checker-llm's tools include external actions")
    assert check_spec(approved, acting_contracts(), "spec.yaml") == []
    assert "is not a persona who decides approvals" in check_spec(nobody, acting_contracts(), "spec.yaml")[0]


def test_the_deadline_covers_every_approval_an_agent_step_may_wait_for() -> None:
    spec = WorkflowSpec.model_validate(agent_spec(approvals={"window_s": 600, "max_calls": 3}))

    assert spec.ttl_ms == (spec.deadline.work_s + 3 * 600) * 1000
    with pytest.raises(ValueError, match="an express workflow cannot wait for a person to approve its tool calls"):
        WorkflowSpec.model_validate(
            {**agent_spec(approvals={"window_s": 60}), "type": "express", "api": {"mode": "sync"}}
        )
