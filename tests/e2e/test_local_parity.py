"""What AWS would refuse, the local plane refuses: a grant removed from a contract, a package not in the layer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from contracts.loader import CONTRACTS_DIR
from infra.app import build_app
from infra.client import finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from infra.paths import FUNCTIONS_DIR
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    # GIVEN copies of the shipped contracts and functions with two mistakes AWS would catch at run time:
    #  - the intake's contract no longer grants it `write:documents` (it still stores documents; it may read them),
    #  - the entity tagger's handler imports a package only the development virtualenv has.
    root = tmp_path_factory.mktemp("project")
    contracts, functions = root / "contracts", root / "functions"
    shutil.copytree(CONTRACTS_DIR, contracts)
    shutil.copytree(FUNCTIONS_DIR, functions, ignore=shutil.ignore_patterns("__pycache__"))
    intake = contracts / "document-intake.yaml"
    text = intake.read_text()
    assert '"read:documents", "write:documents", ' in text
    intake.write_text(text.replace('"write:documents", ', ""))
    tagger = functions / "entity_tagger" / "handler.py"
    tagger.write_text(tagger.read_text() + "\nimport hypothesis  # noqa: E402, F401\n")

    assembly = root / "cdk.out"
    build_app(
        assembly,
        contracts_dir=contracts,
        functions_dir=functions,
        context={"aws:cdk:enable-asset-metadata": "true"},
    ).synth()
    options = PlaneOptions(state_dir=root / "plane", assembly_dir=assembly, schedule_scale=0)
    with LocalPlane(options) as running:
        yield running


def test_a_call_the_role_does_not_allow_fails_the_run_with_access_denied(plane: LocalPlane) -> None:
    # WHEN a review runs
    answer = request(plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-request.json"))
    run = finished(plane.url, answer.body["execution_id"], approve="approve")

    # THEN the intake fails as it would on AWS: its role may read the documents bucket, not write to it
    assert run["status"] == "FAILED"
    assert "AccessDenied" in json.dumps(run["error"])
    assert plane.iam is not None
    bucket = plane.physical("DataDocuments", "AWS::S3::Bucket")
    refused = {(check.action, check.resource.split(":::", 1)[-1].split("/", 1)[0]) for _, check in plane.iam.denied}
    assert ("s3:PutObject", bucket) in refused, run["error"]
    assert all("DocumentIntake" in caller for caller, _ in plane.iam.denied)
    assert "s3:PutObject" in (plane.state_dir / "logs" / "iam.log").read_text()


def test_a_package_outside_the_layer_fails_at_import(plane: LocalPlane) -> None:
    name = plane.physical("AgentEntityTaggerFunction", "AWS::Lambda::Function")

    response = plane.client("lambda").invoke(FunctionName=name, Payload=b"{}")
    error = json.loads(response["Payload"].read())

    assert response.get("FunctionError")
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'hypothesis'" in error["errorMessage"]
    assert name in error["errorMessage"]
    assert "`lambda` dependency group" in error["errorMessage"]
