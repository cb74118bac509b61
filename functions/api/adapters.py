"""The API's AWS side: Step Functions, Lambda, CodeDeploy, and the tables and buckets its routes read and write.

Each class matches a port of the services (functions.api.service, invoke, approvals, rollouts, admission); the
functions below make them from the settings the stack writes, per request (clients are reused while warm).
"""

from __future__ import annotations

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from contracts.catalog import KEY, WorkflowEntry
from functions.api.invoke import SyncRun
from functions.api.service import RunInput, RunStatus
from functions.runtime.adapters import S3DocumentStore, client, scan_all, table
from functions.runtime.admission import DynamoAdmissionSlots
from functions.runtime.approvals import DynamoApprovalStore
from functions.runtime.decisions import DynamoDecisionStore
from functions.runtime.executions import DynamoExecutionStore
from functions.runtime.ledger_store import DynamoLedgerStore, KmsSigner, S3DigestArchive
from functions.runtime.registry import DynamoRegistry

logger = Logger(service="agentplane-api")


def _execution(state_machine_arn: str, run: RunInput) -> dict[str, str]:
    """StartExecution's parameters: the run is named after its execution id and joins its trace."""
    return {
        "stateMachineArn": state_machine_arn,
        "name": run.correlation_id,
        "input": run.to_json(),
        "traceHeader": f"Root={run.trace_id}",
    }


class StepFunctionsEngine:
    """Starts and describes Standard runs, and runs Express ones inside the request."""

    def start(self, *, state_machine_arn: str, run: RunInput) -> str:
        arn: str = client("stepfunctions").start_execution(**_execution(state_machine_arn, run))["executionArn"]
        return arn

    def describe(self, execution_arn: str) -> RunStatus:
        run = client("stepfunctions").describe_execution(executionArn=execution_arn)
        return RunStatus(
            status=run["status"],
            output=run.get("output"),
            error=run.get("error"),
            cause=run.get("cause"),
            started_at=run["startDate"],
            stopped_at=run.get("stopDate"),
        )

    def run_sync(self, *, state_machine_arn: str, run: RunInput) -> SyncRun:
        answer = client("stepfunctions").start_sync_execution(**_execution(state_machine_arn, run))
        return SyncRun(
            execution_arn=answer["executionArn"],
            status=answer["status"],
            output=answer.get("output"),
            error=answer.get("error"),
            cause=answer.get("cause"),
        )


class StepFunctionsCallbacks:
    """Hands an approval's outcome to the run waiting on its task token."""

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        sfn = client("stepfunctions")
        try:
            sfn.send_task_success(taskToken=task_token, output=json.dumps(output))
        except (sfn.exceptions.TaskTimedOut, sfn.exceptions.TaskDoesNotExist, sfn.exceptions.InvalidToken):
            return False
        return True


class AwsRollouts:
    """What ``GET /v1/rollouts`` reads: Lambda and Step Functions aliases, CodeDeploy deployments."""

    def agent_alias(self, function_name: str, alias: str) -> dict[str, Any]:
        answer: dict[str, Any] = client("lambda").get_alias(FunctionName=function_name, Name=alias)
        return answer

    def workflow_alias(self, alias_arn: str) -> dict[str, Any]:
        answer: dict[str, Any] = client("stepfunctions").describe_state_machine_alias(stateMachineAliasArn=alias_arn)
        return answer

    def latest_deployment(self, application: str, group: str) -> dict[str, Any] | None:
        codedeploy = client("codedeploy")
        ids = codedeploy.list_deployments(applicationName=application, deploymentGroupName=group)["deployments"]
        if not ids:
            return None
        found = codedeploy.batch_get_deployments(deploymentIds=ids[:25])["deploymentsInfo"]
        newest: dict[str, Any] = max(found, key=lambda d: d["createTime"])
        return newest


class DynamoCatalog:
    """The plane's catalog table: one item per workflow a project's stack deployed (contracts.catalog). The table
    is opened on the first read, not at cold start."""

    def __init__(self, table_name: str) -> None:
        self._table_name = table_name

    def entries(self) -> list[WorkflowEntry]:
        found = []
        for item in scan_all(table(self._table_name)):
            try:
                found.append(WorkflowEntry.from_item(item))
            except ValidationError:  # one stack's bad entry must not take the others' workflows down
                logger.warning("skipping an invalid catalog entry", extra={"entry": item.get(KEY)})
        return found


def catalog() -> DynamoCatalog | None:
    """The catalog table; None when the stack holds every workflow the API serves (no table named)."""
    name = os.environ.get("WORKFLOW_CATALOG_TABLE")
    return DynamoCatalog(name) if name else None


def executions() -> DynamoExecutionStore:
    return DynamoExecutionStore(table(os.environ["EXECUTIONS_TABLE"]))


def admission() -> DynamoAdmissionSlots:
    return DynamoAdmissionSlots(table(os.environ["EXECUTIONS_TABLE"]))


def decisions() -> DynamoDecisionStore:
    return DynamoDecisionStore(table(os.environ["DECISIONS_TABLE"]))


def approvals() -> DynamoApprovalStore:
    return DynamoApprovalStore(table(os.environ["APPROVALS_TABLE"]))


def requests() -> S3DocumentStore | None:
    """Where claim-checked requests go; None when the stack gives the API no documents bucket."""
    return S3DocumentStore(os.environ["DOCUMENTS_BUCKET"]) if "DOCUMENTS_BUCKET" in os.environ else None


class _Contents:
    """Stored content by key; None for a key nothing is stored under."""

    def __init__(self, bucket: str) -> None:
        self.store = S3DocumentStore(bucket)

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self.store.get(key)
        except ClientError as error:
            if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise


def contents() -> _Contents | None:
    """The llm turns' stored content; None when the stack gives the API no documents bucket."""
    return _Contents(os.environ["DOCUMENTS_BUCKET"]) if "DOCUMENTS_BUCKET" in os.environ else None


def ledger() -> DynamoLedgerStore:
    return DynamoLedgerStore(table(os.environ["LEDGER_TABLE"]))


def digests() -> S3DigestArchive:
    return S3DigestArchive(os.environ["DIGESTS_BUCKET"])


def signer() -> KmsSigner:
    return KmsSigner(os.environ["SIGNING_KEY_ID"])


def registry() -> DynamoRegistry:
    return DynamoRegistry(table(os.environ["REGISTRY_TABLE"]), cache_s=0)  # callers see circuits as they are
