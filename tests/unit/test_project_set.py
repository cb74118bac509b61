"""Agent projects: the manifest, what a project set may hold, and the scaffold `new project` writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from contracts.loader import ContractError
from contracts.project import CORE_PROJECT, load_project, plane_set
from infra.components.agent_pool import handler_asset
from infra.components.errors import ContractInfraError
from infra.paths import REPO_ROOT
from infra.scaffold import ScaffoldError, new_project

pytestmark = pytest.mark.unit


@pytest.fixture
def scaffolded(tmp_path: Path) -> Path:
    new_project(tmp_path / "orders")
    return tmp_path / "orders"


def test_the_scaffold_loads_as_a_project(scaffolded: Path) -> None:
    project = load_project(scaffolded)

    assert project.name == "orders"
    assert sorted(project.contracts) == ["orders-resolver", "orders-triage"]
    assert list(project.workflows) == ["orders-tickets"]
    assert project.contracts["orders-triage"].io.input == "OrdersTicket"  # the schema file, by its title
    assert project.contracts["orders-resolver"].io.output == "OrdersResolution"  # the pydantic model, by its name
    assert project.source_root == (scaffolded / "src").resolve()


def test_a_project_set_holds_the_planes_own_agents_and_refuses_a_name_twice(scaffolded: Path, tmp_path: Path) -> None:
    planes = plane_set([load_project(scaffolded)])
    assert planes.projects[0].name == CORE_PROJECT
    assert {"decision-recorder", "failure-recorder", "orders-triage"} <= set(planes.contracts)
    assert planes.owner("orders-triage").name == "orders"
    assert planes.owner("failure-recorder").source_root == REPO_ROOT  # the plane's own handlers

    twin = tmp_path / "twin"
    shutil.copytree(scaffolded, twin)
    (twin / "agentplane.yaml").write_text((twin / "agentplane.yaml").read_text().replace("name: orders", "name: twin"))
    with pytest.raises(ContractError, match="agent 'orders-resolver' is defined by both orders and twin"):
        plane_set([load_project(scaffolded), load_project(twin)])


@pytest.mark.parametrize(
    ("manifest", "says"),
    [
        ("name: Orders\nowners: [a]\n", "name"),
        ("name: orders\nowners: []\n", "owners"),
        ("name: orders\nowners: [a]\nsource: ../elsewhere\n", "must be a folder inside the project"),
        ("name: orders\nowners: [a]\nagents: nowhere\n", "no folder"),
    ],
)
def test_a_bad_manifest_is_one_line_naming_its_field(scaffolded: Path, manifest: str, says: str) -> None:
    (scaffolded / "agentplane.yaml").write_text(manifest)
    with pytest.raises(ContractError, match=says) as raised:
        load_project(scaffolded)
    assert "\n" not in str(raised.value)


def test_a_folder_without_a_manifest_is_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"not a project: no agentplane\.yaml"):
        load_project(tmp_path)


def test_a_project_cannot_redefine_the_planes_own_agents(scaffolded: Path) -> None:
    shutil.copy(REPO_ROOT / "contracts" / "core" / "failure-recorder.yaml", scaffolded / "agents")
    with pytest.raises(ContractError, match="failure-recorder' is defined by both agentplane-core and orders"):
        plane_set([load_project(scaffolded)])


def test_a_handler_is_staged_as_its_package_from_the_projects_source(scaffolded: Path) -> None:
    project = load_project(scaffolded)

    staged = handler_asset(project.contracts["orders-triage"], project.source_root)

    assert (staged / "orders_agents" / "triage.py").is_file()
    assert (staged / "orders_agents" / "schemas" / "ticket.json").is_file()  # the schema ships with the code
    shutil.rmtree(scaffolded / "src" / "orders_agents")
    with pytest.raises(ContractInfraError, match="no package orders_agents"):
        handler_asset(project.contracts["orders-triage"], project.source_root)


def test_new_project_refuses_a_folder_in_use_and_a_bad_name(scaffolded: Path, tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="is not an empty folder"):
        new_project(scaffolded)
    with pytest.raises(ScaffoldError, match="kebab-case"):
        new_project(tmp_path / "Bad_Name")


def test_deploy_hands_cdk_the_projects_as_context(scaffolded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from infra import cli

    ran: list[list[str]] = []
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(
        subprocess, "run", lambda command, **_: ran.append(command) or subprocess.CompletedProcess(command, 0)
    )

    assert cli.main(["deploy", "--project", str(scaffolded), "--", "--require-approval", "never"]) == 0

    [command] = ran
    assert command[:4] == ["/usr/bin/npx", "--no-install", "cdk", "deploy"]
    assert f"-cagentplane:project={scaffolded.resolve()}" in command
    assert command[-2:] == ["--require-approval", "never"]


def test_a_project_option_naming_no_project_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from infra import cli

    assert cli.main(["synth", "--project", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "not a project (no agentplane.yaml" in capsys.readouterr().err
