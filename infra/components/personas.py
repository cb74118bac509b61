"""Who may call the API: one IAM role per persona, each allowed to invoke exactly its routes (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import CfnOutput, CfnResource, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.nag import acknowledge, logical_id, region_account
from infra.local.auth import PERSONA_METADATA

Route = tuple[str, str]  # (METHOD, path); "*" stands for a path parameter

SUBMITTER: list[Route] = [
    ("POST", "/v1/workflows/*/executions"),
    ("POST", "/v1/workflows/*/invoke"),
    ("GET", "/v1/executions/*"),
    ("GET", "/v1/capabilities"),
]
APPROVER: list[Route] = [
    ("GET", "/v1/approvals"),
    ("POST", "/v1/approvals/*"),
    ("GET", "/v1/executions/*"),
    ("GET", "/v1/capabilities"),
]
AUDITOR: list[Route] = [
    ("GET", "/v1/audit/*"),
    ("GET", "/v1/audit/traces/*"),
    ("GET", "/v1/audit/content/*"),
    ("GET", "/v1/executions/*"),
    ("GET", "/v1/capabilities"),
    ("GET", "/v1/rollouts"),
]
PERSONA_ROUTES: dict[str, list[Route]] = {
    "submitter": SUBMITTER,
    "approver": APPROVER,
    "auditor": AUDITOR,
    "admin": list(dict.fromkeys([*SUBMITTER, *APPROVER, *AUDITOR])),
}


@dataclass(frozen=True)
class Throttle:
    """A usage plan's steady rate (requests per second) and burst (bucket size) for one persona."""

    rate: float
    burst: int


# Per persona, beneath the stage's own limit: one busy persona cannot starve the others (backpressure).
PERSONA_THROTTLE: dict[str, Throttle] = {
    "submitter": Throttle(rate=50, burst=100),
    "approver": Throttle(rate=10, burst=20),
    "auditor": Throttle(rate=10, burst=20),
    "admin": Throttle(rate=20, burst=40),
}
# Who a person is, on every persona role: the source identity they must set when they assume it (from their
# identity provider; it cannot change for the session, nor through role chaining), and the session must be
# named after it. API Gateway's IAM authorisation gives the API the session (``requestContext.identity.userArn``,
# ``.../assumed-role/<role>/<session>``), not the source identity, so the session name is how the API tells
# people apart: one person holding two personas is the same session name in both (no self-approval).
SOURCE_IDENTITY_CONDITIONS: dict[str, dict[str, str]] = {
    "Null": {"sts:SourceIdentity": "false"},
    "StringEquals": {"sts:RoleSessionName": "${sts:SourceIdentity}"},
}
# The API function's setting naming each persona's role: it tells personas apart by role, never by session name.
PERSONA_ROLES_SETTING = "PERSONA_ROLES"


class Personas(Construct):
    """One role per persona, assumable from this account, with ``execute-api:Invoke`` on its routes only.

    The roles trust the account root: any principal of the account whose own policy allows ``sts:AssumeRole`` on
    a role may assume it, setting a source identity and naming the session after it
    (``SOURCE_IDENTITY_CONDITIONS``). Platform teams narrow this when they deploy (trust their SSO permission
    sets or group roles instead). ``function`` (the API) gets the role names, so the persona is read from the
    role and the person from the session.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api: apigw.RestApi,
        routes: Mapping[str, Sequence[Route]],
        throttles: Mapping[str, Throttle] = PERSONA_THROTTLE,
        function: lambda_.Function | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        missing = sorted(set(routes) - set(throttles))
        if missing:
            raise ValueError(f"personas without a throttle: {', '.join(missing)}")
        self.roles: dict[str, iam.Role] = {}
        self.api_keys: dict[str, apigw.IApiKey] = {}
        stage = api.deployment_stage
        for persona, allowed in routes.items():
            title = persona.capitalize()
            role = iam.Role(
                self,
                f"{title}Role",
                assumed_by=iam.AccountRootPrincipal(),
                description=f"agentplane {persona}: invoke the {persona} routes of the public API, nothing else",
            )
            role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=["execute-api:Invoke"],
                    resources=[api.arn_for_execute_api(method, path, stage.stage_name) for method, path in allowed],
                )
            )
            resource = role.node.default_child
            assert isinstance(resource, iam.CfnRole)
            resource.assume_role_policy_document = iam.PolicyDocument(
                statements=[
                    iam.PolicyStatement(
                        actions=["sts:AssumeRole", "sts:SetSourceIdentity"],
                        principals=[iam.AccountRootPrincipal()],
                        conditions=SOURCE_IDENTITY_CONDITIONS,
                    )
                ]
            )
            resource.add_metadata(PERSONA_METADATA, persona)
            for method, path in allowed:
                if "*" in path:
                    acknowledge(
                        role,
                        f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:execute-api:{region_account(role)}:"
                        f"<{logical_id(api)}>/<{logical_id(stage)}>/{method}{path}]",
                        f"{method} {path}: '*' stands for a path parameter (a run, trace or approval id, "
                        "a workflow name) of this one API and stage",
                    )
            CfnOutput(self, f"{title}RoleArn", value=role.role_arn, description=f"assume to call the API as {persona}")
            self.roles[persona] = role
            self._usage_plan(api, persona, throttles[persona])
        if function is not None:
            names = {persona: role.role_name for persona, role in self.roles.items()}
            function.add_environment(PERSONA_ROLES_SETTING, Stack.of(self).to_json_string(names))

    def _usage_plan(self, api: apigw.RestApi, persona: str, throttle: Throttle) -> None:
        """API Gateway throttles by API key, not by IAM principal: one key and one usage plan per persona.

        Every method but health requires the key beside the SigV4 signature, so each persona's requests count
        against its own bucket. The key's value is generated by API Gateway; callers read it once with
        ``aws apigateway get-api-key --include-value`` (the key id is a stack output) and send it as ``x-api-key``.
        """
        title = persona.capitalize()
        key = api.add_api_key(f"{title}ApiKey", description=f"agentplane {persona}: counts against its usage plan")
        plan = api.add_usage_plan(
            f"{title}UsagePlan",
            description=f"agentplane {persona}: {throttle.rate:g} requests/s, bursts of {throttle.burst}",
            throttle=apigw.ThrottleSettings(rate_limit=throttle.rate, burst_limit=throttle.burst),
            api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
        )
        plan.add_api_key(key)
        resource = plan.node.default_child
        assert isinstance(resource, CfnResource)
        resource.add_metadata(PERSONA_METADATA, persona)
        CfnOutput(self, f"{title}ApiKeyId", value=key.key_id, description=f"the {persona} persona's x-api-key (id)")
        self.api_keys[persona] = key
