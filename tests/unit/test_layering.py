"""The layers of the house, checked over imports read with ``ast`` (nothing is imported or run).

- ``contracts/`` imports nothing of the project but itself;
- ``functions/`` never imports ``infra/``;
- ``containers/`` import only ``contracts/``, themselves and the one shared core, ``functions/summarizer/core.py``;
- ``infra/local/`` (the emulator) never imports the CLI, the drills, the client, or the CDK app that makes the template;
- no cycle between the top-level packages, nor between the parts of ``infra/``.

Every import counts, lazy ones and ``TYPE_CHECKING`` ones too: a lazy import is still a dependency.
docs/architecture.md describes the same layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pytest

from infra.paths import REPO_ROOT
from infra.preflight import parse_source

pytestmark = pytest.mark.unit

PACKAGES = ("contracts", "functions", "containers", "infra")
SHARED_CORE = "functions.summarizer.core"  # what the SageMaker containers share with the CPU fallback Lambda
EMULATOR = "infra.local"
NOT_FOR_THE_EMULATOR = (
    "infra.cli",
    "infra.drills",
    "infra.client",
    "infra.app",
    "infra.plane",
    "infra.stack",
    "infra.synth",
)


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (relative imports resolved), wherever in the file they stand.

    ``from a import b`` imports ``a``, and ``a.b`` too when that is one of ``modules``.
    """
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(parse_source(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each project module under ``root`` -> the project modules it imports."""
    paths = [
        path for package in PACKAGES if (root / package).is_dir() for path in sorted((root / package).rglob("*.py"))
    ]
    modules = {module_name(root, path) for path in paths}
    return {module_name(root, path): imports_of(root, path, modules) for path in paths}


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import that breaks a layering rule, as ``importer -> imported: rule``."""
    found = []
    for importer, imported in sorted(graph.items()):
        for target in sorted(imported):
            if within(importer, "contracts") and not within(target, "contracts"):
                found.append(f"{importer} -> {target}: contracts import nothing of the project")
            elif within(importer, "functions") and within(target, "infra"):
                found.append(f"{importer} -> {target}: functions never import infra")
            elif (
                within(importer, "containers")
                and not any(within(target, allowed) for allowed in ("contracts", "containers"))
                and not within(target, SHARED_CORE)
                and target != SHARED_CORE.rpartition(".")[0]  # `from functions.summarizer import core`
            ):
                found.append(f"{importer} -> {target}: containers import only contracts and {SHARED_CORE}")
            elif within(importer, EMULATOR) and any(within(target, banned) for banned in NOT_FOR_THE_EMULATOR):
                found.append(f"{importer} -> {target}: the emulator ({EMULATOR}) never imports it")
    return found


def _unit(module: str, depth: int) -> str:
    return ".".join(module.split(".")[:depth])


def cycles(graph: dict[str, set[str]], *, inside: str | None = None) -> list[list[str]]:
    """Cycles between top-level packages (``inside=None``) or between the parts of one (``inside="infra"``)."""
    depth = 1 if inside is None else 2
    edges: dict[str, set[str]] = defaultdict(set)
    for importer, imported in graph.items():
        if inside is not None and not within(importer, inside):
            continue
        for target in imported:
            if inside is not None and not within(target, inside):
                continue
            a, b = _unit(importer, depth), _unit(target, depth)
            if a != b and (inside is None or (a != inside and b != inside)):
                edges[a].add(b)
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest member
                walk(nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, [start])
    return found


# --- the project -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(REPO_ROOT)


def test_the_project_keeps_its_layers(graph: dict[str, set[str]]) -> None:
    assert violations(graph) == []


def test_no_cycle_between_top_level_packages(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


def test_no_cycle_between_the_parts_of_infra(graph: dict[str, set[str]]) -> None:
    assert cycles(graph, inside="infra") == []


def test_the_shared_core_exists_and_the_containers_use_it(graph: dict[str, set[str]]) -> None:
    assert SHARED_CORE in graph
    assert any(
        within(target, SHARED_CORE) or target == SHARED_CORE.rpartition(".")[0]
        for importer, imported in graph.items()
        if within(importer, "containers")
        for target in imported
    )


# --- the checker itself, on a synthetic tree ---------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return root


CLEAN = {
    "contracts/__init__.py": "",
    "contracts/envelope.py": "from contracts import capability\n",
    "contracts/capability.py": "import json\n",
    "functions/summarizer/core.py": "from contracts.envelope import x\n",
    "functions/api/handler.py": "from . import service\nfrom contracts.envelope import x\n",
    "functions/api/service.py": "",
    "containers/summarizer/app.py": "from functions.summarizer.core import summarize\nfrom contracts import envelope\n",
    "infra/local/plane.py": "from infra.local import template\nfrom infra.paths import REPO_ROOT\n",
    "infra/local/template.py": "",
    "infra/cli/__init__.py": "from infra.local.plane import LocalPlane\nfrom infra import client\n",
    "infra/client.py": "from infra.local.auth import sign\n",
    "infra/app.py": "from infra import paths\n",
    "infra/paths.py": "",
}


def test_a_clean_tree_has_no_violations_nor_cycles(tmp_path: Path) -> None:
    graph = import_graph(_tree(tmp_path, CLEAN))

    assert graph["functions.api.handler"] == {"functions.api", "functions.api.service", "contracts.envelope"}
    assert violations(graph) == []
    assert cycles(graph) == []
    assert cycles(graph, inside="infra") == []


@pytest.mark.parametrize(
    ("path", "source", "rule"),
    [
        pytest.param("contracts/bad.py", "from functions.runtime import agent\n", "contracts import nothing", id="c"),
        pytest.param("functions/bad/handler.py", "def f():\n    import infra.app\n", "never import infra", id="f"),
        pytest.param("containers/bad/app.py", "from functions.runtime import agent\n", "containers import", id="k"),
        pytest.param("infra/local/bad.py", "from infra.cli import main\n", "the emulator", id="local-cli"),
        pytest.param("infra/local/bad2.py", "from infra.drills.chaos import run\n", "the emulator", id="drills"),
        pytest.param("infra/local/bad3.py", "from infra import app\n", "the emulator", id="app"),
        pytest.param(
            "infra/local/bad4.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from infra.cli.base import X\n",
            "the emulator",
            id="type-checking",
        ),
    ],
)
def test_each_rule_fails_on_its_violation(tmp_path: Path, path: str, source: str, rule: str) -> None:
    graph = import_graph(_tree(tmp_path, {**CLEAN, path: source}))

    found = violations(graph)

    assert len(found) == 1
    assert rule in found[0]


def test_a_cycle_between_packages_is_found(tmp_path: Path) -> None:
    graph = import_graph(
        _tree(tmp_path, {**CLEAN, "functions/api/service.py": "from containers.summarizer import x\n"})
    )

    assert cycles(graph) == [["containers", "functions", "containers"]]


def test_a_cycle_inside_infra_is_found(tmp_path: Path) -> None:
    cyclic = {
        **CLEAN,
        "infra/cost/measure.py": "from infra.cli import call\n",
        "infra/cli/cost.py": "import infra.cost\n",
    }

    assert cycles(import_graph(_tree(tmp_path, cyclic)), inside="infra") == [["infra.cli", "infra.cost", "infra.cli"]]


def _sources(files: Iterable[Path]) -> int:
    return sum(1 for _ in files)


def test_the_project_graph_reads_every_package(graph: dict[str, set[str]]) -> None:
    for package in PACKAGES:
        assert _sources((REPO_ROOT / package).rglob("*.py")) == sum(within(m, package) for m in graph)
