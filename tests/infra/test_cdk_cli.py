"""The pinned CDK CLI reads this aws-cdk-lib's cloud assembly, offline (CLI 3.x cannot)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from infra.app import DEFAULT_STACK_NAME

pytestmark = pytest.mark.infra

REPO = Path(__file__).resolve().parents[2]


def test_cli_synth_writes_the_template(tmp_path: Path) -> None:
    # GIVEN the CLI pinned in package.json, with its notices, telemetry and version check off
    assert (REPO / "node_modules" / "aws-cdk").is_dir(), "the pinned CDK CLI is not installed: run `make setup`"
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "CDK_DISABLE_VERSION_CHECK": "1"}

    # WHEN it synthesizes the app the way `make synth` does, into a scratch directory
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "-q", "--no-notices", "-o", str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    # THEN it succeeds and writes the plane's template, which the CLI could read back from the assembly
    assert result.returncode == 0, result.stderr[-4000:]
    assert "schema version mismatch" not in result.stderr.lower()
    template = json.loads((tmp_path / f"{DEFAULT_STACK_NAME}.template.json").read_text())
    assert template["Resources"]["DataDataKeyCDD1A924"]["Type"] == "AWS::KMS::Key"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["artifacts"][DEFAULT_STACK_NAME]["type"] == "aws:cloudformation:stack"
