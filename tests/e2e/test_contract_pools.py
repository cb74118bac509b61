"""What contracts add to a pool runs on the local plane too: a warm alias the workflows call."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import yaml

from contracts.loader import CONTRACTS_DIR
from infra.client import request
from infra.local.plane import LocalPlane, PlaneOptions
from tests.infra.assembly import synthesize

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def warm_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    """The plane with the evidence verifier asking for two warm instances (provisioned concurrency)."""
    root = tmp_path_factory.mktemp("warm")
    contracts = root / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    path = contracts / "evidence-verifier.yaml"
    document = yaml.safe_load(path.read_text())
    document["runtime"]["provisioned_concurrency"] = 2
    path.write_text(yaml.safe_dump(document))
    (assembly := root / "cdk.out").mkdir()
    synthesize(assembly, contracts_dir=contracts)
    options = PlaneOptions(state_dir=root / "plane", assembly_dir=assembly, schedule_scale=0)
    with LocalPlane(options) as running:
        yield running


def test_the_workflow_reaches_the_agent_through_its_warm_alias(warm_plane: LocalPlane) -> None:
    # GIVEN the verifier's function, published and aliased "live" on the local plane
    function = warm_plane.physical("AgentEvidenceVerifierFunction", "AWS::Lambda::Function")
    aliases = warm_plane.client("lambda").list_aliases(FunctionName=function)["Aliases"]
    assert [a["Name"] for a in aliases] == ["live"]
    before = warm_plane.lambdas.functions[function].invocations

    # WHEN quick-check runs
    answer = request(
        warm_plane.url,
        "POST",
        "/v1/workflows/quick-check/invoke",
        {"claim": "Northwind Analytics was founded in 2012."},
    )

    # THEN the claim is checked, by the verifier's code behind the alias
    assert answer.status == 200, answer.body
    assert answer.body["output"]["verdict"]["label"] == "supported"
    assert warm_plane.lambdas.functions[function].invocations == before + 1
