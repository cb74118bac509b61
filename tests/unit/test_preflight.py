"""Preflight on tiny hand-made cloud assemblies: each check finds what it is for, and the CLI reports it."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra import cli
from infra.preflight import Finding, PreflightError, parse_source, preflight

pytestmark = pytest.mark.unit

STACK = "demo"
FUNCTION = "AppFunction"
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


@dataclass
class Assembly:
    """A cloud assembly on disk: manifest, one stack's template, and asset folders named by aws:asset:path."""

    root: Path
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=lambda: {"agentplane:environment": "sandbox"})

    def asset(self, name: str, files: dict[str, str]) -> str:
        for relative, text in files.items():
            path = self.root / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (self.root / name).mkdir(parents=True, exist_ok=True)
        return name

    def layer(self, lid: str, kind: str, files: dict[str, str]) -> None:
        path = self.asset(f"asset.{lid}", files)
        self.resources[lid] = {
            "Type": "AWS::Lambda::LayerVersion",
            "Properties": {},
            "Metadata": {"aws:asset:path": path, "agentplane:layer-kind": kind},
        }

    def function(self, lid: str, files: dict[str, str], handler: str, layers: list[str], **props: Any) -> None:
        path = self.asset(f"asset.{lid}", files)
        self.resources[lid] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Runtime": "python3.14",
                "Handler": handler,
                "Layers": [{"Ref": layer} for layer in layers],
                **props,
            },
            "Metadata": {"aws:asset:path": path},
        }

    def write(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = {"version": "1", "artifacts": {STACK: {"type": "aws:cloudformation:stack"}, "Tree": {"type": "x"}}}
        (self.root / "manifest.json").write_text(json.dumps(manifest))
        body = {"Resources": self.resources, "Metadata": self.metadata}
        (self.root / f"{STACK}.template.json").write_text(json.dumps(body))
        return self.root


def dist_info(
    name: str, version: str, *, top_level: str | None = None, record: list[str] | None = None
) -> dict[str, str]:
    """A distribution as installed in a layer: what preflight reads to know which modules it provides."""
    info = f"python/{name}-{version}.dist-info"
    files = {f"{info}/METADATA": f"Name: {name}\n"}
    if top_level is not None:
        files[f"{info}/top_level.txt"] = top_level + "\n"
    if record is not None:
        files[f"{info}/RECORD"] = "".join(f"{path},sha256=x,1\n" for path in record)
    return files


# The shape of the plane before e84ebfa: a handler whose runtime layer signs with cryptography, a dependencies
# layer with pydantic and PyYAML (one with top_level.txt, one with only a RECORD) but no cryptography.
HANDLER = {
    "functions/app/handler.py": (
        "from __future__ import annotations\n"
        "import json\n"
        "from typing import TYPE_CHECKING\n"
        "import boto3\n"
        "import yaml\n"
        "from pydantic import BaseModel\n"
        "from functions.runtime.ledger import signing\n"
        "from . import service\n"
        "if TYPE_CHECKING:\n"
        "    import mypy_boto3_s3\n"
        "try:\n"
        "    import ujson\n"
        "except ImportError:\n"
        "    ujson = None\n"
        "def lambda_handler(event, context):\n"
        "    return service.answer(event)\n"
    ),
    "functions/app/service.py": "def answer(event):\n    return event\n",
}
RUNTIME = {
    "python/functions/runtime/__init__.py": "",
    "python/functions/runtime/ledger/__init__.py": "",
    "python/functions/runtime/ledger/signing.py": (
        "import hashlib\nfrom cryptography.hazmat.primitives import hashes\nfrom .digest import root\n"
    ),
    "python/functions/runtime/ledger/digest.py": "def root():\n    return b''\n",
}
DEPENDENCIES = {
    **dist_info("pydantic", "2.14.3", record=["pydantic/__init__.py", "pydantic-2.14.3.dist-info/RECORD"]),
    **dist_info("PyYAML", "6.0.3", top_level="_yaml\nyaml"),
}
CRYPTOGRAPHY = dist_info("cryptography", "50.0.2", record=["cryptography/__init__.py", "cryptography/hazmat/x.py"])


def plane(root: Path, *, dependencies: dict[str, str] = DEPENDENCIES, handler: dict[str, str] = HANDLER) -> Assembly:
    assembly = Assembly(root)
    assembly.layer("Dependencies", "dependencies", dependencies)
    assembly.layer("Runtime", "runtime", RUNTIME)
    assembly.function(FUNCTION, handler, "functions.app.handler.lambda_handler", ["Dependencies", "Runtime"])
    return assembly


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def test_a_package_missing_from_every_layer_is_an_error_naming_function_module_file_and_fix(tmp_path: Path) -> None:
    # GIVEN a runtime layer that imports cryptography and a dependencies layer without it
    root = plane(tmp_path).write()
    # WHEN preflight checks the assembly
    (missing,) = errors(preflight(root))
    # THEN only cryptography is missing: the stdlib, boto3 (the Lambda runtime's), yaml (top_level.txt), pydantic
    # (RECORD), project modules, TYPE_CHECKING and ImportError-guarded imports are all satisfied
    assert missing.resource == FUNCTION
    assert "module cryptography " in missing.message
    assert "functions/runtime/ledger/signing.py:2 (layer Runtime)" in missing.message
    assert missing.message.endswith("add it to the `lambda` dependency group in pyproject.toml")


def test_the_package_in_the_dependencies_layer_satisfies_the_import(tmp_path: Path) -> None:
    root = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY}).write()
    assert errors(preflight(root)) == []


def test_a_project_module_the_asset_does_not_stage_is_an_error(tmp_path: Path) -> None:
    # GIVEN a handler importing another function's module, which its asset does not hold
    handler = {**HANDLER, "functions/app/service.py": "from functions.registry_health.probe import check\n"}
    root = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY}, handler=handler).write()
    (missing,) = errors(preflight(root))
    assert "module functions.registry_health.probe" in missing.message
    assert "functions/app/service.py:1 (its asset)" in missing.message


def test_a_handler_module_that_is_not_staged_is_an_error(tmp_path: Path) -> None:
    assembly = plane(tmp_path)
    assembly.resources[FUNCTION]["Properties"]["Handler"] = "functions.other.handler.lambda_handler"
    (missing,) = errors(preflight(assembly.write()))
    assert "no module functions.other.handler" in missing.message


def test_code_and_layers_over_250_mb_unzipped_is_an_error(tmp_path: Path) -> None:
    assembly = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY})
    root = assembly.write()
    with (root / "asset.Dependencies" / "python" / "big.bin").open("wb") as big:
        big.truncate(250 * 1024 * 1024)  # sparse: its size counts, no disk is used
    (too_big,) = errors(preflight(root))
    assert too_big.resource == FUNCTION
    assert "of Lambda's 250.0 MB" in too_big.message


def express(task_timeout: int | None, *, machine_timeout: int | None = None, function: str = FUNCTION) -> str:
    task: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "${Fn}"},
        "Retry": [
            {"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 1, "MaxAttempts": 3, "BackoffRate": 2}
        ],
        "ResultPath": "$.verdict",
        "End": True,
    }
    if task_timeout is not None:
        task["TimeoutSeconds"] = task_timeout
    definition: dict[str, Any] = {"StartAt": "Verify", "States": {"Verify": task}}
    if machine_timeout is not None:
        definition["TimeoutSeconds"] = machine_timeout
    before, after = json.dumps(definition).split("${Fn}")
    return {"Fn::Join": ["", [before, {"Fn::GetAtt": [function, "Arn"]}, after]]}  # type: ignore[return-value]


def sync_api(assembly: Assembly, *, timeout: int, definition: Any) -> None:
    """An API function (integrated with a REST method) whose role may StartSyncExecution on an Express machine."""
    assembly.function(
        "ApiFunction",
        {"functions/api/handler.py": "import json\n"},
        "functions.api.handler.lambda_handler",
        [],
        Timeout=timeout,
        Role={"Fn::GetAtt": ["ApiRole", "Arn"]},
    )
    assembly.resources["ApiRole"] = {"Type": "AWS::IAM::Role", "Properties": {}}
    assembly.resources["ApiPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "Roles": [{"Ref": "ApiRole"}],
            "PolicyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Action": "states:StartSyncExecution", "Resource": [{"Ref": "QuickAlias"}]}
                ]
            },
        },
    }
    assembly.resources["Quick"] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"StateMachineType": "EXPRESS", "DefinitionString": definition},
    }
    assembly.resources["QuickVersion"] = {
        "Type": "AWS::StepFunctions::StateMachineVersion",
        "Properties": {"StateMachineArn": {"Ref": "Quick"}},
    }
    assembly.resources["QuickAlias"] = {
        "Type": "AWS::StepFunctions::StateMachineAlias",
        "Properties": {"DeploymentPreference": {"StateMachineVersionArn": {"Ref": "QuickVersion"}}},
    }
    uri = {
        "Fn::Join": ["", ["arn:aws:apigateway:...:/functions/", {"Fn::GetAtt": ["ApiFunction", "Arn"]}, "/invocations"]]
    }
    assembly.resources["Method"] = {"Type": "AWS::ApiGateway::Method", "Properties": {"Integration": {"Uri": uri}}}


def timing(
    tmp_path: Path, *, api_timeout: int, task_timeout: int | None, machine_timeout: int | None = None
) -> list[Finding]:
    assembly = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY})
    assembly.resources[FUNCTION]["Properties"]["Timeout"] = 5
    sync_api(assembly, timeout=api_timeout, definition=express(task_timeout, machine_timeout=machine_timeout))
    return [f for f in preflight(assembly.write()) if f.resource in ("ApiFunction", "Quick")]


def test_an_api_function_that_times_out_before_the_workflow_it_waits_on_is_an_error(tmp_path: Path) -> None:
    # GIVEN a task of 5 s, retried 3 times after 1, 2 and 4 s (27 s at worst), and an API function of 3 s
    (short,) = timing(tmp_path, api_timeout=3, task_timeout=5)
    assert (short.severity, short.resource) == ("error", "ApiFunction")
    assert "timeout 3 s is shorter than the 27 s budget of Quick" in short.message


def test_the_workflow_s_own_timeout_bounds_its_budget(tmp_path: Path) -> None:
    assert timing(tmp_path, api_timeout=12, task_timeout=5, machine_timeout=10) == []


def test_a_synchronous_workflow_longer_than_api_gateway_s_29_s_is_an_error(tmp_path: Path) -> None:
    found = timing(tmp_path, api_timeout=29, task_timeout=10)  # 10 s x 4 attempts + 7 s of backoff
    assert [(f.severity, "past API Gateway's 29 s" in f.message) for f in found] == [("error", True), ("error", False)]


def test_an_api_function_timeout_over_29_s_is_a_warning(tmp_path: Path) -> None:
    (late,) = timing(tmp_path, api_timeout=40, task_timeout=5)
    assert late.severity == "warning"
    assert "the client gets the 504 first" in late.message


def test_a_task_timeout_shorter_than_its_function_or_missing_is_a_warning(tmp_path: Path) -> None:
    (shorter,) = timing(tmp_path, api_timeout=29, task_timeout=2)
    assert (shorter.severity, shorter.resource) == ("warning", "Quick")
    assert f"gives up after 2 s but {FUNCTION} may run 5 s" in shorter.message
    missing = [f for f in timing(tmp_path / "again", api_timeout=29, task_timeout=None) if f.severity == "warning"]
    assert [f.message.split(":")[0] for f in missing] == [f"state 'Verify' invokes {FUNCTION} with no TimeoutSeconds"]


def test_a_queue_that_hides_messages_shorter_than_the_function_runs_is_an_error(tmp_path: Path) -> None:
    assembly = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY})
    assembly.resources[FUNCTION]["Properties"]["Timeout"] = 60
    assembly.resources["Buffer"] = {"Type": "AWS::SQS::Queue", "Properties": {}}  # 30 s by default
    assembly.resources["Mapping"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Buffer", "Arn"]}, "FunctionName": {"Ref": FUNCTION}},
    }
    (refused,) = errors(preflight(assembly.write()))
    assert refused.resource == "Mapping"
    assert "hides a message for 30 s, less than AppFunction's 60 s timeout" in refused.message


def test_resource_counts_near_and_over_cloudformation_s_limit(tmp_path: Path) -> None:
    for count, severity in ((399, "info"), (400, "warning"), (500, "error")):
        assembly = Assembly(tmp_path / str(count))
        assembly.resources = {f"Topic{i}": {"Type": "AWS::SNS::Topic"} for i in range(count)}
        (finding,) = preflight(assembly.write())
        assert (finding.resource, finding.severity) == (STACK, severity)


def test_a_sample_payload_over_256_kb_is_an_error(tmp_path: Path) -> None:
    assembly = plane(tmp_path / "cdk", dependencies={**DEPENDENCIES, **CRYPTOGRAPHY})
    assembly.resources["Quick"] = {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {"DefinitionString": express(5)},
        "Metadata": {"agentplane:workflow": "quick-check"},
    }
    events = tmp_path / "events"
    events.mkdir()
    (events / "quick-check-small.json").write_text(json.dumps({"claim": "x"}))
    (events / "quick-check-large.json").write_text(json.dumps({"claim": "x" * 300 * 1024}))
    (events / "doc-review-request.json").write_text(json.dumps({"document": "y" * 400 * 1024}))  # another workflow's
    (over,) = [f for f in preflight(assembly.write(), events_dir=events) if f.resource == "Quick"]
    assert over.severity == "error"
    assert "events/quick-check-large.json is 300.0 KB of the 256.0 KB state limit" in over.message


def locked(tmp_path: Path, environment: str, mode: str, days: int) -> Finding:
    assembly = Assembly(tmp_path / environment / mode, metadata={"agentplane:environment": environment})
    assembly.resources["Digests"] = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "ObjectLockEnabled": True,
            "ObjectLockConfiguration": {"Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}},
        },
        "Metadata": {"agentplane:retention": "ledger-digests"},
    }
    (finding,) = [f for f in preflight(assembly.write()) if f.resource == "Digests"]
    return finding


def test_object_lock_is_held_to_the_environment(tmp_path: Path) -> None:
    assert locked(tmp_path, "prod", "GOVERNANCE", 2555).severity == "error"
    assert locked(tmp_path, "prod", "COMPLIANCE", 30).severity == "error"  # less than ledger-digests declares
    assert locked(tmp_path, "prod", "COMPLIANCE", 2555).severity == "info"
    assert locked(tmp_path, "sandbox", "COMPLIANCE", 2555).severity == "warning"
    assert locked(tmp_path, "sandbox", "GOVERNANCE", 1).severity == "info"


def test_account_wide_resources_are_called_out(tmp_path: Path) -> None:
    assembly = Assembly(tmp_path)
    assembly.resources["Account"] = {
        "Type": "AWS::ApiGateway::Account",
        "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["PushRole", "Arn"]}},
    }
    catch_all = {"RuleName": "all", "ServiceName": "*", "Host": "*", "URLPath": "*", "Priority": 9000}
    assembly.resources["Sampling"] = {"Type": "AWS::XRay::SamplingRule", "Properties": {"SamplingRule": catch_all}}
    assembly.resources["Linked"] = {"Type": "AWS::IAM::ServiceLinkedRole", "Properties": {}}
    found = {f.resource: f for f in preflight(assembly.write()) if f.severity == "warning"}
    assert set(found) == {"Account", "Sampling", "Linked"}
    assert "CloudWatch Logs role (PushRole) for every API in this region" in found["Account"].message
    assert "matches every traced request of every service in the account" in found["Sampling"].message


def test_stage_logging_without_the_account_role_in_the_stack_is_a_warning(tmp_path: Path) -> None:
    assembly = Assembly(tmp_path)
    assembly.resources["Stage"] = {
        "Type": "AWS::ApiGateway::Stage",
        "Properties": {"AccessLogSetting": {"DestinationArn": "x"}},
    }
    (stage,) = [f for f in preflight(assembly.write()) if f.resource == "Stage"]
    assert stage.severity == "warning"
    assert "access and execution logging need the account's API Gateway CloudWatch Logs role" in stage.message


def test_no_assembly_or_no_such_stack_is_a_preflight_error(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="not a cloud assembly"):
        preflight(tmp_path)
    with pytest.raises(PreflightError, match=r"no stack 'other' in .* \(stacks: demo\)"):
        preflight(plane(tmp_path).write(), "other")


# --- the CLI ---------------------------------------------------------------------------------------------------


def test_cli_prints_one_line_per_finding_and_exits_1_on_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = plane(tmp_path).write()
    assert cli.main(["preflight", "--assembly", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"error    {FUNCTION}  module cryptography ")
    assert all(line.split()[0] in ("error", "warning", "info") for line in lines)


def test_cli_exits_0_without_errors_and_prints_json_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY}).write()
    assert cli.main(["preflight", "--assembly", str(root), "--stack", STACK, "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert {f["severity"] for f in findings} <= {"warning", "info"}
    assert {"severity", "resource", "message"} == set(findings[0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--assembly", "{tmp}/absent"], "--assembly {tmp}/absent: no such cloud assembly directory"),
        (["--assembly", "{tmp}/cdk", "--stack", "other"], "no stack 'other'"),
        (["--assembly", "{tmp}/cdk", "-c", "agentplane:environment=prod"], "--context applies when synthesizing"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    plane(tmp_path / "cdk").write()
    code = cli.main(["preflight", *(arg.format(tmp=tmp_path) for arg in argv)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert message.format(tmp=tmp_path) in err


def test_a_function_that_may_invoke_a_slower_one_is_a_warning(tmp_path: Path) -> None:
    # GIVEN a dispatcher of 3 s allowed to invoke (through its live alias) a function of 10 s
    assembly = plane(tmp_path, dependencies={**DEPENDENCIES, **CRYPTOGRAPHY})
    assembly.resources[FUNCTION]["Properties"]["Timeout"] = 10
    assembly.resources["Live"] = {"Type": "AWS::Lambda::Alias", "Properties": {"FunctionName": {"Ref": FUNCTION}}}
    assembly.function(
        "Dispatcher",
        {"functions/dispatch/handler.py": ""},
        "functions.dispatch.handler.lambda_handler",
        [],
        Timeout=3,
        Role={"Fn::GetAtt": ["DispatcherRole", "Arn"]},
    )
    assembly.resources["DispatcherRole"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Policies": [
                {
                    "PolicyDocument": {
                        "Statement": [
                            {"Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": {"Ref": "Live"}}
                        ]
                    }
                }
            ]
        },
    }
    (late,) = [f for f in preflight(assembly.write()) if f.resource == "Dispatcher"]
    assert late.severity == "warning"
    assert (
        f"may invoke {FUNCTION} (lambda:InvokeFunction), which runs up to 10 s, with a timeout of 3 s" in late.message
    )


def test_parse_source_parses_again_after_the_spurious_recursion_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    real = ast.parse
    calls: list[str] = []

    def racing(source: str, filename: str = "<unknown>") -> ast.Module:
        calls.append(filename)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=165, after=129)")
        return real(source, filename=filename)

    monkeypatch.setattr(ast, "parse", racing)
    tree = parse_source("import json\n", "m.py")

    assert isinstance(tree.body[0], ast.Import)
    assert calls == ["m.py", "m.py"]


def test_parse_source_lets_any_other_system_error_through(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: str, filename: str = "<unknown>") -> ast.Module:
        raise SystemError("something else")

    monkeypatch.setattr(ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        parse_source("x = 1\n")
