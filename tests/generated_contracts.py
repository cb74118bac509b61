"""What the generated contract tests are generated from: every contract under the contracts directory.

``AGENTPLANE_CONTRACTS_DIR`` and ``AGENTPLANE_FUNCTIONS_DIR`` point them at another set (the add-an-agent test
runs them on a copy with one more agent); by default they cover the shipped contracts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from contracts.capability import CapabilityContract
from contracts.loader import CONTRACTS_DIR, load_contracts
from infra.paths import FUNCTIONS_DIR

CONTRACTS_DIR_ENV = "AGENTPLANE_CONTRACTS_DIR"
FUNCTIONS_DIR_ENV = "AGENTPLANE_FUNCTIONS_DIR"
PAYLOADS_DIR = Path(__file__).parents[1] / "events" / "payloads"
SCHEMAS_DIR = Path(__file__).parents[1] / "contracts" / "schemas"
# Tried in order for each field: the first one the input model refuses is that field's invalid value.
_WRONG_VALUES: tuple[Any, ...] = ({"not": ["a", "valid", "value"]}, -12345, "not a valid value", None)


def contracts_dir() -> Path:
    return Path(os.environ.get(CONTRACTS_DIR_ENV) or CONTRACTS_DIR)


def functions_dir() -> Path:
    return Path(os.environ.get(FUNCTIONS_DIR_ENV) or FUNCTIONS_DIR)


CONTRACTS: dict[str, CapabilityContract] = load_contracts(contracts_dir())
LAMBDA_CONTRACTS = [c for c in CONTRACTS.values() if c.runtime.kind == "lambda"]
SIDE_EFFECTING = [c for c in LAMBDA_CONTRACTS if c.side_effects != "read-only"]


def sample_payload(contract: CapabilityContract) -> dict[str, Any]:
    """A valid input for the contract: ``events/payloads/<input model>.json``, shared by every agent taking it."""
    path = PAYLOADS_DIR / f"{contract.io.input}.json"
    assert path.is_file(), f"{contract.name}: add a sample {contract.io.input} payload as {path}"
    payload: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return payload


def _refused(model: type[BaseModel], payload: dict[str, Any]) -> bool:
    try:
        model.model_validate(payload)
    except ValidationError:
        return True
    return False


def invalid_payloads(contract: CapabilityContract) -> list[tuple[str, dict[str, Any]]]:
    """(what is wrong, payload) for each field of the input: missing where required, and a value it refuses."""
    model = contract.input_model
    sample = sample_payload(contract)
    variants = [("unknown-field", {**sample, "not_in_the_contract": 1})]
    for name, field in model.model_fields.items():
        if field.is_required():
            variants.append((f"{name}-missing", {k: v for k, v in sample.items() if k != name}))
        wrong = next((value for value in _WRONG_VALUES if _refused(model, {**sample, name: value})), None)
        if wrong is not None or _refused(model, {**sample, name: None}):
            variants.append((f"{name}-invalid", {**sample, name: wrong}))
    return [(what, payload) for what, payload in variants if _refused(model, payload)]


def output_schema(contract: CapabilityContract) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS_DIR / f"{contract.io.output}.schema.json").read_text())
    return schema
