"""The synchronous hot path in the template: an Express machine the API may only run synchronously."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra


def machines(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return synthesized.of_type("AWS::StepFunctions::StateMachine")


def test_quick_check_is_an_express_machine_with_tracing_and_logs(synthesized: Synthesized) -> None:
    express = {
        lid: m for lid, m in machines(synthesized).items() if m["Properties"].get("StateMachineType") == "EXPRESS"
    }

    ((lid, machine),) = express.items()
    assert lid.startswith("QuickCheck")
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


def test_the_api_runs_express_only_synchronously_and_standard_only_asynchronously(synthesized: Synthesized) -> None:
    (api_lid,) = [
        lid
        for lid, res in synthesized.of_type("AWS::Lambda::Function").items()
        if res["Properties"]["Handler"] == "functions.api.handler.lambda_handler"
    ]
    statements = synthesized.role_statements(synthesized.role_of(api_lid))
    by_action: dict[str, list[Any]] = {}
    for statement in statements:
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).append(statement["Resource"])
    lids = {m["Properties"].get("StateMachineType", "STANDARD"): lid for lid, m in machines(synthesized).items()}

    # each through its live alias (a rollout decides which version serves the run)
    assert by_action["states:StartSyncExecution"] == [{"Ref": synthesized.state_machine_alias(lids["EXPRESS"])}]
    assert by_action["states:StartExecution"] == [{"Ref": synthesized.state_machine_alias(lids["STANDARD"])}]


def test_the_invoke_route_validates_its_body(synthesized: Synthesized) -> None:
    resources = synthesized.of_type("AWS::ApiGateway::Resource")
    (invoke_lid,) = [
        lid
        for lid, res in resources.items()
        if res["Properties"]["PathPart"] == "invoke"
        and resources.get(res["Properties"]["ParentId"].get("Ref", ""), {}).get("Properties", {}).get("PathPart")
        == "quick-check"
    ]
    (method,) = [
        m
        for m in synthesized.of_type("AWS::ApiGateway::Method").values()
        if m["Properties"]["ResourceId"] == {"Ref": invoke_lid}
    ]
    assert method["Properties"]["HttpMethod"] == "POST"
    assert set(method["Properties"]["RequestModels"]) == {"application/json", "$default"}
    assert "RequestValidatorId" in method["Properties"]
