"""Who may call the API: one role per persona with exactly its routes, and every route but health behind IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.app import DEFAULT_STACK_NAME
from infra.local.template import ACCOUNT_ID, REGION, Physical, Resolver
from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra

SUBMITTER = {
    ("POST", "/v1/workflows/*/executions"),
    ("POST", "/v1/workflows/*/invoke"),
    ("GET", "/v1/executions/*"),
    ("GET", "/v1/capabilities"),
}
APPROVER = {
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/*"),
    ("GET", "/v1/executions/*"),
    ("GET", "/v1/capabilities"),
}
AUDITOR = {
    ("GET", "/v1/audit/*"),
    ("GET", "/v1/audit/traces/*"),
    ("GET", "/v1/audit/content/*"),
    ("GET", "/v1/executions/*"),
    ("GET", "/v1/capabilities"),
    ("GET", "/v1/rollouts"),
}
EXPECTED_ROUTES = {
    "submitter": SUBMITTER,
    "approver": APPROVER,
    "auditor": AUDITOR,
    "admin": SUBMITTER | APPROVER | AUDITOR,
}


def persona_roles(synthesized: Synthesized) -> dict[str, str]:
    """persona -> the logical id of its role, from the ``agentplane:persona`` metadata the local plane reads."""
    found: dict[str, str] = {}
    for lid, role in synthesized.of_type("AWS::IAM::Role").items():
        name = role.get("Metadata", {}).get("agentplane:persona")
        if name is not None:
            assert name not in found, f"two roles claim persona {name}"
            found[name] = lid
    return found


def stand_in_resolver(synthesized: Synthesized) -> Resolver:
    """Every Ref resolves to the logical id itself, so an ARN says which API and stage it names."""
    physical = {lid: Physical(ref=lid) for lid in synthesized.resources}
    return Resolver(DEFAULT_STACK_NAME, physical)


def the_one(resources: dict[str, dict[str, Any]]) -> str:
    assert len(resources) == 1, sorted(resources)
    return next(iter(resources))


def test_there_is_one_role_per_persona(synthesized: Synthesized) -> None:
    assert set(persona_roles(synthesized)) == set(EXPECTED_ROUTES)


@pytest.mark.parametrize("persona", sorted(EXPECTED_ROUTES))
def test_each_persona_may_invoke_exactly_its_routes_of_this_api_and_stage(
    synthesized: Synthesized, persona: str
) -> None:
    # GIVEN the persona's role and the API's one stage
    role = persona_roles(synthesized)[persona]
    api = the_one(synthesized.of_type("AWS::ApiGateway::RestApi"))
    stage = the_one(synthesized.of_type("AWS::ApiGateway::Stage"))
    assert synthesized.resources[stage]["Properties"]["StageName"] == "api"

    # WHEN its identity policies are read
    [statement] = synthesized.role_statements(role)
    arns = stand_in_resolver(synthesized).resolve(statement["Resource"])

    # THEN one statement allows execute-api:Invoke on exactly the persona's routes, nothing else
    assert (statement["Effect"], statement["Action"]) == ("Allow", "execute-api:Invoke")
    prefix = f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{api}/{stage}/"
    assert all(arn.startswith(prefix) for arn in arns), arns
    routes = [tuple(arn.removeprefix(prefix).split("/", 1)) for arn in arns]
    assert {(method, f"/{path}") for method, path in routes} == EXPECTED_ROUTES[persona]
    assert len(routes) == len(EXPECTED_ROUTES[persona]), "a route is granted twice"


@pytest.mark.parametrize("persona", sorted(EXPECTED_ROUTES))
def test_each_persona_role_is_assumable_from_the_account_only(synthesized: Synthesized, persona: str) -> None:
    role = synthesized.resources[persona_roles(synthesized)[persona]]["Properties"]

    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    principal = stand_in_resolver(synthesized).resolve(trust["Principal"])

    assert (trust["Effect"], trust["Action"]) == ("Allow", ["sts:AssumeRole", "sts:SetSourceIdentity"])
    assert principal == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}
    # Only with a source identity (the person), and in a session named after it: the name the API compares.
    assert trust["Condition"] == {
        "Null": {"sts:SourceIdentity": "false"},
        "StringEquals": {"sts:RoleSessionName": "${sts:SourceIdentity}"},
    }
    assert "Policies" not in role
    assert "ManagedPolicyArns" not in role


def test_every_api_method_but_health_needs_iam(synthesized: Synthesized) -> None:
    resources = synthesized.of_type("AWS::ApiGateway::Resource")

    def path(resource: Any) -> str:
        if not (isinstance(resource, dict) and resource.get("Ref") in resources):
            return ""  # the API's root
        props = resources[resource["Ref"]]["Properties"]
        return f"{path(props['ParentId'])}/{props['PathPart']}"

    methods = {
        (m["Properties"]["HttpMethod"], path(m["Properties"]["ResourceId"])): m["Properties"]["AuthorizationType"]
        for m in synthesized.of_type("AWS::ApiGateway::Method").values()
    }

    assert methods.pop(("GET", "/v1/health")) == "NONE"
    assert {("GET", "/v1/executions/{execution_id}"), ("GET", "/v1/audit/export")} <= methods.keys()
    assert {route: kind for route, kind in methods.items() if kind != "AWS_IAM"} == {}


def test_the_role_arns_are_outputs_and_the_api_knows_the_role_names(synthesized: Synthesized) -> None:
    roles = persona_roles(synthesized)
    outputs = [o["Value"] for o in synthesized.template["Outputs"].values()]
    settings = [
        props["Environment"]["Variables"]["PERSONA_ROLES"]
        for props in (f["Properties"] for f in synthesized.of_type("AWS::Lambda::Function").values())
        if "PERSONA_ROLES" in props.get("Environment", {}).get("Variables", {})
    ]

    assert all({"Fn::GetAtt": [lid, "Arn"]} in outputs for lid in roles.values())
    # Only the API tells personas apart, by role name (a session name is the caller's choice).
    [setting] = settings
    assert json.loads(stand_in_resolver(synthesized).resolve(setting)) == roles


# --- usage plans: per-persona throttling ------------------------------------------------------------


def test_every_method_but_health_requires_the_api_key(synthesized: Synthesized) -> None:
    methods = synthesized.of_type("AWS::ApiGateway::Method")
    open_methods = [lid for lid, m in methods.items() if not m["Properties"].get("ApiKeyRequired")]

    assert len(open_methods) == 1
    assert methods[open_methods[0]]["Properties"]["AuthorizationType"] == "NONE"  # the health probe


def test_each_persona_has_its_own_usage_plan_key_and_throttle(synthesized: Synthesized) -> None:
    plans = synthesized.of_type("AWS::ApiGateway::UsagePlan")
    keys = synthesized.of_type("AWS::ApiGateway::ApiKey")
    links = synthesized.of_type("AWS::ApiGateway::UsagePlanKey")
    expected = {"submitter": (50, 100), "approver": (10, 20), "auditor": (10, 20), "admin": (20, 40)}

    by_persona = {plan["Metadata"]["agentplane:persona"]: lid for lid, plan in plans.items()}
    assert set(by_persona) == set(expected)
    for persona, (rate, burst) in expected.items():
        plan = plans[by_persona[persona]]["Properties"]
        assert plan["Throttle"] == {"RateLimit": rate, "BurstLimit": burst}, persona
        assert len(plan["ApiStages"]) == 1
        linked = [
            link["Properties"]["KeyId"]["Ref"]
            for link in links.values()
            if link["Properties"]["UsagePlanId"] == {"Ref": by_persona[persona]}
        ]
        assert len(linked) == 1, persona
        assert linked[0] in keys, persona
    assert len(keys) == len(expected)


def test_throttled_requests_get_problem_json_with_retry_after(synthesized: Synthesized) -> None:
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in synthesized.of_type("AWS::ApiGateway::GatewayResponse").values()
    }

    for kind in ("THROTTLED", "QUOTA_EXCEEDED"):
        response = responses[kind]
        assert response["StatusCode"] == "429"
        assert response["ResponseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"
        assert response["ResponseParameters"]["gatewayresponse.header.Content-Type"] == "'application/problem+json'"
