"""The kind: llm contract runtime: validation, the prompt and its digest, and what the compatibility gate says."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.capability import CapabilityContract, LlmRuntime
from contracts.compat import Bump, diff, snapshot
from contracts.loader import CONTRACTS_DIR, ContractError, load_contract

pytestmark = pytest.mark.unit

MINOR = Bump.MINOR

SHIPPED = CONTRACTS_DIR / "fact-checker-llm.yaml"


def document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SHIPPED.read_text())
    return loaded


def written(tmp_path: Path, doc: dict[str, Any], prompt: str | None = "Check the claim.\n") -> Path:
    (tmp_path / "agents").mkdir(exist_ok=True)
    if prompt is not None:
        (tmp_path / "prompts").mkdir(exist_ok=True)
        (tmp_path / "prompts" / "fact-checker.md").write_text(prompt)
    path = tmp_path / "agents" / "fact-checker-llm.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_shipped_llm_contract_loads_with_its_prompt_digest() -> None:
    contract = load_contract(SHIPPED)
    runtime = contract.runtime
    assert isinstance(runtime, LlmRuntime)
    prompt = (CONTRACTS_DIR.parent / "prompts" / "fact-checker.md").read_bytes()
    assert runtime.prompt_sha256 == hashlib.sha256(prompt).hexdigest()
    assert runtime.prompt_text == prompt.decode()
    assert runtime.model.invoked_id == "us.anthropic.claude-haiku-4-5-20251001-v1:0"


def test_the_prompt_is_read_beside_the_contracts_folder(tmp_path: Path) -> None:
    contract = load_contract(written(tmp_path, document(), prompt="Another prompt.\n"))
    assert isinstance(contract.runtime, LlmRuntime)
    assert contract.runtime.prompt_text == "Another prompt.\n"


def test_a_pinned_digest_that_does_not_match_the_prompt_is_refused(tmp_path: Path) -> None:
    doc = document()
    doc["runtime"]["prompt_sha256"] = "0" * 64
    with pytest.raises(ContractError, match=r"runtime\.prompt_sha256: 0{64} pins the prompt"):
        load_contract(written(tmp_path, doc))


def test_a_missing_prompt_names_the_field(tmp_path: Path) -> None:
    doc = document()
    doc["runtime"]["prompt"] = "prompts/nowhere.md"
    with pytest.raises(ContractError, match=r"runtime\.prompt: cannot read the prompt"):
        load_contract(written(tmp_path, doc, prompt=None))


def test_the_old_bedrock_kind_says_what_replaced_it(tmp_path: Path) -> None:
    doc = document()
    doc["runtime"] = {"kind": "bedrock", "model_id": "anthropic.claude"}
    with pytest.raises(ContractError, match=r"runtime\.kind 'bedrock' was replaced by 'llm'"):
        load_contract(written(tmp_path, doc))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tools": ["fact-check"]}, "is this agent's own capability"),
        ({"model": {"provider": "bedrock"}}, "provider bedrock needs id"),
        ({"model": {"provider": "sagemaker", "id": "x.y"}}, "provider sagemaker needs endpoint"),
        ({"limits": {"max_turns": 0, "max_input_tokens": 1, "max_output_tokens": 1, "max_cost_usd": 1}}, "max_turns"),
        ({"prompt": "../secrets.txt"}, "prompt"),
    ],
)
def test_bad_llm_runtimes_are_refused(change: dict[str, Any], message: str) -> None:
    doc = document()
    doc["runtime"].update(change)
    with pytest.raises(ValueError, match=message):
        CapabilityContract.model_validate(doc)


def _changed(**runtime: Any) -> tuple[Any, ...]:
    old = load_contract(SHIPPED)
    doc = old.model_dump(mode="json")
    for key, value in runtime.items():
        if isinstance(value, dict) and isinstance(doc["runtime"].get(key), dict):
            doc["runtime"][key] = {**doc["runtime"][key], **value}
        else:
            doc["runtime"][key] = value
    new = CapabilityContract.model_validate(doc)
    changes = diff(snapshot(old), snapshot(new)).changes
    return tuple((c.path, c.kind, c.bump) for c in changes)


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [
        ({"prompt_sha256": "1" * 64}, ("runtime.prompt_sha256", "prompt-changed", Bump.MINOR)),
        (
            {"model": {"id": "anthropic.claude-sonnet-4-5-20250929-v1:0"}},
            ("runtime.model.id", "model-changed", Bump.MINOR),
        ),
        ({"model": {"inference_profile": "eu"}}, ("runtime.model.inference_profile", "internal", Bump.PATCH)),
        ({"tools": ["confidence-scoring", "retrieval"]}, ("runtime.tools", "tool-added", Bump.MAJOR)),
        ({"tools": []}, ("runtime.tools", "tool-removed", Bump.MINOR)),
        ({"limits": {"max_turns": 2}}, ("runtime.limits.max_turns", "budget-tightened", Bump.MAJOR)),
        ({"limits": {"max_cost_usd": 0.5}}, ("runtime.limits.max_cost_usd", "budget-loosened", Bump.PATCH)),
        ({"guardrail": {"id": "abc123", "version": "1"}}, ("runtime.guardrail", "guardrail-changed", Bump.MINOR)),
        ({"inference": {"temperature": 0.7}}, ("runtime.inference.temperature", "model-changed", Bump.MINOR)),
    ],
)
def test_the_gate_classifies_llm_runtime_changes(runtime: dict[str, Any], expected: tuple[Any, ...]) -> None:
    assert _changed(**runtime) == (expected,)


def test_removing_a_guardrail_is_breaking() -> None:
    old = load_contract(SHIPPED).model_dump(mode="json")
    old["runtime"]["guardrail"] = {"id": "abc123", "version": "1"}
    new = load_contract(SHIPPED).model_dump(mode="json")
    changes = diff(snapshot(CapabilityContract.model_validate(old)), snapshot(CapabilityContract.model_validate(new)))
    assert [(c.kind, c.bump) for c in changes.changes] == [("guardrail-removed", Bump.MAJOR)]


def test_a_lambda_agent_becoming_an_llm_agent_is_breaking(tmp_path: Path) -> None:
    lambda_doc = yaml.safe_load((CONTRACTS_DIR / "evidence-verifier.yaml").read_text())
    old = CapabilityContract.model_validate(lambda_doc)
    llm_doc = {**lambda_doc, "runtime": document()["runtime"], "fallback": ["human"]}
    llm_doc["runtime"]["tools"] = []
    new = CapabilityContract.model_validate(llm_doc)
    changes = diff(snapshot(old), snapshot(new)).changes
    assert ("runtime.kind", "runtime-kind-changed", Bump.MAJOR) in [(c.path, c.kind, c.bump) for c in changes]
    shutil.rmtree(tmp_path, ignore_errors=True)
