"""The wheel's namespacing (build_hooks.py), the shipped Lambda pins, and what an installed CLI says it lacks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

import build_hooks
from contracts.project import core_project
from infra import cli
from infra import lambda_deps as deps
from infra.cli import local as local_commands
from infra.components.agent_pool import LAMBDA_RUNTIME
from infra.paths import FUNCTIONS_PACKAGE, INSTALLED, REPO_ROOT, package_folder, plane_handler

pytestmark = pytest.mark.unit


# --- the rewrite ------------------------------------------------------------------------------------------------


def test_imports_and_module_strings_move_under_the_namespace() -> None:
    # GIVEN a module importing the plane's packages and naming its modules in strings
    source = '''"""See ``infra.local.plane``."""
from contracts.models import ClaimCheck
from infra.paths import REPO_ROOT
HANDLER = "functions.api.handler.lambda_handler"
APP = f"{REPO_ROOT} -m infra.app"
TEMPLATE = """\\
from functions.runtime import Agent
"""
'''
    # WHEN it is rewritten
    rewritten = build_hooks.rewrite_python(source, REPO_ROOT)
    # THEN imports, strings, f-strings and the code templates `new project` writes all name agentplane.*
    assert "from agentplane.contracts.models import ClaimCheck" in rewritten
    assert "from agentplane.infra.paths import REPO_ROOT" in rewritten
    assert '"agentplane.functions.api.handler.lambda_handler"' in rewritten
    assert 'f"{REPO_ROOT} -m agentplane.infra.app"' in rewritten
    assert "\nfrom agentplane.functions.runtime import Agent\n" in rewritten
    assert "``agentplane.infra.local.plane``" in rewritten
    ast.parse(rewritten)


def test_names_that_are_not_modules_stay_as_they_are() -> None:
    source = (
        'for c in contracts.values():\n    label = "contracts.items"\nx = functions.get("a")\npath = "a/infra.app"\n'
    )
    assert build_hooks.rewrite_python(source, REPO_ROOT) == source


def test_a_plain_import_of_a_package_is_refused() -> None:
    # `import contracts.loader` binds `contracts`; qualified, it would bind `agentplane` and break its users
    with pytest.raises(build_hooks.RewriteError, match=r"x\.py:2: `import contracts"):
        build_hooks.rewrite_python("x = 1\nimport contracts.loader\n", REPO_ROOT, "x.py")


def test_a_dockerfile_copies_and_runs_the_namespaced_packages() -> None:
    text = 'COPY contracts/ contracts/\nENTRYPOINT ["python", "-m", "containers.summarizer.app"]\n'
    rewritten = build_hooks.rewrite_text(Path("cpu.Dockerfile"), text, REPO_ROOT)
    assert rewritten == (
        "COPY agentplane/contracts/ agentplane/contracts/\n"
        'ENTRYPOINT ["python", "-m", "agentplane.containers.summarizer.app"]\n'
    )


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hooks.stage(REPO_ROOT, tmp_path_factory.mktemp("wheel"))


def test_the_staged_packages_import_only_the_namespace(staged: Path) -> None:
    top_level = re.compile(r"^\s*(from|import) (contracts|functions|infra|containers)\b", re.MULTILINE)
    for module in staged.rglob("*.py"):
        text = module.read_text(encoding="utf-8")
        ast.parse(text)
        assert not top_level.search(text), module
    # namespace packages, so a function's code and the runtime layer merge on Lambda
    assert not (staged / "__init__.py").exists()
    assert not (staged / "functions" / "__init__.py").exists()
    # what the app reads beside the packages in a checkout ships beside them
    assert (staged / "events" / "evals" / "scores.json").is_file()
    assert (staged / "package.json").is_file()


def test_every_staged_contract_handler_names_staged_code(staged: Path) -> None:
    handlers = []
    for contract in (staged / "contracts").rglob("*.yaml"):
        runtime = (yaml.safe_load(contract.read_text(encoding="utf-8")) or {}).get("runtime") or {}
        handlers += [runtime[key] for key in ("handler", "approximate_handler") if runtime.get(key)]
    assert handlers
    for handler in handlers:
        module = handler.rpartition(".")[0]
        assert module.startswith("agentplane.functions."), handler
        assert (staged.parent / f"{package_folder(module)}.py").is_file(), handler


# --- layout-agnostic names -----------------------------------------------------------------------------------------


def test_a_checkout_names_its_modules_as_they_are() -> None:
    assert not INSTALLED
    assert FUNCTIONS_PACKAGE == "functions"
    assert plane_handler("api") == "functions.api.handler.lambda_handler"
    assert package_folder("agentplane.functions") == "agentplane/functions"
    # the plane's own agents' handlers start at the import root (the checkout, or site-packages installed)
    assert core_project().source_root == REPO_ROOT


# --- the Lambda dependencies layer --------------------------------------------------------------------------------


def test_the_shipped_lambda_pins_are_the_lock_s() -> None:
    assert deps.REQUIREMENTS.read_text(encoding="utf-8") == deps.pins(deps.exported()), (
        "infra/lambda-requirements.txt is stale: run `python -m infra.lambda_deps` after `uv lock`"
    )


def test_the_pins_are_resolved_for_lambda_s_python() -> None:
    assert LAMBDA_RUNTIME.name == f"python{deps.LAMBDA_PYTHON}"
    assert f"LAMBDA_PYTHON := {deps.LAMBDA_PYTHON}\n" in (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    export = (
        "a==1\n    # via b\nnumpy==2.4.6 ; python_full_version < '3.12'\nnumpy==2.5.5 ; python_full_version >= '3.12'\n"
    )
    assert deps.pins(export) == "a==1\nnumpy==2.5.5\n"


def test_a_prebuilt_layer_is_named_by_context_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "python").mkdir()
    assert deps.layer_dir(str(tmp_path)) == tmp_path.resolve()
    monkeypatch.setenv(deps.ENV, str(tmp_path))
    assert deps.layer_dir() == tmp_path.resolve()
    with pytest.raises(deps.MissingLambdaDependencies, match="no python/ folder"):
        deps.layer_dir(str(tmp_path / "python"))


def test_without_uv_the_layer_is_built_with_pip_for_arm64(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(deps.shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.setattr(deps.importlib.util, "find_spec", lambda name: object())  # pip, as a plain venv has it
    command = deps.install_command(tmp_path)
    assert command[1:4] == ["-m", "pip", "install"]
    expected = {"--platform=manylinux2014_aarch64", "--python-version=3.14", "--only-binary=:all:", "--no-deps"}
    assert expected | {"--ignore-requires-python", "--no-compile"} <= set(command)
    monkeypatch.setattr(deps.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(deps.MissingLambdaDependencies, match=f"needs uv or pip; or name a prebuilt .*{deps.ENV}=DIR"):
        deps.install_command(tmp_path)


# --- the CLI without an extra ------------------------------------------------------------------------------------


def test_a_command_that_needs_a_missing_extra_says_which(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def serve(args: object) -> int:
        raise ModuleNotFoundError("No module named 'moto'", name="moto")

    monkeypatch.setattr(local_commands, "cmd_serve", serve)
    assert cli.main(["local", "serve"]) == 1
    assert (
        capsys.readouterr().err == "agentplane local serve: needs agentplane[local]: pip install 'agentplane[local]'\n"
    )


def test_a_missing_module_no_extra_provides_is_a_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    def serve(args: object) -> int:
        raise ModuleNotFoundError("No module named 'orders'", name="orders")

    monkeypatch.setattr(local_commands, "cmd_serve", serve)
    with pytest.raises(ModuleNotFoundError):
        cli.main(["local", "serve"])
