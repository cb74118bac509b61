"""The registry in the template: entries written at deploy, a dispatcher that may call exactly them, health."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.app import DEFAULT_STACK_NAME
from infra.local.template import Physical, Resolver
from tests.generated_contracts import CONTRACTS
from tests.infra.assembly import Synthesized, lambda_function_lid

pytestmark = pytest.mark.infra


def function_with(synthesized: Synthesized, handler: str) -> str:
    (lid,) = [
        lid
        for lid, fn in synthesized.of_type("AWS::Lambda::Function").items()
        if fn["Properties"].get("Handler") == handler
    ]
    return lid


def registered(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    """Registry name -> the updateItem call its custom resource makes at deploy (Refs/GetAtts as logical ids)."""
    physical = {
        lid: Physical(ref=lid, attributes={"Arn": f"arn:{lid}", "Version": f"version-of:{lid}"})
        for lid in synthesized.resources
    }
    resolver = Resolver("agentplane", physical)
    found = {}
    for resource in synthesized.of_type("Custom::AWS").values():
        call = json.loads(resolver.resolve(resource["Properties"]["Create"]))
        found[call["parameters"]["Key"]["implementation"]["S"]] = call
    return found


def test_every_implementation_is_registered_at_deploy_with_its_target(synthesized: Synthesized) -> None:
    calls = registered(synthesized)
    agents = synthesized.agent_functions()

    groups = {
        res["Properties"]["DeploymentGroupName"]
        for res in synthesized.of_type("AWS::CodeDeploy::DeploymentGroup").values()
    }
    rolled_out = {name for name, c in CONTRACTS.items() if c.runtime.kind in ("lambda", "llm")}

    assert set(calls) == {*agents, "evidence-verifier~approximate"}
    for name, call in calls.items():
        assert call["service"] == "DynamoDB"
        assert call["action"] == "updateItem"  # an upsert: health and circuit survive a redeploy
        values = call["parameters"]["ExpressionAttributeValues"]
        # the target is the agent's live alias (Ref of an alias: its ARN), never the unqualified function
        alias = synthesized.resources[values[":target"]["S"]]
        assert (alias["Type"], alias["Properties"]["Name"]) == ("AWS::Lambda::Alias", "live")
        function = synthesized.resources[alias["Properties"]["FunctionName"]["Ref"]]
        assert function["Properties"]["Environment"]["Variables"]["AGENT_NAME"] == name.split("~")[0]
        # AND the version this deploy published behind that alias
        assert (
            values[":published_version"]["S"] == "version-of:" + alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
        )
        # AND a primary Lambda agent names the deployment group that rolls it out; the others have none
        group = values[":deployment_group"]["S"]
        assert group == (f"{DEFAULT_STACK_NAME}-{name}" if name in rolled_out else ""), name
        assert not group or group in groups
    approximate = calls["evidence-verifier~approximate"]["parameters"]["ExpressionAttributeValues"]
    assert approximate[":variant"] == {"S": "approximate"}


def test_the_approximate_handler_is_its_own_function_with_the_primarys_role(synthesized: Synthesized) -> None:
    primary = function_with(synthesized, "functions.evidence_verifier.handler.lambda_handler")
    degraded = function_with(synthesized, "functions.evidence_verifier.handler.approximate_handler")

    assert synthesized.role_of(degraded) == synthesized.role_of(primary)
    assert synthesized.resources[degraded]["Properties"]["Environment"]["Variables"]["AGENT_VARIANT"] == "approximate"


def test_the_dispatcher_may_invoke_exactly_the_registered_functions(synthesized: Synthesized) -> None:
    dispatcher = synthesized.stack.resolve(synthesized.stack.registry.dispatcher.function_name)["Ref"]
    statements = synthesized.role_statements(synthesized.role_of(dispatcher))
    invoke = [s for s in statements if "lambda:InvokeFunction" in json.dumps(s["Action"])]

    (statement,) = invoke
    invoked = {r["Ref"] for r in statement["Resource"]}  # live aliases
    calls = registered(synthesized)
    targets = {call["parameters"]["ExpressionAttributeValues"][":target"]["S"] for call in calls.values()}
    assert invoked == targets


def test_verify_claim_asks_the_dispatcher_and_a_person_takes_what_it_cannot(synthesized: Synthesized) -> None:
    (machine,) = [lid for lid in synthesized.of_type("AWS::StepFunctions::StateMachine") if lid.startswith("DocReview")]
    states = synthesized.state_machine_definition(machine)["States"]
    item = states["VerifyClaims"]["ItemProcessor"]["States"]

    verify = item["VerifyClaim"]
    dispatcher = synthesized.stack.resolve(synthesized.stack.registry.dispatcher.function_name)["Ref"]
    assert lambda_function_lid(verify["Resource"]) == dispatcher
    assert verify["Parameters"]["accept"] == "1.x"
    assert verify["Parameters"]["envelope"]["capability"] == "fact-check"
    (catch,) = verify["Catch"]
    assert catch["ErrorEquals"] == ["Escalated"]
    escalated = item[catch["Next"]]
    assert escalated["Parameters"]["escalated"] is True


def test_health_comes_from_the_decisions_stream(synthesized: Synthesized) -> None:
    health = function_with(synthesized, "functions.registry_health.handler.lambda_handler")
    (mapping,) = [
        m["Properties"]
        for m in synthesized.of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": health}
    ]

    assert "Decisions" in mapping["EventSourceArn"]["Fn::GetAtt"][0]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"]
