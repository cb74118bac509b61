"""Who calls the local Bedrock, and whether their IAM policies allow it, decided as IAM decides.

Converse needs ``bedrock:InvokeModel`` on the model it names: ``arn:aws:bedrock:REGION::foundation-model/ID`` for a
foundation model, and for a cross-Region inference profile both the profile
(``arn:aws:bedrock:REGION:ACCOUNT:inference-profile/ID``) and the foundation model behind it (only this Region's
ARN of it is checked locally, where AWS checks each Region the profile routes to).

``MotoAuthorizer`` finds the caller in moto's IAM and STS (the local plane hands every function its role's
temporary credentials from there) and lets moto's policy evaluator decide on the role's inline and attached
policies. A caller moto does not know (the plane itself, a test's fake keys) is not evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from moto.iam.access_control import AssumedRoleAccessKey, CreateAccessKeyFailure, IAMUserAccessKey

from infra.local.iam import Check, _permitted
from infra.local.template import ACCOUNT_ID

ACTION = "bedrock:InvokeModel"  # what Converse needs (ConverseStream: InvokeModelWithResponseStream)


@dataclass(frozen=True)
class Principal:
    arn: str
    policies: list[Any]


class Authorizer(Protocol):
    def from_arn(self, arn: str) -> Principal | None: ...

    def from_headers(self, headers: Mapping[str, str]) -> Principal | None: ...

    def allows(self, principal: Principal, action: str, resource: str) -> bool: ...


class MotoAuthorizer:
    """Callers and their policies from moto's IAM and STS, in the plane's process, decided by moto's evaluator."""

    def __init__(self, account_id: str = ACCOUNT_ID, partition: str = "aws") -> None:
        self.account_id = account_id
        self.partition = partition

    def from_headers(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller of a SigV4-signed request: the access key in its ``Authorization`` header."""
        authorization = headers.get("Authorization") or headers.get("authorization") or ""
        _, found, rest = authorization.partition("Credential=")
        if not found:
            return None
        key_id = rest.split("/", 1)[0]
        token = headers.get("X-Amz-Security-Token") or headers.get("x-amz-security-token")
        moto_headers = {"X-Amz-Security-Token": token} if token else {}
        try:
            key: IAMUserAccessKey | AssumedRoleAccessKey = (
                AssumedRoleAccessKey(self.account_id, self.partition, key_id, moto_headers)
                if token
                else IAMUserAccessKey(self.account_id, self.partition, key_id, moto_headers)
            )
            return Principal(key.arn, list(key.collect_policies()))
        except (CreateAccessKeyFailure, KeyError):
            return None  # not a key moto issued: not evaluated, as the plane's own calls are not

    def from_arn(self, arn: str) -> Principal | None:
        """A role (``…:role/NAME``) or one of its sessions (``…:assumed-role/NAME/SESSION``); ``None`` if unknown."""
        from moto.iam.models import iam_backends

        backend = iam_backends[self.account_id][self.partition]
        resource = arn.split(":", 5)[-1]
        kind, _, rest = resource.partition("/")
        if kind not in ("role", "assumed-role"):
            return None
        name = rest.split("/")[0] if kind == "assumed-role" else rest.split("/")[-1]
        try:
            backend.get_role(name)
        except Exception:  # moto raises its own IAMNotFoundException
            return None
        policies: list[Any] = [backend.get_role_policy(name, policy)[1] for policy in backend.list_role_policies(name)]
        attached, _ = backend.list_attached_role_policies(name)
        return Principal(arn, policies + list(attached))

    def allows(self, principal: Principal, action: str, resource: str) -> bool:
        return _permitted(principal.policies, Check(action, resource))
