"""The template per environment: a sandbox (the default) is throwaway, prod keeps everything; account-wide settings
only when asked for."""

from __future__ import annotations

import pytest

from contracts.retention import RETENTION
from infra.components.audit_ledger import SANDBOX_LOCK
from infra.conventions import ENVIRONMENT_METADATA
from tests.infra.assembly import PINNED_LOGICAL_IDS, Synthesized
from tests.infra.test_cfn_lint import described, findings

pytestmark = pytest.mark.infra

DIGESTS = next(lid for lid in PINNED_LOGICAL_IDS if lid.startswith("LedgerDigests"))
# What keeps data: the plane's tables, buckets and keys (the removal policy is applied to each).
STATEFUL = sorted(
    lid
    for lid, kind in PINNED_LOGICAL_IDS.items()
    if kind in ("AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::KMS::Key")
)


def lock(synthesized: Synthesized) -> dict[str, object]:
    rule: dict[str, object] = synthesized.resources[DIGESTS]["Properties"]["ObjectLockConfiguration"]["Rule"]
    return rule["DefaultRetention"]  # type: ignore[return-value]


def test_the_template_says_which_environment_it_was_built_for(
    synthesized: Synthesized, synthesized_prod: Synthesized
) -> None:
    assert synthesized.template["Metadata"][ENVIRONMENT_METADATA] == "sandbox"
    assert synthesized_prod.template["Metadata"][ENVIRONMENT_METADATA] == "prod"


def test_a_sandbox_locks_digests_in_governance_mode_for_a_day(synthesized: Synthesized) -> None:
    assert lock(synthesized) == {"Mode": "GOVERNANCE", "Days": int(SANDBOX_LOCK.to_days())}
    assert SANDBOX_LOCK.to_days() == 1


def test_prod_locks_digests_in_compliance_mode_for_the_declared_retention(synthesized_prod: Synthesized) -> None:
    assert lock(synthesized_prod) == {"Mode": "COMPLIANCE", "Days": RETENTION["ledger-digests"].locked_days}


@pytest.mark.parametrize("lid", STATEFUL)
def test_a_sandbox_s_stateful_resources_go_with_the_stack(synthesized: Synthesized, lid: str) -> None:
    # GIVEN the default environment (sandbox) and no agentplane:removal-policy THEN deleting the stack deletes them
    assert synthesized.resources[lid]["DeletionPolicy"] == "Delete"


@pytest.mark.parametrize("lid", STATEFUL)
def test_prod_s_stateful_resources_outlive_the_stack(synthesized_prod: Synthesized, lid: str) -> None:
    assert synthesized_prod.resources[lid]["DeletionPolicy"] == "Retain"
    assert synthesized_prod.resources[lid]["UpdateReplacePolicy"] == "Retain"


def test_account_wide_settings_are_opt_in(synthesized: Synthesized, synthesized_prod: Synthesized) -> None:
    # GIVEN the default: no account-wide resource at all
    assert not synthesized.of_type("AWS::ApiGateway::Account")
    assert not synthesized.of_type("AWS::XRay::SamplingRule")
    assert not [lid for lid in synthesized.of_type("AWS::IAM::Role") if "CloudWatchRole" in lid]
    # WHEN agentplane:account-settings=true THEN the API Gateway account role and the sampling rules are deployed
    (account,) = synthesized_prod.of_type("AWS::ApiGateway::Account").values()
    role = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    assert synthesized_prod.resources[role]["Type"] == "AWS::IAM::Role"
    assert synthesized_prod.resources[role]["DeletionPolicy"] == "Retain"  # other APIs in the account rely on it
    assert len(synthesized_prod.of_type("AWS::XRay::SamplingRule")) == 2


def test_the_prod_template_with_account_settings_lints_clean(synthesized_prod: Synthesized) -> None:
    # cdk-nag already ran inside its synth; cfn-lint checks what CloudFormation receives (the sandbox's is checked
    # in test_cfn_lint.py)
    assert described(findings(synthesized_prod.template)) == []
