"""Stacks that scale with teams: 50 agents across 5 projects synthesize split, every stack well under the limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.app import build_app
from infra.scaffold import new_project

pytestmark = pytest.mark.infra

TEAMS = 5
AGENTS_PER_TEAM = 10
# CloudFormation refuses a template of more than 500 resources; a stack stays well below it.
MAX_RESOURCES = 400


def team(root: Path, index: int) -> Path:
    """A scaffolded project with its two agents, and more of the same kind up to AGENTS_PER_TEAM."""
    name = f"team{index}"
    folder = root / name
    new_project(folder, name=name)
    triage = (folder / "agents" / f"{name}-triage.yaml").read_text()
    for extra in range(AGENTS_PER_TEAM - 2):
        agent = f"{name}-sorter{extra}"
        text = triage.replace(f"name: {name}-triage", f"name: {agent}").replace(
            f"capabilities: [{name}-triage]", f"capabilities: [{agent}]"
        )
        (folder / "agents" / f"{agent}.yaml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("teams")
    projects = [team(root, index) for index in range(1, TEAMS + 1)]
    app = build_app(root / "cdk.out", projects=projects, context={"agentplane:layout": "split"})
    return app.synth()


def counts(assembly: Any) -> dict[str, int]:
    return {stack.stack_name: len(stack.template["Resources"]) for stack in assembly.stacks}


def test_fifty_agents_across_five_teams_fit_in_stacks_of_their_own(assembly: Any) -> None:
    found = counts(assembly)
    print("resources per stack:", json.dumps(found, indent=1))  # the figures, for the record
    assert sorted(found) == ["agentplane", *(f"agentplane-team{i}" for i in range(1, TEAMS + 1))]
    assert all(count < MAX_RESOURCES for count in found.values()), found
    # every agent is registered (the plane's registry) from its own team's stack
    registered = {
        stack.stack_name: [lid for lid, r in stack.template["Resources"].items() if is_registration(r, "registry")]
        for stack in assembly.stacks
    }
    for i in range(1, TEAMS + 1):
        assert len(registered[f"agentplane-team{i}"]) == AGENTS_PER_TEAM


def is_registration(resource: dict[str, Any], kind: str) -> bool:
    return resource["Type"] == "Custom::AWS" and f'"{kind}/' in json.dumps(resource["Properties"].get("Create", ""))


def test_the_core_stack_refers_to_no_project(assembly: Any) -> None:
    core = assembly.get_stack_by_name("agentplane")
    text = json.dumps(core.template)
    assert "team" not in text
    assert "Fn::ImportValue" not in text
    for i in range(1, TEAMS + 1):
        project = assembly.get_stack_by_name(f"agentplane-team{i}")
        assert "agentplane" in {d.id for d in project.dependencies}
        # each team's workflow is in the plane's catalog, written by the team's own stack
        catalog = [r for r in project.template["Resources"].values() if is_registration(r, "catalog")]
        assert len(catalog) == 1, f"team{i} registers its one workflow"
