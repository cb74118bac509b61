"""Lays our packages out the way Lambda imports them, without Docker.

A function's asset holds ``functions/<folder>/`` so its handler is ``functions.<folder>.handler.lambda_handler``
both on Lambda and in the local plane; the runtime layer holds ``python/functions/runtime`` and
``python/contracts``. ``functions`` is a namespace package, so the two halves merge on import.
Staging is content-addressed: concurrent synths share a directory and never see a half-written one. With a Python of
Lambda's version at hand the staged code carries its bytecode (infra.bytecode).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from infra.bytecode import TAG, compile_tree, lambda_python
from infra.paths import STAGING_DIR

_IGNORED = {"__pycache__", ".mypy_cache", ".pytest_cache"}
# .onnx: models that ship with their code; .md: llm agents' prompts (contracts/prompts/); .Dockerfile: container
# build files (cpu.Dockerfile, ...).
_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".jsonl", ".txt", ".md", ".onnx", ".Dockerfile"}


def _files(source: Path) -> list[Path]:
    return sorted(
        p
        for p in source.rglob("*")
        if p.is_file() and p.suffix in _SUFFIXES and not _IGNORED.intersection(p.relative_to(source).parts)
    )


def stage(name: str, layout: Iterable[tuple[Path, str]], *, root: Path = STAGING_DIR) -> Path:
    """Copy each (source dir, destination prefix) pair into one staged directory; return its path."""
    pairs = [(src, dest) for src, dest in layout]
    python = lambda_python()
    digest = hashlib.sha256(f"bytecode:{TAG if python else 'none'}\0".encode())
    for src, dest in pairs:
        for file in _files(src):
            digest.update(f"{dest}/{file.relative_to(src).as_posix()}\0".encode())
            digest.update(file.read_bytes())
    target = root / f"{name}-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    for src, dest in pairs:
        for file in _files(src):
            out = scratch / dest / file.relative_to(src)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, out)
    if python is not None:
        compile_tree(scratch, python)
    try:
        os.rename(scratch, target)
    except OSError:  # another synth staged the same content first
        shutil.rmtree(scratch, ignore_errors=True)
    return target
