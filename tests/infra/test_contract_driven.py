"""Infra follows the contracts: adding an agent is one contract file, and a contract infra cannot honour stops synth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from aws_cdk import aws_iam as iam

from contracts.loader import CONTRACTS_DIR, load_contracts
from infra import synth
from infra.app import build_app
from infra.components.agent_pool import (
    BUFFER_BATCH_SIZE,
    PERMISSION_VERBS,
    Granted,
    buffering,
)
from infra.components.errors import ContractInfraError
from infra.components.llm_agent import LlmConfigError
from infra.synth import SynthError
from tests.infra.assembly import PINNED_LOGICAL_IDS, Synthesized, all_states, qualified_name, synthesize

pytestmark = pytest.mark.infra


def granted_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def copy_contracts(target: Path) -> Path:
    target.mkdir()
    for path in CONTRACTS_DIR.glob("*.yaml"):
        shutil.copy(path, target / path.name)
    return target


def test_unknown_permission_verb_is_refused_with_contract_and_verb(tmp_path: Path) -> None:
    # GIVEN the repository's contracts, one of which asks for a permission no verb grants
    contracts = copy_contracts(tmp_path / "contracts")
    path = contracts / "risk-scorer.yaml"
    document = yaml.safe_load(path.read_text())
    document["permissions"] = [*document["permissions"], "read:unknown-thing"]
    path.write_text(yaml.safe_dump(document))

    # WHEN the app is built THEN it refuses, naming the contract and the verb, before anything is synthesized
    with pytest.raises(
        ContractInfraError, match=r"contract risk-scorer: permissions: unknown verb 'read:unknown-thing'"
    ):
        build_app(tmp_path / "cdk", contracts_dir=contracts)
    assert not (tmp_path / "cdk" / "manifest.json").exists()


def test_a_new_contract_file_adds_an_agent(tmp_path: Path) -> None:
    # GIVEN the repository's contracts plus one new file: a second risk scorer on the same handler
    contracts = copy_contracts(tmp_path / "contracts")
    document = yaml.safe_load((CONTRACTS_DIR / "risk-scorer.yaml").read_text())
    document.update(name="risk-scorer-v2", version="2.0.0", permissions=["publish:events"])
    document["runtime"]["memory_mb"] = 1024
    (contracts / "risk-scorer-v2.yaml").write_text(yaml.safe_dump(document))
    (cdk_out := tmp_path / "cdk").mkdir()

    # WHEN the plane is synthesized from that directory
    synthesized = synthesize(cdk_out, contracts_dir=contracts)

    # THEN there is a function that runs as the new agent, built from its contract, beside the original
    functions = synthesized.agent_functions()
    assert {"risk-scorer", "risk-scorer-v2"} <= set(functions)
    props = synthesized.resources[functions["risk-scorer-v2"]]["Properties"]
    assert props["Environment"]["Variables"]["AGENT_NAME"] == "risk-scorer-v2"
    assert props["Environment"]["Variables"]["AGENT_VERSION"] == "2.0.0"
    assert props["Handler"] == document["runtime"]["handler"]
    assert props["MemorySize"] == 1024
    # AND it has a role of its own, granted what its contract asks for and not lent to the original
    new_role, original_role = (synthesized.role_of(functions[name]) for name in ("risk-scorer-v2", "risk-scorer"))
    assert new_role != original_role
    assert "events:PutEvents" in granted_actions(synthesized.role_statements(new_role))
    assert "events:PutEvents" not in granted_actions(synthesized.role_statements(original_role))
    # AND no stateful resource moved to make room for it
    assert {lid: synthesized.resources[lid]["Type"] for lid in PINNED_LOGICAL_IDS} == PINNED_LOGICAL_IDS


def test_a_permission_with_no_resource_is_refused_with_contract_and_verb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a verb whose grant names actions but no resource, and a contract that asks for it
    monkeypatch.setitem(
        PERMISSION_VERBS, "read:nowhere", lambda _r: Granted([iam.PolicyStatement(actions=["s3:GetObject"])])
    )
    contracts = copy_contracts(tmp_path / "contracts")
    path = contracts / "risk-scorer.yaml"
    document = yaml.safe_load(path.read_text())
    document["permissions"] = ["read:nowhere"]
    path.write_text(yaml.safe_dump(document))

    # WHEN the app is built THEN it refuses, naming the contract and the verb
    with pytest.raises(ContractInfraError, match=r"contract risk-scorer: permissions: 'read:nowhere' has no resource"):
        build_app(tmp_path / "cdk", contracts_dir=contracts)


def test_a_bursty_event_driven_agent_drains_a_queue_in_batches(synthesized: Synthesized) -> None:
    # GIVEN entity-tagger: bursty, and run by decision.recorded events
    tagger = synthesized.agent_functions()["entity-tagger"]
    [rule] = [
        r
        for r in synthesized.of_type("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["decision.recorded"]
    ]
    # THEN the rule feeds a queue, not the function
    [target] = rule["Properties"]["Targets"]
    queue_lid = target["Arn"]["Fn::GetAtt"][0]
    queue = synthesized.resources[queue_lid]
    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    # AND the function drains it in batches within a window, reporting failed records one by one
    [mapping] = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_lid, "Arn"]}
    ]
    assert mapping["FunctionName"] == qualified_name(synthesized.live_alias(tagger))  # its live alias
    assert mapping["BatchSize"] == BUFFER_BATCH_SIZE
    assert mapping["MaximumBatchingWindowInSeconds"] == 1  # its p95 budget (1000 ms) in whole seconds
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # AND a record that keeps failing ends in the rule's dead-letter queue, as an undeliverable event does
    dlq = target["DeadLetterConfig"]["Arn"]
    assert queue["Properties"]["RedrivePolicy"] == {"deadLetterTargetArn": dlq, "maxReceiveCount": 5}
    # AND the queue outlasts the function's timeout plus the window while a batch is in flight
    timeout = synthesized.resources[tagger]["Properties"]["Timeout"]
    assert queue["Properties"]["VisibilityTimeout"] >= timeout + 1


def test_a_bursty_workflow_agent_is_called_directly(synthesized: Synthesized) -> None:
    # evidence-verifier is bursty too, but a workflow awaits its answer: reserved concurrency and the Map's
    # retries absorb its bursts, and no queue stands between the task and the function
    verifier = synthesized.agent_functions()["evidence-verifier"]
    mappings = synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
    assert not [m for m in mappings if m["Properties"]["FunctionName"] == {"Ref": verifier}]
    assert synthesized.resources[verifier]["Properties"]["ReservedConcurrentExecutions"] == 20


def test_buffering_window_follows_the_slo() -> None:
    contract = load_contracts()["entity-tagger"]
    slow = contract.model_copy(update={"slo": contract.slo.model_copy(update={"p95_ms": 45_000})})
    assert buffering(contract) is not None
    assert buffering(slow).max_window.to_seconds() == 20  # type: ignore[union-attr]  # SQS's most
    assert buffering(load_contracts()["risk-scorer"]) is None  # not bursty


def test_warm_capacity_is_provisioned_on_an_alias_the_workflows_call(tmp_path: Path) -> None:
    # GIVEN the evidence verifier's contract asking for two warm instances
    contracts = copy_contracts(tmp_path / "contracts")
    path = contracts / "evidence-verifier.yaml"
    document = yaml.safe_load(path.read_text())
    document["runtime"]["provisioned_concurrency"] = 2
    path.write_text(yaml.safe_dump(document))
    (cdk_out := tmp_path / "cdk").mkdir()

    # WHEN the plane is synthesized
    synthesized = synthesize(cdk_out, contracts_dir=contracts)

    # THEN a published version of its function carries the provisioned concurrency, behind the "live" alias
    verifier = synthesized.agent_functions()["evidence-verifier"]
    alias_lid = synthesized.live_alias(verifier)
    alias = synthesized.resources[alias_lid]
    assert alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    version_lid = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert synthesized.resources[version_lid]["Properties"]["FunctionName"] == {"Ref": verifier}
    # AND every caller reaches the alias, so the warm instances serve them: workflows that bind the agent
    # directly call it, and dispatch (doc-review's claims) has it as the registered target
    for machine in synthesized.of_type("AWS::StepFunctions::StateMachine"):
        tasks = [
            state["Resource"]
            for state in all_states(synthesized.state_machine_definition(machine))
            if state["Type"] == "Task" and not state["Resource"].startswith("arn:aws:states:")
        ]
        assert not [task for task in tasks if task.endswith(f":function:{verifier}")], tasks
    registered = [
        res["Properties"]["Create"]
        for res in synthesized.of_type("Custom::AWS").values()
        if '{"S":"evidence-verifier"}' in json.dumps(res["Properties"]["Create"]).replace("\\", "")
    ]
    assert registered
    assert {"Ref": alias_lid} in registered[0]["Fn::Join"][1]
    quick_check = [m for m in synthesized.of_type("AWS::StepFunctions::StateMachine") if m.startswith("QuickCheck")]
    tasks = [
        s["Resource"] for s in all_states(synthesized.state_machine_definition(quick_check[0])) if s["Type"] == "Task"
    ]
    assert [task.rsplit(":", 2)[1:] for task in tasks] == [[verifier, "live"]]
    # AND agents that did not ask for warm capacity get none
    warm = [
        a
        for a in synthesized.of_type("AWS::Lambda::Alias").values()
        if "ProvisionedConcurrencyConfig" in a["Properties"]
    ]
    assert warm == [alias]


def test_snapstart_from_the_contract_applies_to_published_versions(tmp_path: Path) -> None:
    # GIVEN the entity tagger's contract asking for SnapStart, the others not
    contracts = copy_contracts(tmp_path / "contracts")
    path = contracts / "entity-tagger.yaml"
    document = yaml.safe_load(path.read_text())
    document["runtime"]["snapstart"] = True
    path.write_text(yaml.safe_dump(document))
    (cdk_out := tmp_path / "cdk").mkdir()

    # WHEN the plane is synthesized
    synthesized = synthesize(cdk_out, contracts_dir=contracts)

    # THEN its function snapshots published versions (what its live alias serves), and no other agent's does
    functions = synthesized.agent_functions()
    tagger = synthesized.resources[functions.pop("entity-tagger")]["Properties"]
    assert tagger["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert tagger["Runtime"] in {"python3.12", "python3.13", "python3.14"}
    assert all("SnapStart" not in synthesized.resources[lid]["Properties"] for lid in functions.values())


SERVING_HOST = {
    "name": "chat-host",
    "version": "0.1.0",
    "description": "Serves an open-weights model to the plane's llm agents.",
    "capabilities": ["chat"],
    "io": {"input": "ChatRequest", "output": "ChatCompletion"},
    "runtime": {
        "kind": "sagemaker",
        "instance_type": "ml.m5.xlarge",
        "min_instances": 1,
        "max_instances": 1,
        "serving": {
            "image": "vllm",
            "version": "0.30.0",
            "model_data": "s3://chat-models/qwen/",
            "model_name": "Qwen/Qwen2.5-7B-Instruct",
            "tool_parser": "hermes",
            "max_model_len": 8192,
        },
    },
    "side_effects": "read-only",
    "slo": {"p95_ms": 4000, "availability": 99.5, "error_budget_pct": 0.5},
    "fallback": ["human"],
    "telemetry": {"metrics": ["latency_ms", "success_count"], "errors": ["BadInput", "ModelError"]},
}


def test_a_serving_image_on_a_cpu_instance_is_refused_before_synth(tmp_path: Path) -> None:
    # GIVEN the repository's contracts plus a standard LLM serving image asked to run on a CPU instance
    contracts = copy_contracts(tmp_path / "contracts")
    (contracts / "chat-host.yaml").write_text(yaml.safe_dump(SERVING_HOST))

    # WHEN the app is built THEN it refuses, naming the contract, the image and the instance
    with pytest.raises(
        ContractInfraError, match=r"contract chat-host: runtime.serving: vllm images run on GPU instances, not ml.m5"
    ):
        build_app(tmp_path / "cdk", contracts_dir=contracts)
    assert not (tmp_path / "cdk" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("endpoint", "named"),
    [
        ("no-such-host", "is not a sagemaker contract of the same project"),
        ("risk-scorer", "is not a sagemaker contract of the same project"),
        ("summarizer", "names a sagemaker contract without runtime.serving"),  # its own container, not chat
    ],
)
def test_a_self_hosted_loop_whose_endpoint_is_not_a_serving_contract_is_refused(
    tmp_path: Path, endpoint: str, named: str
) -> None:
    # GIVEN the repository's contracts with the llm fact-checker pointed at an endpoint that cannot serve it
    contracts = copy_contracts(tmp_path / "contracts")
    path = contracts / "fact-checker-llm.yaml"
    document = yaml.safe_load(path.read_text())
    document["runtime"]["model"] = {"provider": "sagemaker", "endpoint": endpoint}
    path.write_text(yaml.safe_dump(document))

    # WHEN the app is built THEN it refuses, naming the contract, the field and what the endpoint is
    with pytest.raises(ValueError, match=rf"contract fact-checker-llm: runtime.model.endpoint: '{endpoint}' {named}"):
        build_app(tmp_path / "cdk", contracts_dir=contracts)


def test_synth_reports_an_llm_runtime_it_cannot_build_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an app whose llm runtime cannot be built (as above: the endpoint is not a serving contract)
    def refusing(out: Path, context: dict[str, str] | None = None) -> Any:
        raise LlmConfigError("contract fact-checker-llm: runtime.model.endpoint: 'summarizer' names a sagemaker ...")

    monkeypatch.setattr("infra.app.build_app", refusing)

    # WHEN synthesized (what `agentplane synth` and the local plane call) THEN it is a SynthError, which the CLI
    # prints as one line, not a stack trace
    with pytest.raises(SynthError, match=r"^contract fact-checker-llm: runtime.model.endpoint"):
        synth.synthesize(tmp_path / "cdk")
