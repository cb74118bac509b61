"""cdk-nag acknowledgements, made next to the construct that causes the finding, each with its reason."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

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


_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def unique_id(components: Sequence[str]) -> str:
    """An id from a construct path below its stack, as CDK makes logical ids and export names (the path's
    alphanumerics, then a hash of the whole path)."""
    parts = [c for c in components if c != "Default"]
    if len(parts) == 1 and len(_NOT_ALPHANUMERIC.sub("", parts[0])) <= 255:
        return _NOT_ALPHANUMERIC.sub("", parts[0])
    digest = hashlib.md5("/".join(parts).encode(), usedforsecurity=False).hexdigest()[:8].upper()
    human = [c for i, c in enumerate(parts) if i == 0 or parts[i - 1] != c]
    return "".join(_NOT_ALPHANUMERIC.sub("", c) for c in human if c != "Resource")[:240] + digest


def ref(scope: IConstruct, resource: IConstruct, attribute: str = "Arn") -> str:
    """``resource``'s attribute as cdk-nag prints it in a finding id of a policy in ``scope``'s stack: ``<Id.Arn>``
    in the same stack, else the name of the export CDK makes for it (a project's stack imports the plane's)."""
    lid = logical_id(resource)
    exporting = Stack.of(resource)
    if Stack.of(scope) is exporting:
        return f"<{lid}.{attribute}>"
    value = json.dumps({"Fn::GetAtt": [lid, attribute]}, separators=(",", ":"))
    return f"{exporting.stack_name}:" + unique_id(["Exports", "Output" + value])
