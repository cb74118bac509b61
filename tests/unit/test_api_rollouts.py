"""``GET /v1/rollouts``: aliases and deployments read as they are, one unreadable alias reported alone."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from contracts.arns import split_alias
from contracts.registry import Implementation
from functions.api.rollouts import deployment_view, lambda_versions, rollouts, workflow_versions
from infra.cli.rollout import render_rollouts

ALIAS = "arn:aws:lambda:eu-west-1:123456789012:function:plane-verifier:live"
SM_ALIAS = "arn:aws:states:eu-west-1:123456789012:stateMachine:doc-review:live"


def _implementation(name: str, target: str, *, group: str = "", runtime: str = "lambda") -> Implementation:
    return Implementation(
        name=name,
        agent=name.split("~")[0],
        capabilities=["fact-check"],
        contract_version="1.1.0",
        runtime=runtime,
        target=target,
        deployment_group=group,
    )


class Reader:
    def __init__(self, deployment: Mapping[str, Any] | None = None, broken: str = "") -> None:
        self.deployment = deployment
        self.broken = broken
        self.asked: list[tuple[str, str]] = []

    def agent_alias(self, function_name: str, alias: str) -> Mapping[str, Any]:
        self.asked.append((function_name, alias))
        if function_name == self.broken:
            raise PermissionError("AccessDenied")
        return {"FunctionVersion": "3", "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.1}}}

    def workflow_alias(self, alias_arn: str) -> Mapping[str, Any]:
        return {"routingConfiguration": [{"stateMachineVersionArn": f"{alias_arn[:-5]}:2", "weight": 100}]}

    def latest_deployment(self, application: str, group: str) -> Mapping[str, Any] | None:
        return self.deployment


DEPLOYMENT = {
    "deploymentId": "d-ABC123",
    "status": "InProgress",
    "createTime": datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
    "revision": {
        "revisionType": "AppSpecContent",
        "appSpecContent": {
            "content": json.dumps(
                {
                    "Resources": [
                        {
                            "verifier": {
                                "Properties": {"Name": "f", "Alias": "live", "CurrentVersion": 3, "TargetVersion": 4}
                            }
                        }
                    ]
                }
            )
        },
    },
}


def test_alias_arns_split_into_function_and_alias_and_versions_are_not_aliases() -> None:
    assert split_alias(ALIAS) == (ALIAS.rsplit(":", 1)[0], "live")
    assert split_alias(ALIAS.rsplit(":", 1)[0]) is None
    assert split_alias(ALIAS.replace(":live", ":7")) is None


def test_the_primary_version_keeps_what_the_additional_versions_do_not() -> None:
    versions = lambda_versions({"FunctionVersion": "3", "RoutingConfig": {"AdditionalVersionWeights": {"4": 0.25}}})
    assert [(v.version, v.weight) for v in versions] == [("3", 0.75), ("4", 0.25)]
    assert [(v.version, v.weight) for v in lambda_versions({"FunctionVersion": "5"})] == [("5", 1.0)]
    routed = workflow_versions(
        {
            "routingConfiguration": [
                {"stateMachineVersionArn": "a:1", "weight": 10},
                {"stateMachineVersionArn": "a:2", "weight": 90},
            ]
        }
    )
    assert [(v.version, v.weight) for v in routed] == [("2", 0.9), ("1", 0.1)]


def test_a_deployment_shows_its_versions_from_the_appspec_and_its_message() -> None:
    view = deployment_view(DEPLOYMENT)
    assert (view.from_version, view.to_version, view.status) == ("3", "4", "InProgress")
    assert view.created_at == "2026-11-24T03:00:00+00:00"
    yaml_spec = {
        **DEPLOYMENT,
        "status": "Stopped",
        "revision": {
            "appSpecContent": {
                "content": "Resources:\n- f:\n    Properties:\n"
                "      {Name: f, Alias: live, CurrentVersion: '7', TargetVersion: '8'}\n"
            }
        },
        "errorInformation": {"code": "ALARM_ACTIVE", "message": "alarm verifier-errors-5m is in ALARM"},
    }
    stopped = deployment_view(yaml_spec)
    assert (stopped.from_version, stopped.to_version) == ("7", "8")
    assert stopped.message == "alarm verifier-errors-5m is in ALARM"


def test_rollouts_lists_aliased_lambda_agents_with_their_deployment_and_workflows() -> None:
    implementations = [
        _implementation("verifier", ALIAS, group="plane-verifier"),
        _implementation("verifier~approximate", ALIAS.replace("verifier", "verifier-approx")),
        _implementation("summarizer", "summarizer-endpoint", runtime="sagemaker"),
    ]
    answer = rollouts(implementations, {"doc-review": SM_ALIAS}, Reader(DEPLOYMENT), application="plane")
    agents = {a["agent"]: a for a in answer["agents"]}
    assert set(agents) == {"verifier", "verifier~approximate"}  # the endpoint has no alias to shift
    verifier = agents["verifier"]
    assert verifier["versions"] == [{"version": "3", "weight": 0.9}, {"version": "4", "weight": 0.1}]
    assert verifier["shifting"] is True
    assert verifier["deployment"]["deployment_id"] == "d-ABC123"
    assert agents["verifier~approximate"]["deployment"] is None  # no group: nothing deploys it gradually
    assert answer["workflows"] == [
        {"workflow": "doc-review", "alias": SM_ALIAS, "versions": [{"version": "2", "weight": 1.0}], "shifting": False}
    ]


def test_one_unreadable_alias_is_reported_and_the_rest_still_answered() -> None:
    implementations = [
        _implementation("verifier", ALIAS, group="plane-verifier"),
        _implementation("tagger", ALIAS.replace("verifier", "tagger"), group="plane-tagger"),
    ]
    answer = rollouts(implementations, {}, Reader(None, broken="plane-verifier"), application="plane")
    agents = {a["agent"]: a for a in answer["agents"]}
    assert agents["verifier"]["error"] == "PermissionError: AccessDenied"
    assert agents["tagger"]["versions"][0] == {"version": "3", "weight": 0.9}
    text = render_rollouts(answer)
    assert "cannot read its alias: PermissionError: AccessDenied" in text
    assert "v3 90%, v4 10%" in text
