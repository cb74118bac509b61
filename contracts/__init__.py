"""Contracts: the envelope, capability contracts and payload models every other package agrees on."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from contracts.capability import CapabilityContract
    from contracts.envelope import Envelope
    from contracts.loader import CONTRACTS_DIR, ContractError, load_contract, load_contracts
    from contracts.models import MODELS

__all__ = [
    "CONTRACTS_DIR",
    "MODELS",
    "CapabilityContract",
    "ContractError",
    "Envelope",
    "load_contract",
    "load_contracts",
]

# Imported on first use: a handler that needs only ``contracts.models`` must not pay at cold start
# for YAML and the contract models.
_HOMES = {
    "CONTRACTS_DIR": "contracts.loader",
    "MODELS": "contracts.models",
    "CapabilityContract": "contracts.capability",
    "ContractError": "contracts.loader",
    "Envelope": "contracts.envelope",
    "load_contract": "contracts.loader",
    "load_contracts": "contracts.loader",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'contracts' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
