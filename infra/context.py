"""Errors in CDK context values, shared by the app and the pipeline (`python -m infra.app` reports them in one line),
and the deployment environment the context names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ENVIRONMENT = "agentplane:environment"
REMOVAL_POLICY = "agentplane:removal-policy"
ACCOUNT_SETTINGS = "agentplane:account-settings"


class ContextError(ValueError):
    """A missing or malformed context value; the message is one line that names the key."""


def choice(context: Callable[[str], Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = context(key)
    if value is None:
        return default
    if str(value) not in allowed:
        options = " or ".join(f"'{option}'" for option in allowed)
        raise ContextError(f"context {key} must be {options}, not {value!r}")
    return str(value)


def flag(context: Callable[[str], Any], key: str) -> bool:
    """A ``true``/``false`` context value (either case), false when absent."""
    value = str(context(key) or "false").lower()
    if value not in ("true", "false"):
        raise ContextError(f"context {key} must be 'true' or 'false', not {value!r}")
    return value == "true"


@dataclass(frozen=True)
class Environment:
    """What differs between a throwaway sandbox and production.

    sandbox (the default): the ledger's digests are locked in GOVERNANCE mode for a day and stateful resources are
    destroyed with the stack. prod: COMPLIANCE for the declared retention, and everything is retained.
    Settings that belong to the whole account (API Gateway's CloudWatch role, X-Ray sampling rules) are only
    deployed when asked for, in either.
    """

    name: Literal["sandbox", "prod"]
    removal_policy: Literal["retain", "destroy"]
    account_settings: bool

    @property
    def compliance_lock(self) -> bool:
        return self.name == "prod"

    @classmethod
    def from_context(cls, context: Callable[[str], Any], *, default: str = "sandbox") -> Environment:
        name = choice(context, ENVIRONMENT, ("sandbox", "prod"), default)
        removal = choice(context, REMOVAL_POLICY, ("retain", "destroy"), "retain" if name == "prod" else "destroy")
        return cls(
            name="prod" if name == "prod" else "sandbox",
            removal_policy="retain" if removal == "retain" else "destroy",
            account_settings=flag(context, ACCOUNT_SETTINGS),
        )
