"""Applies the retention declared in ``contracts.retention`` to log groups, buckets, tables and queues.

Each resource is tagged in the template with the kind it keeps (metadata ``agentplane:retention``) so the
template tests can hold every stateful resource to its declaration.
"""

from __future__ import annotations

from aws_cdk import CfnResource, Duration, RemovalPolicy
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from contracts.retention import LOG_RETENTION_DAYS, retention
from infra.conventions import RETENTION_METADATA as RETENTION_METADATA  # re-exported: tests read it here

# CDK's enum lists CloudWatch's allowed periods in ascending order (then INFINITE, which we never use).
_LOG_RETENTION = dict(
    zip(sorted(LOG_RETENTION_DAYS), [days for days in logs.RetentionDays if days.name != "INFINITE"], strict=True)
)


def declare(resource: IConstruct, kind: str) -> None:
    """Record in the template which declared retention ``resource`` follows."""
    retention(kind)  # refuse an undeclared kind at synth
    cfn = resource.node.default_child if not isinstance(resource, CfnResource) else resource
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path}: no CloudFormation resource to tag with its retention")
    cfn.add_metadata(RETENTION_METADATA, kind)


def log_retention(kind: str) -> logs.RetentionDays:
    days = retention(kind).days
    if days not in _LOG_RETENTION:
        raise ValueError(f"retention {kind!r}: {days} days is not a CloudWatch Logs period ({sorted(_LOG_RETENTION)})")
    return _LOG_RETENTION[days]


def log_group(
    scope: Construct,
    construct_id: str,
    kind: str,
    *,
    removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    """A log group that keeps its events as long as ``kind`` declares."""
    group = logs.LogGroup(
        scope,
        construct_id,
        retention=log_retention(kind),
        removal_policy=removal_policy,
        log_group_name=log_group_name,
    )
    declare(group, kind)
    return group


def period(kind: str, *, locked: bool = False) -> Duration:
    """How long ``kind`` is kept (or, with ``locked``, how long it cannot be deleted)."""
    declared = retention(kind)
    days = declared.locked_days if locked else declared.days
    if days is None:
        raise ValueError(f"retention {kind!r} declares no {'lock' if locked else 'expiry'} period")
    return Duration.days(days)


def lifecycle_rules(kind: str) -> list[s3.LifecycleRule]:
    """Expire objects (and replaced versions) as ``kind`` declares; always clean up abandoned uploads."""
    declared = retention(kind)
    rule = s3.LifecycleRule(
        id=f"retention-{kind}",
        abort_incomplete_multipart_upload_after=Duration.days(1),
        expiration=Duration.days(declared.days) if declared.days is not None else None,
        noncurrent_version_expiration=(
            Duration.days(declared.noncurrent_days) if declared.noncurrent_days is not None else None
        ),
    )
    return [rule]
