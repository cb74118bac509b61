"""agentplane as a package: the wheel built, installed into a fresh virtualenv, and a team's project synthesized with
it from a folder outside the repository; then every function of the template imported the way Lambda would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from infra.paths import LOCAL_LAMBDA_DEPS_DIR, LOCAL_LAMBDA_RUNTIME_DIR, REPO_ROOT

pytestmark = pytest.mark.e2e


def uv() -> str:
    found = REPO_ROOT / ".cache" / "uv" / "bin" / "uv"
    path = str(found) if found.is_file() else shutil.which("uv")
    assert path, "uv is missing: `make setup` installs it into .cache/uv"
    return path


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The wheel, and a virtualenv holding only it and its base dependencies (from uv's cache when it can)."""
    work = tmp_path_factory.mktemp("wheel")
    # Nothing of the checkout's environment leaks in: no PYTHONPATH, no active virtualenv, the venv's bin first;
    # uv (which builds the Lambda layer) and Node (which jsii needs) from `make setup`.
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    venv = work / "venv"
    tools = [str(venv / "bin"), str(Path(uv()).parent), str(REPO_ROOT / ".cache" / "node" / "bin")]
    env["PATH"] = os.pathsep.join([*tools, env.get("PATH", "")])
    env["AGENTPLANE_CACHE_DIR"] = str(work / "cache")  # the layer is built on first synth, here
    run([uv(), "build", "--wheel", "--quiet", "--out-dir", str(work / "dist")], REPO_ROOT, env, timeout=180)
    [wheel] = (work / "dist").glob("agentplane-*.whl")
    run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], work, env, timeout=60)
    run([uv(), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)], work, env, 300)
    return {"wheel": wheel, "venv": venv, "env": env, "work": work}


def test_the_wheel_holds_one_namespace(installed: dict[str, Any]) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"agentplane"}
    # agentplane and agentplane.functions are namespace packages: on Lambda, code and runtime layer merge on import
    assert "agentplane/__init__.py" not in names
    assert "agentplane/functions/__init__.py" not in names
    assert {"agentplane/infra/cli/__init__.py", "agentplane/infra/lambda-requirements.txt"} <= set(names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "agentplane = agentplane.infra.cli:main" in zipfile.ZipFile(installed["wheel"]).read(entry_points).decode()


def test_the_base_install_leaves_the_local_plane_out(installed: dict[str, Any]) -> None:
    python = str(installed["venv"] / "bin" / "python")
    probe = "import importlib.util as u; print([m for m in ('moto', 'uvicorn', 'onnxruntime') if u.find_spec(m)])"
    found = run([python, "-c", probe], installed["work"], installed["env"], timeout=60)
    assert found.stdout.strip() == "[]"
    # A command that needs the extra says which, in one line
    serve = subprocess.run(
        [str(installed["venv"] / "bin" / "agentplane"), "local", "serve"],
        cwd=installed["work"],
        env=installed["env"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert serve.returncode == 1
    assert serve.stderr.strip() == "agentplane local serve: needs agentplane[local]: pip install 'agentplane[local]'"


def _value(value: Any) -> str:
    """An environment variable of the template, its references replaced (the API's WORKFLOWS is a Fn::Join)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_value(part) for part in parts)
    return "resolved-at-deploy"


def test_a_project_outside_the_repo_synthesizes_from_the_installed_package(installed: dict[str, Any]) -> None:
    outside = installed["work"] / "team"
    outside.mkdir()
    assert not outside.resolve().is_relative_to(REPO_ROOT)
    cli = str(installed["venv"] / "bin" / "agentplane")
    env = installed["env"]
    # GIVEN a project made by the installed CLI
    run([cli, "new", "project", "demo"], outside, env, timeout=120)
    run([cli, "workflows", "check", "--project", "demo"], outside, env, timeout=120)
    # WHEN it synthesizes (building the arm64 dependencies layer on the way)
    synth = run([cli, "synth", "--project", "demo", "--out", "cdk.out"], outside, env, timeout=480)
    assert "cdk-nag AwsSolutions: clean" in synth.stdout
    # THEN the template holds the project's agents and workflow, and the plane's functions by their namespaced names
    out = outside / "cdk.out"
    resources = json.loads((out / "agentplane.template.json").read_text())["Resources"]
    functions = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::Lambda::Function"}
    handlers = {p["Handler"] for p in functions.values()}
    assert {"demo_agents.triage.lambda_handler", "demo_agents.resolver.lambda_handler"} <= handlers
    assert "agentplane.functions.api.handler.lambda_handler" in handlers
    assert all(h.startswith(("agentplane.functions.", "demo_agents.")) for h in handlers if h != "index.handler")
    machines = [r for r in resources.values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    assert [m["Metadata"]["agentplane:workflow"] for m in machines] == ["demo-tickets"]
    assert any((installed["work"] / "cache").glob("lambda-deps-*/python/pydantic"))

    # AND each function imports its handler as Lambda does: its code, then the runtime layer, then the libraries
    # (this machine's build of the same pins stands in for the arm64 layer), in an interpreter without site-packages
    def asset(code: dict[str, Any]) -> Path:
        return out / f"asset.{code['S3Key'].removesuffix('.zip')}"

    runtime = next(k for k, r in resources.items() if k.startswith("LayersRuntime"))
    runtime_python = asset(resources[runtime]["Properties"]["Content"]) / "python"
    libraries = [LOCAL_LAMBDA_DEPS_DIR / "python", LOCAL_LAMBDA_RUNTIME_DIR]
    assert all(folder.is_dir() for folder in libraries), "`make setup` builds the functions' local libraries"
    python = shutil.which("python3", path=str(installed["venv"] / "bin"))
    assert python
    imported = []
    for properties in functions.values():
        if not any(layer.get("Ref") == runtime for layer in properties.get("Layers", [])):
            continue  # CDK's own custom-resource provider
        module, _, attribute = properties["Handler"].rpartition(".")
        sys_path = [str(asset(properties["Code"])), str(runtime_python), *map(str, libraries)]
        script = (
            f"import sys, importlib; sys.path[:0] = {sys_path!r}; "
            f"getattr(importlib.import_module({module!r}), {attribute!r})"
        )
        variables = properties.get("Environment", {}).get("Variables", {})
        lambda_env = {"AWS_DEFAULT_REGION": "us-east-1", **{k: _value(v) for k, v in variables.items()}}
        run([python, "-I", "-S", "-c", script], outside, lambda_env, timeout=120)
        imported.append(properties["Handler"])
    assert set(imported) == handlers - {"index.handler"}
