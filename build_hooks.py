"""The wheel's build hook: the plane's packages under one ``agentplane`` namespace.

A checkout imports ``infra``, ``functions``, ``contracts`` and ``containers`` as top-level packages; installed under
those names they would collide in anyone's site-packages. The wheel stages them as ``agentplane/infra``... and
rewrites what names them by import path:

- ``from infra.x import y`` lines, in code and in the code templates ``agentplane new`` writes;
- dotted module names in string literals (``"functions.api.handler.lambda_handler"``, ``-m infra.app``, lazy
  imports), in contract YAML (handler strings) and JSON (the release lock), and in Dockerfiles, whose ``COPY``
  paths move too. A dotted name is rewritten only where it names a real module or package of the four, so a
  variable called ``contracts`` keeps its ``contracts.items()``.

``agentplane`` and ``agentplane/functions`` stay namespace packages (no ``__init__.py``): on Lambda a function's code
(``agentplane/functions/<folder>``) and the runtime layer (``agentplane/functions/runtime``, ``agentplane/contracts``)
merge on import, as ``functions/`` does from a checkout. Editable installs (``uv sync``) are left alone: they import
the checkout. The data files the app reads from a checkout's root (eval scores, sample events, the CDK CLI pin in
``package.json``) ship at the same place relative to the packages.
"""

from __future__ import annotations

import ast
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # the unit tests import the rewriting without hatchling installed
    BuildHookInterface = object  # type: ignore[misc,assignment]

NAMESPACE = "agentplane"
PACKAGES = ("contracts", "functions", "infra", "containers")
DATA = ("events", "package.json")  # read from the checkout's root (infra.paths.REPO_ROOT)
_SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_SKIPPED_SUFFIXES = {".pyc", ".pyo"}
_REWRITTEN = {".py", ".yaml", ".yml", ".json", ".Dockerfile"}

_NAMES = "|".join(PACKAGES)
# A package name that starts a dotted name: not after a word, a dot (already qualified), a slash or a dash.
_DOTTED = re.compile(rf"(?<![\w./-])({_NAMES})\.([A-Za-z_]\w*)")
_FROM_IMPORT = re.compile(rf"^([ \t]*)from ({_NAMES})(?=[.\s])", re.MULTILINE)
_PLAIN_IMPORT = re.compile(rf"^[ \t]*import ({_NAMES})\b", re.MULTILINE)
_DOCKER_PATH = re.compile(rf"(?<=\s)({_NAMES})/")


class RewriteError(ValueError):
    """A file names the plane's packages in a way the rewrite cannot carry over."""


def _names_module(root: Path, package: str, child: str) -> bool:
    return (root / package / child).is_dir() or (root / package / f"{child}.py").is_file()


def rewrite_dotted(text: str, root: Path) -> str:
    """Qualify every dotted name in ``text`` that starts with a real module of the four packages under ``root``."""

    def qualify(match: re.Match[str]) -> str:
        if not _names_module(root, match[1], match[2]):
            return match[0]
        return f"{NAMESPACE}.{match[0]}"

    return _DOTTED.sub(qualify, text)


def _string_spans(source: str) -> list[tuple[int, int]]:
    """Character spans of the string literals (f-strings whole) of a module, outermost only, in order."""
    line_starts = [0]
    for line in source.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    lines = source.splitlines(keepends=True)

    def offset(lineno: int, col: int) -> int:  # ast columns count UTF-8 bytes
        return line_starts[lineno - 1] + len(lines[lineno - 1].encode()[:col].decode())

    spans = []
    for node in ast.walk(ast.parse(source)):
        is_string = isinstance(node, ast.Constant) and isinstance(node.value, str)
        if (is_string or isinstance(node, ast.JoinedStr)) and node.end_lineno is not None:
            assert node.end_col_offset is not None
            spans.append((offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset)))
    outermost: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if not outermost or start >= outermost[-1][1]:
            outermost.append((start, end))
    return outermost


def rewrite_python(source: str, root: Path, name: str = "<module>") -> str:
    """A module of the four packages, importing and naming them under the namespace."""
    plain = _PLAIN_IMPORT.search(source)
    if plain:
        line = source[: plain.start()].count("\n") + 1
        raise RewriteError(f"{name}:{line}: `import {plain[1]}...` binds a top-level name; use `from ... import`")
    pieces = []
    done = 0
    for start, end in _string_spans(source):
        pieces += [source[done:start], rewrite_dotted(source[start:end], root)]
        done = end
    pieces.append(source[done:])
    return _FROM_IMPORT.sub(rf"\1from {NAMESPACE}.\2", "".join(pieces))


def rewrite_text(path: Path, text: str, root: Path) -> str:
    """A data file of the packages (contract YAML, JSON, a Dockerfile) with its module names qualified."""
    text = rewrite_dotted(text, root)
    if path.suffix == ".Dockerfile":
        text = _DOCKER_PATH.sub(rf"{NAMESPACE}/\1/", text)
    return text


def _files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix not in _SKIPPED_SUFFIXES
        and not _SKIPPED_DIRS.intersection(p.relative_to(folder).parts)
    )


def stage(root: Path, out: Path) -> Path:
    """Copy the four packages (rewritten) and the data files under ``out/agentplane``; return that folder."""
    target = out / NAMESPACE
    shutil.rmtree(target, ignore_errors=True)
    for package in PACKAGES:
        for file in _files(root / package):
            dest = target / file.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if file.suffix == ".py":
                dest.write_text(rewrite_python(file.read_text(encoding="utf-8"), root, str(file)), encoding="utf-8")
            elif file.suffix in _REWRITTEN:
                dest.write_text(rewrite_text(file, file.read_text(encoding="utf-8"), root), encoding="utf-8")
            else:
                shutil.copy2(file, dest)
    for data in DATA:
        source = root / data
        for file in [source] if source.is_file() else _files(source):
            dest = target / file.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, dest)
    return target


class NamespaceHook(BuildHookInterface):  # type: ignore[misc]
    """Stages the namespaced packages for a standard wheel (``[tool.hatch.build.targets.wheel.hooks.custom]``)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        root = Path(self.root)
        (root / "build").mkdir(exist_ok=True)
        self._scratch = Path(tempfile.mkdtemp(prefix="wheel-", dir=root / "build"))  # concurrent builds each own one
        build_data["force_include"][str(stage(root, self._scratch))] = NAMESPACE
        # The console script names the namespaced module; the checkout's editable install keeps `infra.cli:main`.
        scripts = self.metadata.core.scripts
        for name, target in scripts.items():
            scripts[name] = rewrite_dotted(target, root)

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        scratch = getattr(self, "_scratch", None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
