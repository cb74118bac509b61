"""The registry item's shape lives in contracts: deploy writes it without the Lambda runtime; the plane reads it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from contracts.arns import split_alias
from contracts.registry import KEY, Circuit, Health, Implementation, from_item, static_item

pytestmark = pytest.mark.unit


def test_what_deploy_writes_reads_back_as_the_same_implementation() -> None:
    # GIVEN an implementation as deploy registers it
    written = Implementation(
        name="verifier~approximate",
        agent="verifier",
        variant="approximate",
        capabilities=["fact-check"],
        contract_version="1.2.0",
        runtime="lambda",
        target="arn:aws:lambda:eu-west-1:123456789012:function:verifier:live",
        fallback=["human", {"capability": "fact-check", "max_version": "1.x"}],
    )

    # WHEN its static attributes are stored and read back, before any health or circuit is kept
    item = {KEY: written.name, **static_item(written)}
    read = from_item(item)

    # THEN it is the same entry, with a fresh health and a closed circuit
    assert read == written
    assert (read.health, read.circuit) == (Health(), Circuit())


def test_the_registry_construct_imports_nothing_of_the_lambda_runtime() -> None:
    # WHEN the CDK construct that writes registry items is imported on its own
    probe = (
        "import sys, infra.components.registry\n"
        "print(sorted(m for m in sys.modules if m.startswith(('functions', 'boto3'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)

    # THEN no Lambda module (nor boto3) came with it
    assert loaded.stdout.strip() == "[]"


def test_split_alias_reads_a_qualified_arn_and_refuses_a_version() -> None:
    alias = "arn:aws:states:eu-west-1:123456789012:stateMachine:doc-review:live"
    assert split_alias(alias) == (alias.rsplit(":", 1)[0], "live")
    assert split_alias(alias.replace(":live", ":3")) is None
    assert split_alias(alias.rsplit(":", 1)[0]) is None
