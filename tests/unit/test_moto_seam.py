"""The moto seam: every patched internal still exists with the parameters its replacement was written for,
the installed moto is the one the list was checked against, and nothing in infra/ patches moto around the seam."""

from __future__ import annotations

import ast
import inspect
from importlib.metadata import version
from types import ModuleType

import pytest

from infra.local import moto_seam
from infra.local.moto_seam import CHECKED_AGAINST, PATCHES, Patch
from infra.paths import REPO_ROOT
from infra.preflight import parse_source

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("package", sorted(CHECKED_AGAINST))
def test_the_installed_version_is_the_one_the_patches_were_checked_against(package: str) -> None:
    assert version(package) == CHECKED_AGAINST[package], (
        f"{package} is now {version(package)}: re-check every entry of infra/local/moto_seam.py PATCHES against it "
        "(target, parameters, why), then record the version in CHECKED_AGAINST"
    )


@pytest.mark.parametrize("name", sorted(PATCHES))
def test_each_patched_target_is_where_the_seam_says_with_its_parameters(name: str) -> None:
    patch = PATCHES[name]
    owner = patch.owner()
    found = getattr(owner, patch.name, None)
    if patch.kind == "add":
        assert found is None, f"{patch.target} exists in this moto: use it and retire the patch {name!r}"
        return
    assert found is not None, f"{patch.target} is gone: patch {name!r} ({patch.why}) needs a new target"
    if patch.kind in ("prepend", "append"):
        assert isinstance(found, list), f"{patch.target} is no longer a list"
    elif patch.parameters is None:
        assert isinstance(found, ModuleType), f"{patch.target} is no longer a module"
    else:
        parameters = tuple(inspect.signature(found).parameters)
        assert parameters == patch.parameters, f"{patch.target} now takes {parameters}: re-check patch {name!r}"


def test_each_patch_says_why() -> None:
    assert all(len(patch.why) > 20 for patch in PATCHES.values())


def test_apply_and_restore_leave_moto_as_it_was() -> None:
    before = moto_seam.original("sqs.add_message")

    def replacement(*_: object) -> None:
        return None

    applied = moto_seam.apply("sqs.add_message", replacement)
    assert moto_seam.original("sqs.add_message") is replacement
    assert "sqs.add_message" in moto_seam.active()
    applied.restore()
    applied.restore()  # once only
    assert moto_seam.original("sqs.add_message") is before
    assert "sqs.add_message" not in moto_seam.active()


def test_a_list_patch_adds_its_item_and_takes_it_out_again() -> None:
    patch = PATCHES["stepfunctions.sync_url_base"]
    items = getattr(patch.owner(), patch.name)
    applied = moto_seam.apply("stepfunctions.sync_url_base", "https?://example\\.invalid")
    assert items[-1] == "https?://example\\.invalid"
    applied.restore()
    assert "https?://example\\.invalid" not in items


def test_an_added_attribute_is_removed_again() -> None:
    patch = PATCHES["stepfunctions.start_sync_execution"]
    applied = moto_seam.apply("stepfunctions.start_sync_execution", object())
    assert hasattr(patch.owner(), patch.name)
    applied.restore()
    assert not hasattr(patch.owner(), patch.name)


def _patched_elsewhere(tree: ast.Module) -> list[str]:
    """Assignments to an attribute of a name imported from moto or botocore: a patch around the seam."""
    imported = {
        alias.asname or alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom | ast.Import)
        for alias in node.names
        if (node.module if isinstance(node, ast.ImportFrom) else alias.name or "").split(".")[0] in ("moto", "botocore")
    }
    for node in ast.walk(tree):  # X = importlib.import_module("moto....")
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if (
            isinstance(value, ast.Call)
            and ast.unparse(value.func).endswith("import_module")
            and value.args
            and isinstance(value.args[0], ast.Constant)
            and str(value.args[0].value).split(".")[0] in ("moto", "botocore")
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            imported |= {target.id for target in targets if isinstance(target, ast.Name)}
    found = []
    for node in ast.walk(tree):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign | ast.AugAssign)
            else []
        )
        for target in targets:
            base = target
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(target, ast.Attribute) and isinstance(base, ast.Name) and base.id in imported:
                found.append(f"line {node.lineno}: {ast.unparse(target)}")
    return found


def test_nothing_in_infra_patches_moto_but_through_the_seam() -> None:
    seam = REPO_ROOT / "infra" / "local" / "moto_seam.py"
    offenders = {
        str(path.relative_to(REPO_ROOT)): hits
        for path in sorted((REPO_ROOT / "infra").rglob("*.py"))
        if path != seam and (hits := _patched_elsewhere(parse_source(path.read_text(), str(path))))
    }
    assert offenders == {}, "patch moto through infra/local/moto_seam.py (add an entry to PATCHES)"


def test_the_patch_finder_sees_a_patch() -> None:
    tree = parse_source("from moto.sqs.models import Queue\nQueue.add_message = lambda *a: None\n")
    assert _patched_elsewhere(tree) == ["line 2: Queue.add_message"]
    tree = parse_source("import importlib\nretrier = importlib.import_module('moto.x.retrier')\nretrier.time = None\n")
    assert _patched_elsewhere(tree) == ["line 3: retrier.time"]
    assert _patched_elsewhere(parse_source("from pathlib import Path\nPath.home = None\n")) == []


def test_patch_names_its_target() -> None:
    assert Patch("moto.sqs.models", "Queue.add_message", "why").target == "moto.sqs.models:Queue.add_message"
