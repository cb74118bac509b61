"""cfn-lint on what CloudFormation will receive: the synthesized template and each state machine's definition."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint
from cfnlint.rules import Match

from tests.infra.assembly import Synthesized

pytestmark = pytest.mark.infra

REGIONS = ["us-east-1"]
# W3005 ("dependency already enforced by a GetAtt") flags the DependsOn CDK adds from a function to its role
# and default policy: the policy part of it is needed (the role must hold its grants before the function
# runs), the role part is redundant but harmless, and neither is ours to change.
NOISE = {"W3005"}


def findings(template: dict[str, Any]) -> list[Match]:
    return [m for m in lint(json.dumps(template), config=ManualArgs(regions=REGIONS)) if m.rule.id not in NOISE]


def described(matches: list[Match]) -> list[str]:
    return [f"{m.rule.id} {'/'.join(map(str, m.path))}: {m.message}" for m in matches]


def machine_template(definition: dict[str, Any]) -> dict[str, Any]:
    """A state machine whose definition is a plain object, which cfn-lint validates state by state (E3601).

    cfn-lint cannot look inside the synthesized ``DefinitionString`` (a ``Fn::Join`` of text and ARNs). It checks
    each state's shape, not that ``Next`` names an existing state: test_stack.py checks transitions.
    """
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {"Definition": definition, "RoleArn": "arn:aws:iam::123456789012:role/states"},
            }
        },
    }


@pytest.fixture(scope="module")
def template_findings(synthesized: Synthesized) -> list[Match]:
    return findings(synthesized.template)


@pytest.fixture(scope="module")
def definitions(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    machines = synthesized.of_type("AWS::StepFunctions::StateMachine")
    assert machines, "the plane has no state machine to lint"
    return {lid: synthesized.state_machine_definition(lid) for lid in machines}


def test_synthesized_template_has_no_lint_errors(template_findings: list[Match]) -> None:
    # GIVEN the template as synthesized WHEN cfn-lint checks it THEN it reports no error
    errors = [m for m in template_findings if m.rule.severity == "error"]
    assert described(errors) == []


def test_synthesized_template_has_no_lint_warnings(template_findings: list[Match]) -> None:
    # GIVEN the template as synthesized WHEN cfn-lint checks it THEN it warns of nothing but known noise
    assert described(template_findings) == []


def test_state_machine_definitions_lint_clean(definitions: dict[str, dict[str, Any]]) -> None:
    # GIVEN each state machine's definition resolved to plain JSON
    for lid, definition in definitions.items():
        # WHEN cfn-lint checks it as a Definition object THEN every state is well formed
        assert described(findings(machine_template(definition))) == [], lid


def test_lint_catches_a_task_without_a_resource(definitions: dict[str, dict[str, Any]]) -> None:
    # GIVEN a definition whose first Task has lost its Resource (proves the definition is really checked)
    definition = copy.deepcopy(next(iter(definitions.values())))
    task = next(name for name, state in definition["States"].items() if state["Type"] == "Task")
    del definition["States"][task]["Resource"]

    # WHEN cfn-lint checks it
    matches = findings(machine_template(definition))

    # THEN it reports the broken state
    assert [(m.rule.id, m.path[-1]) for m in matches] == [("E3601", task)]
    assert "'Resource' is a required property" in matches[0].message


def test_lint_catches_an_unknown_state_type(definitions: dict[str, dict[str, Any]]) -> None:
    # GIVEN a definition with a misspelt state type
    definition = copy.deepcopy(next(iter(definitions.values())))
    task = next(name for name, state in definition["States"].items() if state["Type"] == "Task")
    definition["States"][task]["Type"] = "Tsak"

    # WHEN cfn-lint checks it THEN it names the state
    matches = findings(machine_template(definition))
    assert [m.rule.id for m in matches] == ["E3601"]
    assert task in matches[0].path
