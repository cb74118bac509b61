"""Human approval: a table of pending approvals and the function a workflow calls with its task token."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.data_store import DataStore
from infra.components.platform_function import platform_function


class ApprovalGate(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data: DataStore,
        layers: list[lambda_.ILayerVersion],
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table = data.private_table(
            self, "Approvals", partition="approval_id", retention="approvals", removal_policy=removal_policy
        )
        self.function = platform_function(
            self,
            "Gate",
            "approval_gate",
            layers,
            data=data,
            description="agentplane approval gate: stores a pending approval with its task token",
            environment={"APPROVALS_TABLE": self.table.table_name, "EXECUTIONS_TABLE": data.executions.table_name},
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[self.table.table_arn])
        )
        self.function.add_to_role_policy(
            # UpdateItem: a run waiting for a person gives its admission slot back (functions.runtime.admission).
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[data.executions.table_arn]
            )
        )

    def grant_decide(self, grantee: iam.IGrantable, state_machine_arns: list[str]) -> None:
        """Who settles approvals: read and settle them, and resume the waiting run."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"], resources=[self.table.table_arn]
            )
        )
        if state_machine_arns:
            grantee.grant_principal.add_to_principal_policy(resume_statement(state_machine_arns))


def resume_statement(state_machine_arns: list[str]) -> iam.PolicyStatement:
    """Resume (or fail) the runs of these state machines waiting on an approval's task token."""
    return iam.PolicyStatement(
        actions=["states:SendTaskSuccess", "states:SendTaskFailure"], resources=state_machine_arns
    )
