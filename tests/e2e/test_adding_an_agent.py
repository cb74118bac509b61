"""docs/adding-an-agent.md, as a test: one contract and one handler make an agent that runs, is synthesized with
exactly its contract's IAM, and is covered by the generated contract tests, with no other file touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from contracts.loader import CONTRACTS_DIR
from functions.runtime.registry import DynamoRegistry
from infra.app import build_app
from infra.cli import main
from infra.local.plane import LocalPlane, PlaneOptions
from infra.paths import FUNCTIONS_DIR, REPO_ROOT
from tests.generated_contracts import CONTRACTS_DIR_ENV, FUNCTIONS_DIR_ENV

pytestmark = pytest.mark.e2e

AGENT = "claim-sniffer"
GENERATED_TESTS = (
    "tests/integration/test_generated_contracts.py",
    "tests/infra/test_generated_environment.py",
    "tests/infra/test_stack.py::test_agent_function_follows_its_contract",
    "tests/infra/test_stack.py::test_agent_role_grants_exactly_its_contract",
)


def fingerprint(*roots: Path) -> dict[str, str]:
    """Every file under the roots (bytecode caches aside) and its digest."""
    return {
        str(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@dataclass(frozen=True)
class Throwaway:
    contracts: Path
    functions: Path


@pytest.fixture(scope="module")
def throwaway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Throwaway]:
    """Copies of the shipped contracts and functions, and one new agent scaffolded into them (`new agent`)."""
    root = tmp_path_factory.mktemp("project")
    contracts, functions = root / "contracts", root / "functions"
    contracts.mkdir()
    shutil.copytree(FUNCTIONS_DIR, functions, ignore=shutil.ignore_patterns("__pycache__"))
    for path in CONTRACTS_DIR.glob("*.yaml"):
        (contracts / path.name).write_bytes(path.read_bytes())
    before = fingerprint(CONTRACTS_DIR, FUNCTIONS_DIR)
    code = main(["new", "agent", AGENT, "--contracts", str(contracts), "--functions", str(functions)])
    assert code == 0
    yield Throwaway(contracts=contracts, functions=functions)
    # no file of the project was added, changed or removed along the way
    assert fingerprint(CONTRACTS_DIR, FUNCTIONS_DIR) == before


def test_the_agent_is_two_files(throwaway: Throwaway) -> None:
    new_code = sorted(p.name for p in (throwaway.functions / "claim_sniffer").iterdir())
    assert (throwaway.contracts / f"{AGENT}.yaml").is_file()
    assert new_code == ["__init__.py", "handler.py"]


def test_it_runs_locally_on_a_sample_event(throwaway: Throwaway, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "invoke",
            AGENT,
            "--event",
            str(REPO_ROOT / "events" / "payloads" / "ClaimCheck.json"),
            "--contracts",
            str(throwaway.contracts),
            "--functions",
            str(throwaway.functions),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    verdict = json.loads(out)
    assert (verdict["claim_id"], verdict["label"]) == ("c-001", "not-enough-info")
    assert f"{AGENT}: ok in" in err.splitlines()[-1]


def test_it_is_synthesized_and_covered_by_the_generated_tests(throwaway: Throwaway, tmp_path: Path) -> None:
    # WHEN the generated contract tests run on the project with the new agent (the IAM ones synthesize it)
    report = tmp_path / "report.xml"
    env = {**os.environ, CONTRACTS_DIR_ENV: str(throwaway.contracts), FUNCTIONS_DIR_ENV: str(throwaway.functions)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *GENERATED_TESTS, "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]

    # THEN each kind of generated test ran for the new agent, and passed
    cases = [case for case in ET.parse(report).getroot().iter("testcase") if f"[{AGENT}" in case.get("name", "")]
    assert all(len(case) == 0 for case in cases), "a generated test of the new agent failed or was skipped"
    kinds = {case.get("name", "").split("[", 1)[0] for case in cases}
    assert kinds == {
        "test_the_sample_input_is_accepted_and_the_output_conforms",
        "test_each_invalid_field_is_rejected_as_bad_input",
        "test_the_local_runner_sets_what_the_pool_sets",
        "test_agent_function_follows_its_contract",
        "test_agent_role_grants_exactly_its_contract",
    }


def test_it_is_registered_and_routed_to_on_the_local_plane(throwaway: Throwaway, tmp_path: Path) -> None:
    # GIVEN the plane stood up from a template synthesized with the new agent's contract and handler
    assembly = tmp_path / "cdk.out"
    build_app(
        assembly,
        contracts_dir=throwaway.contracts,
        functions_dir=throwaway.functions,
        context={"aws:cdk:enable-asset-metadata": "true"},  # the plane finds staged code by its metadata
    ).synth()
    options = PlaneOptions(state_dir=tmp_path / "plane", assembly_dir=assembly, schedule_scale=0)
    with LocalPlane(options) as plane:
        # WHEN its capabilities are listed, and a step asks the dispatcher for the new capability
        table = plane.physical("RegistryTable", "AWS::DynamoDB::Table")
        registered = DynamoRegistry(boto3.resource("dynamodb").Table(table), cache_s=0).implementations()
        request = {
            "accept": "0.x",
            "envelope": {
                "trace_id": "1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31",
                "causation_id": "tutorial-run/Sniff",
                "correlation_id": "tutorial-run",
                "capability": AGENT,
                "capability_version": "0.1.0",
                "deadline": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
                "payload": json.loads((REPO_ROOT / "events" / "payloads" / "ClaimCheck.json").read_text()),
            },
        }
        dispatcher = plane.physical("RegistryDispatcher", "AWS::Lambda::Function")
        answer = plane.client("lambda").invoke(FunctionName=dispatcher, Payload=json.dumps(request).encode())
        verdict = json.loads(answer["Payload"].read())
        decisions = plane.physical("DataDecisions", "AWS::DynamoDB::Table")
        recorded = plane.client("dynamodb").get_item(
            TableName=decisions, Key={"correlation_id": {"S": "tutorial-run"}, "step_key": {"S": "tutorial-run/Sniff"}}
        )["Item"]

    # THEN the registry knows it, and dispatch routed the step to it
    (entry,) = [i for i in registered if i.agent == AGENT]
    assert (entry.name, entry.capabilities, entry.contract_version) == (AGENT, [AGENT], "0.1.0")
    assert entry.circuit.state == "closed"
    assert "FunctionError" not in answer, verdict
    assert verdict["claim_id"] == "c-001"
    assert recorded["actor"]["S"] == f"agent:{AGENT}"
    assert json.loads(recorded["route_json"]["S"])["chosen"] == AGENT
