"""The local plane runs what CDK synthesizes: change the app, and the local behaviour changes with it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from contracts.loader import CONTRACTS_DIR
from contracts.workflow import WORKFLOWS_DIR
from infra.app import build_app
from infra.client import finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def changed_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    # GIVEN the CDK app with two changes made in its inputs, not in the plane:
    #  - the workflow's spec: its final state also returns the risk level,
    #  - one more contract file (a second risk scorer) is dropped into the contracts folder.
    contracts = tmp_path_factory.mktemp("contracts")
    for path in CONTRACTS_DIR.glob("*.yaml"):
        shutil.copy(path, contracts / path.name)
    extra = (CONTRACTS_DIR / "risk-scorer.yaml").read_text().replace("name: risk-scorer", "name: risk-scorer-strict")
    (contracts / "risk-scorer-strict.yaml").write_text(extra)
    workflows = tmp_path_factory.mktemp("workflows")
    for path in WORKFLOWS_DIR.glob("*.yaml"):
        shutil.copy(path, workflows / path.name)
    spec = yaml.safe_load((WORKFLOWS_DIR / "doc-review.yaml").read_text())
    (summary,) = [step for step in spec["steps"] if step.get("set") == "Summarize"]
    summary["value"]["risk_level"] = "$.risk.level"
    (workflows / "doc-review.yaml").write_text(yaml.safe_dump(spec))
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = {"aws:cdk:enable-asset-metadata": "true"}
    build_app(outdir, contracts_dir=Path(contracts), workflows_dir=Path(workflows), context=context).synth()

    # WHEN the plane stands up that synthesized assembly
    options = PlaneOptions(state_dir=tmp_path_factory.mktemp("plane"), assembly_dir=outdir)
    with LocalPlane(options) as plane:
        yield plane


def test_a_changed_workflow_changes_what_the_local_run_returns(changed_plane: LocalPlane) -> None:
    answer = request(
        changed_plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-request.json")
    )
    run = finished(changed_plane.url, answer.body["execution_id"], approve="approve")

    # THEN the run's output has the field only the changed definition produces
    assert run["status"] == "SUCCEEDED"
    assert run["output"]["risk_level"] == "high"


def test_a_new_contract_becomes_a_running_function_with_no_plane_code(changed_plane: LocalPlane) -> None:
    name = changed_plane.physical("AgentRiskScorerStrictFunction", "AWS::Lambda::Function")
    envelope = {
        "trace_id": "1-6b000000-000000000000000000000001",
        "correlation_id": "run-1",
        "causation_id": "run-1/ScoreRisk",
        "capability": "risk-scoring",
        "capability_version": "1.0.0",
        "deadline": "2999-01-01T00:00:00+00:00",
        "payload": {
            "claims": [{"claim_id": "c-001", "text": "Northwind Analytics was founded in 2012.", "sentence_index": 0}],
            "verdicts": [
                {"claim_id": "c-001", "label": "supported", "confidence": 0.9, "evidence": [], "rationale": "stated"}
            ],
        },
    }

    response = changed_plane.client("lambda").invoke(FunctionName=name, Payload=json.dumps(envelope))
    assessment = json.loads(response["Payload"].read())

    assert "FunctionError" not in response
    assert assessment["level"] == "low"
    assert changed_plane.lambdas.functions[name].environment["AGENT_NAME"] == "risk-scorer-strict"
