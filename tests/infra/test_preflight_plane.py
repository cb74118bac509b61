"""Preflight on the plane as synthesized: nothing AWS would refuse, and the account-wide settings called out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contracts.workflow import WORKFLOWS_DIR, load_workflow
from infra.bytecode import lambda_python
from infra.cli import main
from infra.components.public_api import INTEGRATION_TIMEOUT_S
from infra.local.template import Template
from infra.preflight import API_GATEWAY_INTEGRATION_LIMIT_S, Finding, StackCheck, preflight
from tests.infra.assembly import LEDGER_DIGESTS_BUCKET, Synthesized

QUICK_CHECK = load_workflow(WORKFLOWS_DIR / "quick-check.yaml")

pytestmark = pytest.mark.infra

# The functions whose code imports cryptography at load (the ledger's digest and signing modules).
CRYPTOGRAPHY_IMPORTERS = {"api", "ledger_appender", "ledger_digest"}


def errors(findings: list[Finding]) -> list[str]:
    return [f.line() for f in findings if f.severity == "error"]


def of_type(synthesized: Synthesized, findings: list[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if synthesized.resources.get(f.resource, {}).get("Type") == kind]


def function_lid(synthesized: Synthesized, folder: str) -> str:
    (lid,) = [
        lid
        for lid, res in synthesized.of_type("AWS::Lambda::Function").items()
        if res["Properties"]["Handler"] == f"functions.{folder}.handler.lambda_handler"
    ]
    return lid


@pytest.fixture(scope="module")
def findings(synthesized: Synthesized) -> list[Finding]:
    return preflight(synthesized.outdir)


@pytest.fixture(scope="module")
def prod_findings(synthesized_prod: Synthesized) -> list[Finding]:
    return preflight(synthesized_prod.outdir)


def test_the_default_sandbox_plane_has_no_error_findings(findings: list[Finding]) -> None:
    assert errors(findings) == []


def test_functions_without_lambdas_bytecode_are_called_out_once(findings: list[Finding]) -> None:
    bare = [f for f in findings if "ship no bytecode" in f.message]
    if lambda_python() is not None:  # a synth where Python 3.14 is found ships bytecode: nothing to say
        assert bare == []
        return
    # GIVEN a synth on a machine without Python 3.14 (as CI's): the assets ship sources only
    # THEN one info line says how many functions compile on every cold start, and how to ship bytecode
    assert [f.severity for f in bare] == ["info"]
    assert bare[0].resource.endswith(" functions")
    assert "AGENTPLANE_LAMBDA_PYTHON" in bare[0].message


def test_the_sandbox_plane_calls_out_the_account_role_its_stage_logging_needs(
    synthesized: Synthesized, findings: list[Finding]
) -> None:
    # GIVEN the default: no account-wide settings (no AWS::ApiGateway::Account, no sampling rules)
    assert not synthesized.of_type("AWS::ApiGateway::Account")
    assert not synthesized.of_type("AWS::XRay::SamplingRule")
    # THEN preflight warns that the stage's logging relies on the account's own CloudWatch role
    (stage,) = of_type(synthesized, findings, "AWS::ApiGateway::Stage")
    assert stage.severity == "warning"
    assert "agentplane:account-settings=true" in stage.message
    # AND the sandbox's Object Lock is named as what it is
    (lock,) = [f for f in findings if f.resource == LEDGER_DIGESTS_BUCKET]
    assert (lock.severity, "GOVERNANCE for 1 days (sandbox)" in lock.message) == ("info", True)


def test_prod_with_account_settings_has_no_errors_and_calls_out_each_account_wide_resource(
    synthesized_prod: Synthesized, prod_findings: list[Finding]
) -> None:
    assert errors(prod_findings) == []
    account_wide = {
        f.resource
        for f in prod_findings
        if f.severity == "warning" and ("account" in f.message and "every" in f.message)
    }
    expected = {
        *synthesized_prod.of_type("AWS::ApiGateway::Account"),
        *synthesized_prod.of_type("AWS::XRay::SamplingRule"),
    }
    assert len(expected) == 3  # the API Gateway account role and two sampling rules
    assert account_wide == expected
    # AND with the account's role in the stack, the stage needs nothing more
    assert not of_type(synthesized_prod, prod_findings, "AWS::ApiGateway::Stage")
    (lock,) = [f for f in prod_findings if f.resource == LEDGER_DIGESTS_BUCKET]
    assert lock.severity == "info"
    assert "COMPLIANCE" in lock.message


def test_each_workflow_sample_payload_is_sized_against_the_state_limit(
    synthesized: Synthesized, findings: list[Finding]
) -> None:
    sized = {f.resource: f.message for f in of_type(synthesized, findings, "AWS::StepFunctions::StateMachine")}
    assert set(sized) == set(synthesized.of_type("AWS::StepFunctions::StateMachine"))
    assert all("of the 256.0 KB state limit" in message for message in sized.values())
    assert any("events/doc-review-request.json" in message for message in sized.values())


def test_the_api_function_outlasts_the_synchronous_workflow_within_api_gateway_s_limit(
    synthesized: Synthesized,
) -> None:
    # GIVEN the API function and the Express workflow it waits on (StartSyncExecution)
    api = synthesized.resources[function_lid(synthesized, "api")]["Properties"]
    (express,) = [
        lid
        for lid, m in synthesized.of_type("AWS::StepFunctions::StateMachine").items()
        if m["Properties"]["StateMachineType"] == "EXPRESS"
    ]
    budget = StackCheck(Template.load(synthesized.outdir, synthesized.stack.stack_name), Path()).workflow_budget_s(
        express
    )
    # THEN the workflow ends (its own TimeoutSeconds) before the function times out, which is within 29 s
    assert synthesized.state_machine_definition(express)["TimeoutSeconds"] == QUICK_CHECK.timeout_s
    assert budget is not None
    assert budget <= api["Timeout"] <= API_GATEWAY_INTEGRATION_LIMIT_S
    assert api["Timeout"] == INTEGRATION_TIMEOUT_S


def test_before_the_layer_shipped_cryptography_preflight_reports_each_function_that_imports_it(
    synthesized: Synthesized, tmp_path: Path
) -> None:
    # GIVEN the synthesized assembly with the dependencies layer as it was before cryptography joined the
    # `lambda` group: every installed distribution but cryptography (its *.dist-info is what preflight reads)
    template = Template.load(synthesized.outdir, synthesized.stack.stack_name)
    body = json.loads(json.dumps(template.body))
    shutil.copy(synthesized.outdir / "manifest.json", tmp_path / "manifest.json")
    for lid, res in body["Resources"].items():
        path = res.get("Metadata", {}).get("aws:asset:path")
        if path is None:
            continue
        source = synthesized.outdir / path
        if (
            res["Type"] == "AWS::Lambda::LayerVersion"
            and (source / "python").is_dir()
            and lid.startswith("LayersDependencies")
        ):
            for info in (source / "python").glob("*.dist-info"):
                if not info.name.startswith("cryptography-"):
                    shutil.copytree(info, tmp_path / path / "python" / info.name)
        elif not (tmp_path / path).exists():
            (tmp_path / path).symlink_to(source)
    (tmp_path / f"{template.stack_name}.template.json").write_text(json.dumps(body))

    # WHEN preflight checks it
    found = [f for f in preflight(tmp_path) if f.severity == "error"]

    # THEN it names cryptography, the file that imports it and the fix, for exactly the functions that load it
    reported = {f.resource for f in found if "module cryptography " in f.message}
    assert reported == {function_lid(synthesized, folder) for folder in CRYPTOGRAPHY_IMPORTERS}
    assert all("functions/runtime/" in f.message and "`lambda` dependency group" in f.message for f in found)
    assert {f.resource for f in found} == reported


def test_agentplane_preflight_runs_on_the_synthesized_assembly(
    synthesized: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN `agentplane preflight --assembly` checks the shared assembly
    code = main(["preflight", "--assembly", str(synthesized.outdir), "--stack", synthesized.stack.stack_name])
    lines = capsys.readouterr().out.splitlines()
    # THEN it exits 0 (no errors) with one line per finding: severity, resource, message
    assert code == 0
    assert lines
    assert all(line.split()[0] in ("warning", "info") for line in lines)
    assert any(line.split()[1] == LEDGER_DIGESTS_BUCKET for line in lines)
