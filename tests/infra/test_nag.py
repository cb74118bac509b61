"""cdk-nag (AwsSolutions) runs inside synth: an unacknowledged finding fails it, and every acknowledgement says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from infra.app import DEFAULT_STACK_NAME, build_app
from infra.components.nag import acknowledge
from tests.infra.assembly import SYNTH_CONTEXT, Synthesized

pytestmark = pytest.mark.infra

NAG_PREFIX = "Annotation::AwsSolutions-"
SQS_FINDINGS = ("AwsSolutions-SQS2", "AwsSolutions-SQS3", "AwsSolutions-SQS4")


def metadata(outdir: Path, stack_name: str) -> dict[str, list[dict[str, Any]]]:
    entries: dict[str, list[dict[str, Any]]] = json.loads((outdir / f"{stack_name}.metadata.json").read_text())
    return entries


def acknowledgements(outdir: Path, stack_name: str) -> dict[tuple[str, str], str]:
    """(construct path, rule) -> reason, from the ``aws:cdk:acknowledged-rules`` metadata synth records."""
    found = {}
    for path, entries in metadata(outdir, stack_name).items():
        for entry in entries:
            if entry["type"] == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in entry["data"].items():
                    found[(path, rule)] = reason
    return found


def unencrypted_queue_app(outdir: Path) -> tuple[cdk.App, sqs.Queue]:
    """A one-queue app that breaks three AwsSolutions rules: no encryption, no DLQ, plain HTTP allowed."""
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "Nagged")
    queue = sqs.Queue(stack, "Queue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    return app, queue


def test_plane_synthesizes_with_no_unacknowledged_findings(synthesized: Synthesized) -> None:
    # GIVEN the plane synthesized with the AwsSolutions checks build_app adds
    # THEN synth succeeded (the fixture) and left no error or warning on any construct
    entries = metadata(synthesized.outdir, DEFAULT_STACK_NAME)
    flagged = [
        (path, entry["data"])
        for path, items in entries.items()
        for entry in items
        if entry["type"] in ("aws:cdk:error", "aws:cdk:warning")
    ]
    assert flagged == []
    report = synthesized.outdir / "validation-report.json"
    if report.exists():
        assert [p["pluginName"] for p in json.loads(report.read_text())["pluginReports"] if p["violations"]] == []


def test_every_acknowledgement_says_why(synthesized: Synthesized) -> None:
    # GIVEN every rule acknowledged anywhere in the plane
    found = acknowledgements(synthesized.outdir, DEFAULT_STACK_NAME)
    nag = {key: reason for key, reason in found.items() if key[1].startswith(NAG_PREFIX)}
    assert nag, "no AwsSolutions acknowledgement recorded: did the metadata key or its format change?"

    # THEN each one carries a reason a reviewer can judge, not a placeholder
    for (path, rule), reason in found.items():
        assert len(reason.strip()) >= 20, f"{path}: {rule} is acknowledged without a real reason: {reason!r}"
    # AND wildcard acknowledgements are made on the roles that need them, never on the whole stack or app
    for path, rule in nag:
        assert path.count("/") >= 2, f"{rule} is acknowledged for everything under {path}"


def test_an_unacknowledged_finding_fails_synth(tmp_path: Path) -> None:
    # GIVEN an app with the AwsSolutions checks and an unencrypted queue that allows plain HTTP
    app, _ = unencrypted_queue_app(tmp_path)

    # WHEN it is synthesized THEN synth fails
    with pytest.raises(RuntimeError, match=r"Validation ?[Ff]ailed"):
        app.synth()

    # AND the report names each broken rule against the queue
    report = json.loads((tmp_path / "validation-report.json").read_text())
    (nag,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "failure"
    violations = {v["ruleName"]: [c["constructPath"] for c in v["violatingConstructs"]] for v in nag["violations"]}
    assert set(violations) == set(SQS_FINDINGS)
    assert all(paths == ["Nagged/Queue/Resource"] for paths in violations.values())


def test_acknowledged_findings_let_synth_pass(tmp_path: Path) -> None:
    # GIVEN the same app, each finding acknowledged with a reason through the plane's own helper
    app, queue = unencrypted_queue_app(tmp_path)
    for rule in SQS_FINDINGS:
        acknowledge(queue, rule, "test fixture: this queue exists to be flagged")

    # WHEN it is synthesized THEN synth succeeds and records each acknowledgement with its reason
    app.synth()
    recorded = acknowledgements(tmp_path, "Nagged")
    assert {rule.removeprefix("Annotation::") for _, rule in recorded} == set(SQS_FINDINGS)


def test_build_app_runs_the_checks(tmp_path: Path) -> None:
    # GIVEN the plane as build_app wires it, with an unencrypted queue slipped into its stack
    app = build_app(tmp_path, context=SYNTH_CONTEXT)
    stack = app.node.find_child(DEFAULT_STACK_NAME)
    assert isinstance(stack, cdk.Stack)
    sqs.Queue(stack, "Unencrypted", encryption=sqs.QueueEncryption.UNENCRYPTED, enforce_ssl=True)

    # WHEN it is synthesized THEN cdk-nag, added by build_app, fails synth on that queue alone
    with pytest.raises(RuntimeError, match=r"Validation ?[Ff]ailed"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    violations = {
        (v["ruleName"], c["constructPath"])
        for p in report["pluginReports"]
        for v in p["violations"]
        for c in v["violatingConstructs"]
    }
    assert violations == {
        ("AwsSolutions-SQS2", f"{DEFAULT_STACK_NAME}/Unencrypted/Resource"),
        ("AwsSolutions-SQS3", f"{DEFAULT_STACK_NAME}/Unencrypted/Resource"),
    }
