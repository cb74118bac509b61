"""The environment the CDK context names (agentplane:environment, removal policy, account-wide settings)."""

from __future__ import annotations

import pytest

from infra.context import ContextError, Environment

pytestmark = pytest.mark.unit


def of(**context: str) -> Environment:
    values = {f"agentplane:{key.replace('_', '-')}": value for key, value in context.items()}
    return Environment.from_context(values.get)


def test_the_default_is_a_throwaway_sandbox_without_account_wide_settings() -> None:
    assert of() == Environment("sandbox", "destroy", account_settings=False)
    assert not of().compliance_lock


def test_prod_retains_and_locks_in_compliance_mode() -> None:
    assert of(environment="prod") == Environment("prod", "retain", account_settings=False)
    assert of(environment="prod").compliance_lock


def test_an_explicit_removal_policy_and_account_settings_win() -> None:
    assert of(removal_policy="retain").removal_policy == "retain"
    assert of(environment="prod", removal_policy="destroy").removal_policy == "destroy"
    assert of(account_settings="TRUE").account_settings


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"environment": "staging"}, "context agentplane:environment must be 'sandbox' or 'prod', not 'staging'"),
        ({"removal_policy": "keep"}, "context agentplane:removal-policy must be 'retain' or 'destroy', not 'keep'"),
        ({"account_settings": "yes"}, "context agentplane:account-settings must be 'true' or 'false', not 'yes'"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(context: dict[str, str], message: str) -> None:
    with pytest.raises(ContextError) as raised:
        of(**context)
    assert str(raised.value) == message


def test_a_pipeline_defaults_to_prod() -> None:
    assert Environment.from_context({}.get, default="prod").name == "prod"
    assert Environment.from_context({"agentplane:environment": "sandbox"}.get, default="prod").name == "sandbox"
