"""The summarizer's Dockerfiles (Docker cannot build here): the essentials SageMaker and reviewers rely on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.paths import REPO_ROOT

pytestmark = pytest.mark.container
CONTAINER = REPO_ROOT / "containers" / "summarizer"


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


@pytest.mark.parametrize("dockerfile", ["cpu.Dockerfile", "cuda.Dockerfile"])
def test_dockerfile_serves_sagemaker_as_non_root_with_a_health_check(dockerfile: str) -> None:
    steps = instructions(CONTAINER / dockerfile)
    kinds = [kind for kind, _ in steps]
    users = [arg for kind, arg in steps if kind == "USER"]
    assert users, "no USER"
    assert users[-1] not in ("root", "0"), "the last USER must not be root"
    assert kinds.index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN"), "no RUN after dropping root"
    assert ("EXPOSE", "8080") in steps
    healthcheck = next(arg for kind, arg in steps if kind == "HEALTHCHECK")
    assert "http://127.0.0.1:8080/ping" in healthcheck
    assert ("ENTRYPOINT", '["python", "-m", "containers.summarizer.app"]') in steps
    assert ("CMD", '["serve"]') in steps
    copied = {arg.split()[0] for kind, arg in steps if kind == "COPY"}
    assert {"contracts/", "containers/", "functions/summarizer/"} <= copied
    runtime = "onnxruntime-gpu==" if dockerfile.startswith("cuda") else "onnxruntime=="
    assert any(runtime in arg for kind, arg in steps if kind == "RUN")


def test_image_requirements_match_the_lockfile() -> None:
    lock = (REPO_ROOT / "uv.lock").read_text()
    for line in (CONTAINER / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            assert f'name = "{name}"\nversion = "{version}"' in lock, line
    assert 'name = "onnxruntime"\nversion = "1.31.1"' in lock
