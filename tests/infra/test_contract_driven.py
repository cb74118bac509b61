"""Infra follows the contracts: adding an agent is one contract file, and a contract infra cannot honour stops synth."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.loader import CONTRACTS_DIR
from infra.app import build_app
from infra.components.agent_pool import ContractInfraError
from tests.infra.assembly import PINNED_LOGICAL_IDS, synthesize

pytestmark = pytest.mark.infra


def granted_actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def copy_contracts(target: Path) -> Path:
    target.mkdir()
    for path in CONTRACTS_DIR.glob("*.yaml"):
        shutil.copy(path, target / path.name)
    return target


def test_unknown_permission_verb_is_refused_with_contract_and_verb(tmp_path: Path) -> None:
    # GIVEN the repository's contracts, one of which asks for a permission no verb grants
    contracts = copy_contracts(tmp_path / "contracts")
    path = contracts / "risk-scorer.yaml"
    document = yaml.safe_load(path.read_text())
    document["permissions"] = [*document["permissions"], "read:unknown-thing"]
    path.write_text(yaml.safe_dump(document))

    # WHEN the app is built THEN it refuses, naming the contract and the verb, before anything is synthesized
    with pytest.raises(
        ContractInfraError, match=r"contract risk-scorer: permissions: unknown verb 'read:unknown-thing'"
    ):
        build_app(tmp_path / "cdk", contracts_dir=contracts)
    assert not (tmp_path / "cdk" / "manifest.json").exists()


def test_a_new_contract_file_adds_an_agent(tmp_path: Path) -> None:
    # GIVEN the repository's contracts plus one new file: a second risk scorer on the same handler
    contracts = copy_contracts(tmp_path / "contracts")
    document = yaml.safe_load((CONTRACTS_DIR / "risk-scorer.yaml").read_text())
    document.update(name="risk-scorer-v2", version="2.0.0", permissions=["publish:events"])
    document["runtime"]["memory_mb"] = 1024
    (contracts / "risk-scorer-v2.yaml").write_text(yaml.safe_dump(document))
    (cdk_out := tmp_path / "cdk").mkdir()

    # WHEN the plane is synthesized from that directory
    synthesized = synthesize(cdk_out, contracts_dir=contracts)

    # THEN there is a function that runs as the new agent, built from its contract, beside the original
    functions = synthesized.agent_functions()
    assert {"risk-scorer", "risk-scorer-v2"} <= set(functions)
    props = synthesized.resources[functions["risk-scorer-v2"]]["Properties"]
    assert props["Environment"]["Variables"]["AGENT_NAME"] == "risk-scorer-v2"
    assert props["Environment"]["Variables"]["AGENT_VERSION"] == "2.0.0"
    assert props["Handler"] == document["runtime"]["handler"]
    assert props["MemorySize"] == 1024
    # AND it has a role of its own, granted what its contract asks for and not lent to the original
    new_role, original_role = (synthesized.role_of(functions[name]) for name in ("risk-scorer-v2", "risk-scorer"))
    assert new_role != original_role
    assert "events:PutEvents" in granted_actions(synthesized.role_statements(new_role))
    assert "events:PutEvents" not in granted_actions(synthesized.role_statements(original_role))
    # AND no stateful resource moved to make room for it
    assert {lid: synthesized.resources[lid]["Type"] for lid in PINNED_LOGICAL_IDS} == PINNED_LOGICAL_IDS
