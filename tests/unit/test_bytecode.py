"""Bytecode for Lambda's Python: compiled into the staged code when an interpreter of that version is here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from infra import bytecode
from infra.components import staging

pytestmark = pytest.mark.unit

HOST_TAG = sys.implementation.cache_tag  # e.g. cpython-311


def package(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "__init__.py").write_text("")
    (source / "pkg" / "handler.py").write_text("def lambda_handler(event, context):\n    return event\n")
    return source


def test_staged_code_carries_unchecked_bytecode_when_the_interpreter_is_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an interpreter of "Lambda's version" (this one stands in for it)
    monkeypatch.setattr(staging, "lambda_python", lambda: sys.executable)
    monkeypatch.setattr(staging, "TAG", HOST_TAG)

    # WHEN code is staged
    staged = staging.stage("fn", [(package(tmp_path), "functions")], root=tmp_path / "staging")

    # THEN each module has its bytecode beside it, marked unchecked: Lambda's code never changes under a version
    [pyc] = (staged / "functions" / "pkg" / "__pycache__").glob(f"handler.{HOST_TAG}.pyc")
    flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, not checked against the source
    assert importlib.util.source_hash((staged / "functions/pkg/handler.py").read_bytes()) == pyc.read_bytes()[8:16]


def test_without_the_interpreter_code_is_staged_apart_and_without_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = package(tmp_path)
    monkeypatch.setattr(staging, "lambda_python", lambda: None)
    plain = staging.stage("fn", [(source, "functions")], root=tmp_path / "staging")
    monkeypatch.setattr(staging, "lambda_python", lambda: sys.executable)
    monkeypatch.setattr(staging, "TAG", HOST_TAG)
    compiled = staging.stage("fn", [(source, "functions")], root=tmp_path / "staging")

    # the same sources staged with and without bytecode are two assets, never one reused for the other
    assert plain != compiled
    assert not list(plain.rglob("*.pyc"))
    assert list(compiled.rglob("*.pyc"))


def test_a_named_interpreter_of_another_version_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    bytecode.lambda_python.cache_clear()
    monkeypatch.setenv(bytecode.ENV, sys.executable)
    try:
        with pytest.raises(RuntimeError, match=rf"^{bytecode.ENV}=.* is not a Python 3\.14 interpreter"):
            bytecode.lambda_python()
    finally:
        bytecode.lambda_python.cache_clear()


def test_the_command_says_in_one_line_when_no_interpreter_is_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bytecode, "lambda_python", lambda: None)

    assert bytecode.main([str(tmp_path)]) == 0
    assert capsys.readouterr().err.count("\n") == 1
    assert bytecode.main([str(tmp_path / "absent")]) == 2
