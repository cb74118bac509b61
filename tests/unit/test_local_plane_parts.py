"""Local plane building blocks: intrinsic functions, resource order, routing, validation, faults."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft4Validator

from contracts.schema_export import generate
from infra.local.faults import FaultPlan, FaultSpecError
from infra.local.http_api import Route, build_routes, schema_errors
from infra.local.provision import ApiDefinition
from infra.local.template import Physical, Resolver, Template, TemplateError

pytestmark = pytest.mark.unit


@pytest.fixture
def resolver() -> Resolver:
    physical = {
        "Table": Physical(
            ref="decisions", attributes={"Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/decisions"}
        ),
        "Fn": Physical(ref="fn", attributes={"Arn": "arn:aws:lambda:us-east-1:123456789012:function:fn"}),
    }
    return Resolver("agentplane", physical)


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"Ref": "Table"}, "decisions"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Fn::GetAtt": ["Fn", "Arn"]}, "arn:aws:lambda:us-east-1:123456789012:function:fn"),
        ({"Fn::GetAtt": "Table.Arn"}, "arn:aws:dynamodb:us-east-1:123456789012:table/decisions"),
        (
            {"Fn::Join": ["", ['{"Resource":"', {"Fn::GetAtt": ["Fn", "Arn"]}, '"}']]},
            '{"Resource":"arn:aws:lambda:us-east-1:123456789012:function:fn"}',
        ),
        (
            {"Fn::Sub": "${AWS::StackName}-${Table}-${Fn.Arn}"},
            "agentplane-decisions-arn:aws:lambda:us-east-1:123456789012:function:fn",
        ),
        ({"Fn::Sub": ["${A}/${!Literal}", {"A": {"Ref": "Table"}}]}, "decisions/${Literal}"),
        ({"Fn::Select": [1, {"Fn::Split": [":", "a:b:c"]}]}, "b"),
        ([{"Ref": "Table"}, {"Ref": "AWS::NoValue"}], ["decisions"]),
    ],
)
def test_intrinsics_resolve(resolver: Resolver, node: Any, expected: Any) -> None:
    assert resolver.resolve(node) == expected


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"Ref": "Missing"}, "not provisioned"),
        ({"Fn::GetAtt": ["Fn", "StreamArn"]}, "no such attribute"),
        ({"Fn::If": ["c", 1, 2]}, "not supported"),
    ],
)
def test_unresolvable_nodes_say_why(resolver: Resolver, node: Any, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        resolver.resolve(node)


def test_resources_come_after_what_they_reference(tmp_path: Any) -> None:
    body = {
        "Resources": {
            "Machine": {"Type": "T", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}, "DependsOn": ["Policy"]},
            "Policy": {"Type": "T", "Properties": {"Roles": [{"Ref": "Role"}]}},
            "Role": {"Type": "T", "Properties": {}},
        }
    }
    order = Template("s", body, tmp_path).creation_order()
    assert order.index("Role") < order.index("Policy") < order.index("Machine")

    body["Resources"]["Role"]["Properties"] = {"X": {"Ref": "Machine"}}
    with pytest.raises(TemplateError, match="circular"):
        Template("s", body, tmp_path).creation_order()


def test_literal_routes_win_over_path_variables() -> None:
    api = ApiDefinition(root_ids={"root"})
    api.resources = {
        "v1": {"parent": "root", "path_part": "v1"},
        "wf": {"parent": "v1", "path_part": "workflows"},
        "name": {"parent": "wf", "path_part": "{name}"},
        "named": {"parent": "wf", "path_part": "doc-review"},
        "ex1": {"parent": "name", "path_part": "executions"},
        "ex2": {"parent": "named", "path_part": "executions"},
    }
    function = "arn:aws:lambda:us-east-1:1:function:api"
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function}/invocations"
    integration = {"Type": "AWS_PROXY", "Uri": uri}
    api.methods = [
        {"HttpMethod": "POST", "ResourceId": "ex1", "Integration": integration},
        {"HttpMethod": "POST", "ResourceId": "ex2", "Integration": integration, "RequestModels": {"$default": "M"}},
    ]
    routes = build_routes(api)
    parts = ["v1", "workflows", "doc-review", "executions"]
    matching = [(r, r.match(parts)) for r in routes if r.match(parts) is not None]

    assert matching[0][0].path == "/v1/workflows/doc-review/executions"
    assert matching[0][0].function_arn == "arn:aws:lambda:us-east-1:1:function:api"
    assert Route("GET", "/v1/executions/{id}", "arn", "NONE").match(["v1", "executions", "abc"]) == {"id": "abc"}


def test_schema_errors_name_nested_fields() -> None:
    validator = Draft4Validator(generate()["apigw/DocReviewRequest.json"])

    errors = schema_errors(validator, {"document": {"text": 3}, "surplus": True})

    fields = {e["field"] for e in errors}
    assert {"document.title", "document.text", "surplus"} <= fields


def test_fault_specs_parse_and_fire_reproducibly() -> None:
    plan = FaultPlan.parse(["evidence-verifier=ModelError", "risk-scorer=Lambda.ServiceException:0.5"])

    with pytest.raises(Exception, match="injected fault: evidence-verifier raised ModelError") as fired:
        plan.before_invoke("evidence-verifier")
    plan.before_invoke("decision-recorder")  # no fault configured: nothing happens

    assert type(fired.value).__name__ == "ModelError"
    assert plan.faults["risk-scorer"].rate == 0.5
    for bad in ("evidence-verifier", "x=Err:2", "=Err"):
        with pytest.raises(FaultSpecError):
            FaultPlan.parse([bad])
