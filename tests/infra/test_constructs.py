"""AgentPlane and AgentProject in a team's own CDK app: the example in docs/projects.md, built and checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from infra.app import FEATURE_FLAGS
from infra.components.nag import acknowledge
from infra.components.nag import ref as nag_ref
from infra.plane import AgentPlane, AgentProject
from infra.scaffold import new_project

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("app") / "support"
    new_project(folder)
    app = cdk.App(context=FEATURE_FLAGS, outdir=str(folder.parent / "cdk.out"))
    core = cdk.Stack(app, "agents-core")
    plane = AgentPlane(core, "Plane")
    team = cdk.Stack(app, "agents-support")
    support = AgentProject(team, "Support", plane=plane, project_dir=folder)
    scheduler = iam.Role(team, "Scheduler", assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"))
    auditor = iam.Role(team, "Auditor", assumed_by=iam.AccountRootPrincipal())
    grants = {
        "start": support.grant_start_workflows(scheduler),
        "invoke": support.grant_invoke_agents(scheduler),
        "ledger": plane.grant_read_ledger(auditor),
        "publish": plane.grant_publish(scheduler),
    }
    # The one wildcard a ledger reader needs is the digests' objects: the team acknowledges it on its own role.
    digests = f"AwsSolutions-IAM5[Resource::{nag_ref(auditor, plane.ledger.digests)}/*]"
    acknowledge(auditor, digests, "signed digests are objects named per period; read only")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    assembly = app.synth()  # raises on any unacknowledged cdk-nag finding
    return {"plane": plane, "support": support, "grants": grants, "assembly": assembly}


def policy_of(assembly: Any, stack: str, role_prefix: str) -> list[dict[str, Any]]:
    resources = assembly.get_stack_by_name(stack).template["Resources"]
    return [
        statement
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy"
        and any(role_prefix in json.dumps(ref) for ref in resource["Properties"]["Roles"])
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_parts_are_attributes(built: dict[str, Any]) -> None:
    support: AgentProject = built["support"]
    assert sorted(support.agents) == ["support-resolver", "support-triage"]
    assert list(support.workflows) == ["support-tickets"]
    assert built["plane"].catalog is not None


def test_the_grants_are_cdk_grants_on_exactly_their_resources(built: dict[str, Any]) -> None:
    grants: dict[str, iam.Grant] = built["grants"]
    assert all(isinstance(grant, iam.Grant) and grant.success for grant in grants.values())
    statements = policy_of(built["assembly"], "agents-support", "Scheduler")
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert {"states:StartExecution", "lambda:InvokeFunction", "events:PutEvents"} <= actions
    invoke = next(s for s in statements if s["Action"] == "lambda:InvokeFunction")
    assert len(invoke["Resource"]) == 2  # the project's two agents' live aliases, nothing else


def test_the_core_refers_to_no_project(built: dict[str, Any]) -> None:
    core = json.dumps(built["assembly"].get_stack_by_name("agents-core").template)
    assert "support" not in core
    assert "Fn::ImportValue" not in core


def test_a_project_in_the_planes_own_stack_shares_its_alarms(tmp_path: Path) -> None:
    folder = tmp_path / "billing"
    new_project(folder)
    app = cdk.App(context=FEATURE_FLAGS, outdir=str(tmp_path / "cdk.out"))
    stack = cdk.Stack(app, "agents")
    plane = AgentPlane(stack, "Plane")
    billing = AgentProject(stack, "Billing", plane=plane, project_dir=folder)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())

    template = app.synth().get_stack_by_name("agents").template

    assert billing.observability is plane.observability
    topics = [r for r in template["Resources"].values() if r["Type"] == "AWS::SNS::Topic"]
    assert len(topics) == 1
    assert "billing-tickets" in json.dumps(template)


@pytest.mark.parametrize("given", ["neither", "both"])
def test_a_project_is_named_once(built: dict[str, Any], given: str, tmp_path: Path) -> None:
    stack = cdk.Stack(cdk.App(), "agents-other")
    folder = tmp_path if given == "both" else None
    loaded = built["support"].project if given == "both" else None
    with pytest.raises(ValueError, match="exactly one of project_dir"):
        AgentProject(stack, "Other", plane=built["plane"], project_dir=folder, project=loaded)


def test_a_grant_with_nothing_to_grant_on_grants_nothing() -> None:
    from infra.plane import _grant

    role = iam.Role(cdk.Stack(cdk.App(), "Empty"), "Role", assumed_by=iam.AccountRootPrincipal())
    grant = _grant(role, ["lambda:InvokeFunction"], [], "no agents")
    assert not grant.success
    assert role.node.try_find_child("DefaultPolicy") is None  # no statement without resources was added
