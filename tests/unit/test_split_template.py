"""The local plane stands up a split assembly: the plane's stack and its projects' stacks as one template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.local.template import Template, TemplateError

pytestmark = pytest.mark.unit

EXPORT = "agentplane:ExportsOutputFnGetAttBusArn"


def assembly(tmp_path: Path, project: dict[str, Any]) -> Path:
    core = {
        "Resources": {
            "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": "bus"}},
            "Provider": {"Type": "AWS::Lambda::Function", "Properties": {}},
        },
        "Outputs": {"ExportBus": {"Value": {"Fn::GetAtt": ["Bus", "Arn"]}, "Export": {"Name": EXPORT}}},
    }
    (tmp_path / "agentplane.template.json").write_text(json.dumps(core))
    (tmp_path / "agentplane-team.template.json").write_text(json.dumps(project))
    manifest = {
        "artifacts": {
            "agentplane": {"type": "aws:cloudformation:stack", "dependencies": ["agentplane.assets"]},
            "agentplane-team": {"type": "aws:cloudformation:stack", "dependencies": ["agentplane"]},
            "unrelated": {"type": "aws:cloudformation:stack", "dependencies": []},
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_imports_become_the_exported_value_and_taken_ids_are_renamed(tmp_path: Path) -> None:
    project = {
        "Resources": {
            "Provider": {"Type": "AWS::Lambda::Function", "Properties": {}},  # CDK's per-stack singleton
            "Rule": {
                "Type": "AWS::Events::Rule",
                "DependsOn": "Provider",
                "Properties": {
                    "EventBusName": {"Fn::ImportValue": EXPORT},
                    "Targets": [{"Arn": {"Fn::GetAtt": ["Provider", "Arn"]}}],
                    "Description": {"Fn::Sub": "${Provider.Arn} on ${Bus}"},
                },
            },
        }
    }
    template = Template.load_plane(assembly(tmp_path, project), "agentplane")

    assert sorted(template.resources) == ["AgentplaneTeamProvider", "Bus", "Provider", "Rule"]
    rule = template.resources["Rule"]
    assert rule["DependsOn"] == "AgentplaneTeamProvider"
    assert rule["Properties"]["EventBusName"] == {"Fn::GetAtt": ["Bus", "Arn"]}
    assert rule["Properties"]["Targets"] == [{"Arn": {"Fn::GetAtt": ["AgentplaneTeamProvider", "Arn"]}}]
    assert rule["Properties"]["Description"] == {"Fn::Sub": "${AgentplaneTeamProvider.Arn} on ${Bus}"}
    # the order respects the import: the plane's bus before the project's rule
    order = template.creation_order()
    assert order.index("Bus") < order.index("Rule")


def test_an_import_the_plane_does_not_export_is_a_clear_error(tmp_path: Path) -> None:
    project = {"Resources": {"Rule": {"Type": "AWS::Events::Rule", "Properties": {"Name": {"Fn::ImportValue": "x"}}}}}
    with pytest.raises(TemplateError, match="agentplane-team imports 'x', which the plane's stack does not export"):
        Template.load_plane(assembly(tmp_path, project), "agentplane")


def test_a_single_stack_assembly_is_its_one_template(tmp_path: Path) -> None:
    (tmp_path / "agentplane.template.json").write_text(json.dumps({"Resources": {"Bus": {"Type": "AWS::SQS::Queue"}}}))
    assert list(Template.load_plane(tmp_path, "agentplane").resources) == ["Bus"]
