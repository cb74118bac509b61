"""The Lambda dependencies layer (arm64 wheels of the ``lambda`` group): where synth finds it.

A checkout builds it with ``make lambda-deps`` from ``uv.lock`` into ``build/lambda-deps``. An installed package has
no lockfile: it ships the same pins resolved for Lambda's runtime (``lambda-requirements.txt``, which a unit test
keeps equal to the lock) and builds the layer into its cache on first synth, with uv when it is on PATH, else pip.
Context ``agentplane:lambda-deps`` (or ``AGENTPLANE_LAMBDA_DEPS``) names a prebuilt layer folder instead, one that
holds ``python/``: the way to synthesize where nothing can be downloaded.

``python -m infra.lambda_deps`` rewrites the pins from the lock (after ``uv lock``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.bytecode import LAMBDA_PYTHON, compile_tree, lambda_python
from infra.paths import INSTALLED, LAMBDA_DEPS_DIR, REPO_ROOT

REQUIREMENTS = Path(__file__).with_name("lambda-requirements.txt")
CONTEXT = "agentplane:lambda-deps"
ENV = "AGENTPLANE_LAMBDA_DEPS"
# Lambda's arm64 Python runtime, as environment markers see it: what the pins are resolved for.
LAMBDA_MARKERS = {
    "implementation_name": "cpython",
    "implementation_version": f"{LAMBDA_PYTHON}.0",
    "os_name": "posix",
    "platform_machine": "aarch64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": f"{LAMBDA_PYTHON}.0",
    "python_version": LAMBDA_PYTHON,
    "sys_platform": "linux",
}
_HINT = f"name a prebuilt layer folder (holding python/) with -c {CONTEXT}=DIR or {ENV}=DIR"


class MissingLambdaDependencies(RuntimeError):
    """The dependencies layer is neither built nor buildable; the message is one line."""


def pins(export: str) -> str:
    """``uv export`` output resolved for Lambda's runtime: ``name==version`` lines, markers evaluated, sorted."""
    from packaging.markers import Marker

    kept = []
    for line in export.splitlines():
        requirement = line.split("#", 1)[0].strip()
        if not requirement or requirement.startswith("-"):
            continue
        spec, _, marker = requirement.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate(LAMBDA_MARKERS):
            continue
        kept.append(spec.strip())
    return "".join(f"{spec}\n" for spec in sorted(kept, key=str.lower))


def layer_dir(prebuilt: str | None = None) -> Path:
    """The layer folder to package: ``prebuilt`` (context), else ``$AGENTPLANE_LAMBDA_DEPS``, else the checkout's
    ``build/lambda-deps``, else (installed) the cache's, built now when missing."""
    named = prebuilt or os.environ.get(ENV)
    if named:
        folder = Path(named).expanduser().resolve()
        if not (folder / "python").is_dir():
            raise MissingLambdaDependencies(f"{folder}: not a Lambda dependencies layer (no python/ folder in it)")
        return folder
    if not INSTALLED:
        if not (LAMBDA_DEPS_DIR / "python").is_dir():
            raise MissingLambdaDependencies(
                f"{LAMBDA_DEPS_DIR / 'python'} is missing: run `make lambda-deps` "
                "(it builds the arm64 layer from uv.lock)"
            )
        return LAMBDA_DEPS_DIR
    text = REQUIREMENTS.read_text(encoding="utf-8")
    target = LAMBDA_DEPS_DIR.with_name(f"lambda-deps-{hashlib.sha256(text.encode()).hexdigest()[:16]}")
    if not (target / ".installed").is_file():
        build_layer(target)
    return target


def install_command(target: Path) -> list[str]:
    """How to install the pins as arm64 wheels for Lambda's Python into ``target``: uv when found, else pip."""
    uv = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    # The pins are the whole closure: --no-deps installs exactly them, resolving nothing.
    if uv:
        return [
            uv, "pip", "install", "--quiet", "--no-deps", "--python", sys.executable, "--target", str(target),
            "--python-platform", "aarch64-manylinux_2_28", "--python-version", LAMBDA_PYTHON,
            "--only-binary", ":all:", "-r", str(REQUIREMENTS),
        ]  # fmt: skip
    if importlib.util.find_spec("pip") is None:
        raise MissingLambdaDependencies(f"building the Lambda dependencies layer needs uv or pip; or {_HINT}")
    platforms = [f"--platform={tag}" for tag in ("manylinux_2_28_aarch64", "manylinux2014_aarch64")]
    # The wheels' cp314 tags already hold them to Lambda's Python; an older pip (23.2) checks Requires-Python against
    # this interpreter instead of --python-version, and would refuse numpy for a 3.11 host. No bytecode: it would be
    # this interpreter's, not Lambda's.
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
        "--target", str(target), *platforms, f"--python-version={LAMBDA_PYTHON}", "--implementation=cp",
        "--only-binary=:all:", "--ignore-requires-python", "--no-compile", "-r", str(REQUIREMENTS),
    ]  # fmt: skip


def build_layer(target: Path) -> None:
    """Install the pins into ``target/python`` (atomically: a concurrent synth never sees half a layer)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        command = install_command(scratch / "python")
        sys.stderr.write(f"agentplane: building the Lambda dependencies layer (arm64) into {target} (once)\n")
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own pins)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MissingLambdaDependencies(f"cannot build the Lambda dependencies layer ({last}); {_HINT}")
        if (python := lambda_python()) is not None:
            compile_tree(scratch / "python", python)
        (scratch / ".installed").touch()
        with contextlib.suppress(OSError):  # another synth built it first
            os.rename(scratch, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def exported() -> str:
    """The lock's ``lambda`` group, as ``make lambda-deps`` exports it."""
    uv = REPO_ROOT / ".cache" / "uv" / "bin" / "uv"
    command = [str(uv) if uv.is_file() else "uv", "export", "--frozen", "--only-group", "lambda", "--no-hashes"]
    result = subprocess.run(  # noqa: S603 (the checkout's own uv)
        [*command, "--no-emit-project", "--quiet"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout


if __name__ == "__main__":
    REQUIREMENTS.write_text(pins(exported()), encoding="utf-8")
    sys.stderr.write(f"wrote {REQUIREMENTS.relative_to(REPO_ROOT)}\n")
