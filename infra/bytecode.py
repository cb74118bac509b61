"""Bytecode for Lambda's Python, compiled at build time so a cold start does not compile every module it imports.

``.pyc`` files are specific to one Python version, so only an interpreter of Lambda's version (``LAMBDA_PYTHON``)
can write them: ``$AGENTPLANE_LAMBDA_PYTHON``, else ``python3.14`` on the PATH, else one uv knows (``uv python
find``; it never downloads). Without one the layer and the function assets ship sources only, and the build says
so once (``agentplane preflight`` too): each cold start then compiles what it imports. The bytecode is
``unchecked-hash``: Lambda's code is read-only and never changes under a version, so nothing is re-validated.

``python -m infra.bytecode DIR`` compiles one folder (the Makefile's layer build uses it).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

from infra.paths import REPO_ROOT

LAMBDA_PYTHON = "3.14"  # infra.components.agent_pool.LAMBDA_RUNTIME's (a unit test holds them together)
ENV = "AGENTPLANE_LAMBDA_PYTHON"
TAG = f"cpython-{LAMBDA_PYTHON.replace('.', '')}"  # the part of a .pyc's name that says its Python


def _version_of(python: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603 (an interpreter the operator named or installed)
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _candidates() -> list[str]:
    found = [shutil.which(f"python{LAMBDA_PYTHON}")]
    checkout_uv = REPO_ROOT / ".cache" / "uv" / "bin" / "uv"  # the one `make setup` installs
    uv = shutil.which("uv") or (str(checkout_uv) if checkout_uv.is_file() else None)
    if uv:
        try:
            done = subprocess.run(  # noqa: S603 (uv finds; it does not download with --no-python-downloads)
                [uv, "python", "find", "--no-python-downloads", LAMBDA_PYTHON],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            found.append(done.stdout.strip() if done.returncode == 0 else None)
        except OSError:
            pass
    return [python for python in found if python]


@functools.cache
def lambda_python() -> str | None:
    """An interpreter of Lambda's Python version, or None. ``$AGENTPLANE_LAMBDA_PYTHON`` must be one if set."""
    named = os.environ.get(ENV)
    if named:
        if _version_of(named) != LAMBDA_PYTHON:
            raise RuntimeError(f"{ENV}={named} is not a Python {LAMBDA_PYTHON} interpreter (Lambda's)")
        return named
    return next((python for python in _candidates() if _version_of(python) == LAMBDA_PYTHON), None)


def compile_tree(folder: Path, python: str) -> None:
    """Write the bytecode of every module under ``folder`` beside it (``__pycache__``), for ``python``'s version."""
    done = subprocess.run(  # noqa: S603
        [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stdout.strip().splitlines() or done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"cannot compile {folder} for Python {LAMBDA_PYTHON}: {last}")


def has_bytecode(folder: Path) -> bool:
    """Whether ``folder`` holds bytecode for Lambda's Python."""
    return any(folder.rglob(f"*.{TAG}.pyc"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_dir():
        sys.stderr.write("usage: python -m infra.bytecode DIR\n")
        return 2
    python = lambda_python()
    if python is None:
        sys.stderr.write(
            f"agentplane: no Python {LAMBDA_PYTHON} here ({ENV}, python{LAMBDA_PYTHON}, uv python find): "
            f"{args[0]} ships without bytecode, and cold starts compile what they import\n"
        )
        return 0
    compile_tree(Path(args[0]), python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
