"""The error every component raises for a contract it cannot build, so synth reports each one in one line."""

from __future__ import annotations


class ContractInfraError(ValueError):
    """A contract asks for something the plane cannot build; the message names contract and field."""
