"""cdk-nag acknowledgements, made next to the construct that causes the finding, each with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct

XRAY_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions; "
    "the statement grants nothing else"
)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def logical_id(resource: IConstruct) -> str:
    """The logical id cdk-nag prints inside finding ids such as ``IAM5[Resource::<Id.Arn>:*]``."""
    child = resource.node.default_child if not isinstance(resource, CfnResource) else resource
    assert isinstance(child, CfnResource)
    resolved: str = Stack.of(resource).resolve(child.logical_id)
    return resolved
