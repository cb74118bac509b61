"""The deployment pipeline (opt-in): its own synth, stages, source, gate, artifacts, cdk-nag and lint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.rules import Match

from infra.app import ContextError, build_app
from infra.pipeline import BRANCH, CONNECTION_ARN, PIPELINE, PIPELINE_ENV, REPOSITORY, pinned_cdk_cli
from tests.infra.assembly import PINNED_LOGICAL_IDS, SYNTH_CONTEXT, Synthesized
from tests.infra.test_cfn_lint import described, findings
from tests.infra.test_nag import NAG_PREFIX, acknowledgements, metadata

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]
PIPELINE_STACK = "agentplane-pipeline"
# Stand-ins: the pipeline never hard-codes an account, so the test names them.
PROD_ACCOUNT = "222222222222"
CONNECTION = "arn:aws:codeconnections:eu-west-1:111111111111:connection/0b0c8f2e-5a4d-4e63-9d6e-1f2a3b4c5d6e"
SETTINGS = {
    PIPELINE: "true",
    CONNECTION_ARN: CONNECTION,
    REPOSITORY: "example/agentplane",
    BRANCH: "release",
    PIPELINE_ENV: "aws://111111111111/eu-west-1",
    "agentplane:pipeline-prod-env": f"aws://{PROD_ACCOUNT}/eu-west-1",  # prod in an account of its own
    "agentplane:removal-policy": "retain",
}


class Pipeline:
    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self.template: dict[str, Any] = json.loads((outdir / f"{PIPELINE_STACK}.template.json").read_text())
        (self.pipeline,) = self.of_type("AWS::CodePipeline::Pipeline").values()

    def of_type(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {lid: r for lid, r in self.template["Resources"].items() if r["Type"] == resource_type}

    def stage(self, name: str) -> list[dict[str, Any]]:
        (stage,) = [s for s in self.pipeline["Properties"]["Stages"] if s["Name"] == name]
        actions: list[dict[str, Any]] = stage["Actions"]
        return actions

    def project(self, action: dict[str, Any]) -> dict[str, Any]:
        project: dict[str, Any] = self.template["Resources"][action["Configuration"]["ProjectName"]["Ref"]]
        return project

    def stage_assembly(self, stage: str) -> tuple[Path, str]:
        """(nested assembly directory, artifact id) of the plane stack a stage deploys."""
        directory = self.outdir / f"assembly-{PIPELINE_STACK}-{stage}"
        manifest = json.loads((directory / "manifest.json").read_text())
        (artifact,) = [k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"]
        return directory, artifact


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The pipeline app, synthesized once for this module (cdk-nag runs inside synth, as for the plane)."""
    outdir = tmp_path_factory.mktemp("pipeline")
    build_app(outdir, context={**SYNTH_CONTEXT, **SETTINGS}).synth()
    return Pipeline(outdir)


def test_stages_run_source_build_dev_then_prod(pipeline: Pipeline) -> None:
    # GIVEN the pipeline WHEN its stages are read in order THEN the build gates dev, and dev comes before prod
    names = [s["Name"] for s in pipeline.pipeline["Properties"]["Stages"]]
    assert names == ["Source", "Build", "UpdatePipeline", "Assets", "dev", "prod"]
    assert pipeline.pipeline["Properties"]["PipelineType"] == "V2"


def test_source_is_the_connection_repository_and_branch_from_context(pipeline: Pipeline) -> None:
    (source,) = pipeline.stage("Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"] == {
        "ConnectionArn": CONNECTION,
        "FullRepositoryId": "example/agentplane",
        "BranchName": "release",
    }
    # AND the source action may use exactly that connection
    grants = [
        s
        for policy in pipeline.of_type("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "codestar-connections:UseConnection" in json.dumps(s["Action"])
    ]
    assert [g["Resource"] for g in grants] == [CONNECTION]


def test_build_runs_make_test_before_synthesizing_this_pipeline(pipeline: Pipeline) -> None:
    # GIVEN the synth step's build spec
    (synth,) = pipeline.stage("Build")
    spec = json.loads(pipeline.project(synth)["Properties"]["Source"]["BuildSpec"])
    commands = spec["phases"]["build"]["commands"]

    # THEN `make test` (lint, types, every test tier, cdk-nag, cfn-lint) gates the synth
    assert spec["phases"]["install"]["commands"] == ["make setup"]
    assert commands[0] == "make test"
    assert commands[1].startswith("npx --no-install cdk synth")
    # AND the synth passes every agentplane setting it was given, so the self-mutation keeps this pipeline and plane
    for key, value in SETTINGS.items():
        assert f"-c {key}={value}" in commands[1]
    assert spec["artifacts"]["base-directory"] == "cdk.out"


def test_cdk_cli_in_the_pipeline_is_the_pinned_one(pipeline: Pipeline) -> None:
    (mutate,) = pipeline.stage("UpdatePipeline")
    spec = json.loads(pipeline.project(mutate)["Properties"]["Source"]["BuildSpec"])
    assert f"npm install -g aws-cdk@{pinned_cdk_cli()}" in spec["phases"]["install"]["commands"]


def test_prod_waits_for_a_manual_approval_dev_does_not(pipeline: Pipeline) -> None:
    # GIVEN each stage's actions
    dev, prod = pipeline.stage("dev"), pipeline.stage("prod")

    # THEN dev deploys its plane stack with no approval
    assert {a["ActionTypeId"]["Category"] for a in dev} == {"Deploy"}
    assert {a["Configuration"]["StackName"] for a in dev} == {"dev-agentplane"}

    # AND prod's first action is a manual approval, strictly before any of its deployments
    (approval,) = [a for a in prod if a["ActionTypeId"]["Category"] == "Approval"]
    assert approval["ActionTypeId"]["Provider"] == "Manual"
    deploys = [a for a in prod if a["ActionTypeId"]["Category"] == "Deploy"]
    assert {a["Configuration"]["StackName"] for a in deploys} == {"prod-agentplane"}
    assert all(approval["RunOrder"] < a["RunOrder"] for a in deploys)


def test_prod_in_another_account_deploys_there_and_can_read_the_artifacts(pipeline: Pipeline) -> None:
    # GIVEN prod in its own account (context agentplane:pipeline-prod-env), dev in the pipeline's
    deploy_role = f"role/cdk-hnb659fds-deploy-role-{PROD_ACCOUNT}-eu-west-1"
    prod = [a for a in pipeline.stage("prod") if a["ActionTypeId"]["Category"] == "Deploy"]
    dev = pipeline.stage("dev")

    # THEN prod deploys through that account's bootstrap deploy role, dev through the pipeline account's
    assert all(deploy_role in json.dumps(a["RoleArn"]) for a in prod)
    assert not any(PROD_ACCOUNT in json.dumps(a.get("RoleArn")) for a in dev)
    # AND that role, alone of the prod account, may decrypt the artifacts (the key never opens to the account root)
    store = pipeline.pipeline["Properties"]["ArtifactStore"]
    key = pipeline.template["Resources"][store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]]
    grants = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if PROD_ACCOUNT in json.dumps(s["Principal"])]
    assert [(g["Action"], deploy_role in json.dumps(g["Principal"])) for g in grants] == [
        (["kms:Decrypt", "kms:DescribeKey"], True)
    ]


def test_each_stage_deploys_the_plane_the_default_app_deploys(pipeline: Pipeline, synthesized: Synthesized) -> None:
    # GIVEN the plane stack of each stage
    for stage in ("dev", "prod"):
        directory, artifact = pipeline.stage_assembly(stage)
        template = json.loads((directory / f"{artifact}.template.json").read_text())
        resources: dict[str, dict[str, Any]] = template["Resources"]
        # THEN it holds the same resources as the stack `cdk deploy` deploys, stateful ones under the same ids
        types = sorted(r["Type"] for r in resources.values())
        assert types == sorted(r["Type"] for r in synthesized.resources.values()), stage
        assert {lid: resources[lid]["Type"] for lid in PINNED_LOGICAL_IDS} == PINNED_LOGICAL_IDS, stage
        # AND a pipeline builds its stages for prod unless agentplane:environment says otherwise
        assert template["Metadata"]["agentplane:environment"] == "prod", stage


def test_artifacts_are_kms_encrypted_and_never_public(pipeline: Pipeline) -> None:
    # GIVEN the pipeline's artifact store
    store = pipeline.pipeline["Properties"]["ArtifactStore"]
    bucket = pipeline.template["Resources"][store["Location"]["Ref"]]["Properties"]
    key_lid = store["EncryptionKey"]["Id"]["Fn::GetAtt"][0]

    # THEN artifacts are encrypted with a customer-managed, rotated key, in a bucket no one outside can read
    assert store["EncryptionKey"]["Type"] == "KMS"
    assert pipeline.template["Resources"][key_lid]["Properties"]["EnableKeyRotation"] is True
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_lid, "Arn"]}
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    # AND every build project encrypts its output with the same key
    for lid, project in pipeline.of_type("AWS::CodeBuild::Project").items():
        assert project["Properties"]["EncryptionKey"] == {"Fn::GetAtt": [key_lid, "Arn"]}, lid


def test_pipeline_and_its_stages_have_no_unacknowledged_findings(pipeline: Pipeline) -> None:
    # GIVEN the pipeline stack and the plane stack of each stage, all checked by cdk-nag during synth
    assemblies = [(pipeline.outdir, PIPELINE_STACK), *(pipeline.stage_assembly(s) for s in ("dev", "prod"))]
    for directory, artifact in assemblies:
        # THEN none carries an error or warning
        flagged = [
            (path, entry["data"])
            for path, entries in metadata(directory, artifact).items()
            for entry in entries
            if entry["type"] in ("aws:cdk:error", "aws:cdk:warning")
        ]
        assert flagged == [], artifact

    # AND every acknowledgement on the pipeline is made on the role it concerns, with a reason
    found = acknowledgements(pipeline.outdir, PIPELINE_STACK)
    nag = {key: reason for key, reason in found.items() if key[1].startswith(NAG_PREFIX)}
    assert nag, "the pipeline's generated roles should need acknowledged IAM5 findings"
    for (path, rule), reason in nag.items():
        assert path.endswith("Role"), f"{rule} is acknowledged on {path}, not on a role"
        assert len(reason.strip()) >= 20, f"{path}: {rule} has no real reason: {reason!r}"


def test_pipeline_template_lints_clean(pipeline: Pipeline) -> None:
    # cfn-lint 1.58 validates a CloudFormation action's RoleArn (the bootstrap role CDK Pipelines names with
    # Fn::Join over AWS::Partition) as a string and reports its Sub-over-Join preference as E3703: that alone is noise.
    def noise(m: Match) -> bool:
        return m.rule.id == "E3703" and m.path[-1] == "RoleArn" and m.message.startswith("Prefer using Fn::Sub")

    assert described([m for m in findings(pipeline.template) if not noise(m)]) == []


def test_default_app_has_no_pipeline(synthesized: Synthesized) -> None:
    # GIVEN the app as `cdk synth` and the local plane build it, with no pipeline context
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text())
    # THEN it holds the plane stack alone
    stacks = [k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"]
    assert stacks == ["agentplane"]


def test_default_app_never_loads_cdk_pipelines() -> None:
    # GIVEN a fresh interpreter WHEN it builds the default app THEN CDK Pipelines is never imported (nor paid for)
    code = "import sys; from infra.app import build_app; build_app(); print('aws_cdk.pipelines' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("missing", "named"),
    [(CONNECTION_ARN, "CodeStar"), (REPOSITORY, "owner/name"), (BRANCH, "branch")],
)
def test_missing_setting_is_a_one_line_error_naming_it(tmp_path: Path, missing: str, named: str) -> None:
    # GIVEN the pipeline asked for without one of its required settings
    context = {key: value for key, value in SETTINGS.items() if key != missing}
    # WHEN the app is built THEN it stops before any construct, naming the key and what it should hold
    with pytest.raises(ContextError) as raised:
        build_app(tmp_path, context=context)
    message = str(raised.value)
    assert "\n" not in message
    assert missing in message
    assert named in message
    assert f"-c {missing}=" in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (CONNECTION_ARN, "arn:aws:s3:::not-a-connection"),
        (REPOSITORY, "just-a-name"),
        (PIPELINE_ENV, "111111111111/eu-west-1"),
        ("agentplane:pipeline-prod-env", "aws://123/eu-west-1"),
    ],
)
def test_malformed_setting_is_a_one_line_error_naming_it(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ContextError) as raised:
        build_app(tmp_path, context={**SETTINGS, key: value})
    message = str(raised.value)
    assert "\n" not in message
    assert key in message
    assert repr(value) in message


def test_cdk_app_reports_a_missing_setting_in_one_line(tmp_path: Path) -> None:
    # GIVEN the entry point the CDK CLI runs, asked for the pipeline without a connection
    env = {
        **os.environ,
        "CDK_OUTDIR": str(tmp_path),
        "CDK_CONTEXT_JSON": json.dumps({PIPELINE: "true", REPOSITORY: "example/agentplane", BRANCH: "main"}),
    }
    # WHEN it runs THEN it exits non-zero with one line naming the key, and no traceback
    result = subprocess.run(
        [sys.executable, "-m", "infra.app"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("agentplane: context agentplane:pipeline-connection-arn is required")
