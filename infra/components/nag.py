"""cdk-nag acknowledgements, made next to the construct that causes the finding, each with its reason."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Token, Validations
from constructs import IConstruct

XRAY_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) support no resource-level permissions; "
    "the statement grants nothing else"
)
STREAM_CONSUMER_REASON = (
    XRAY_REASON + "; dynamodb:ListStreams (granted with the stream event source) has no resource-level permissions"
)


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def logical_id(resource: IConstruct) -> str:
    """The logical id cdk-nag prints inside finding ids such as ``IAM5[Resource::<Id.Arn>:*]``."""
    child = resource.node.default_child if not isinstance(resource, CfnResource) else resource
    assert isinstance(child, CfnResource)
    resolved: str = Stack.of(resource).resolve(child.logical_id)
    return resolved


def region_account(scope: IConstruct) -> str:
    """``REGION:ACCOUNT`` as cdk-nag prints it inside an ARN: pseudo parameters, or the stack's literal environment."""
    stack = Stack.of(scope)
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    return f"{region}:{account}"
