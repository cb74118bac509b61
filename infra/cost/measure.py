"""Measure what one run of a workflow uses, on a running local plane: the profile the cost model prices.

State transitions come from the execution's history, Lambda invocations and handler time from the
plane's function instances, DynamoDB, S3 and EventBridge requests from every AWS call the functions make
(as the plane's AWS endpoint receives them) and the plane makes itself (at botocore's one call method),
sizes and fixed resources from the synthesized template.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.client import BaseClient

from contracts.arns import split_alias
from infra.client import Endpoint as ApiEndpoint
from infra.client import call, expect, local_endpoint, pending_approvals, settle
from infra.cost.model import (
    SECONDS_PER_MONTH,
    CostError,
    Endpoint,
    FunctionUse,
    ModelUse,
    Profile,
    RunUse,
    Schedule,
)
from infra.llm_report import records_of, turns
from infra.local import moto_seam
from infra.local.plane import LocalPlane
from infra.local.schedules import rate_seconds

_DDB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
_DDB_READS = {"GetItem", "Query", "Scan"}
# API names (the plane's own calls) and IAM action names (what the endpoint sees of the functions' calls).
_S3_PUTS = {
    "PutObject",
    "CopyObject",
    "ListObjects",
    "ListObjectsV2",
    "ListBucket",
    "CreateMultipartUpload",
    "UploadPart",
}
_S3_GETS = {"GetObject", "HeadObject"}


def _units(value: Any) -> int:
    """Request units of an item: its JSON size rounded up to 1 KB (DynamoDB's write unit)."""
    return max(1, math.ceil(len(json.dumps(value, default=str)) / 1024))


@dataclass
class Calls:
    write_units: float = 0.0
    read_units: float = 0.0
    s3_put: int = 0
    s3_get: int = 0
    events: int = 0

    def count(self, service: str, operation: str, params: dict[str, Any]) -> None:
        if service == "dynamodb":
            self._dynamodb(operation, params)
        elif service == "s3":
            self.s3_put += operation in _S3_PUTS
            self.s3_get += operation in _S3_GETS
        elif service == "events" and operation == "PutEvents":
            self.events += len(params.get("Entries", []))

    def _dynamodb(self, operation: str, params: dict[str, Any]) -> None:
        read = 1.0 if params.get("ConsistentRead") else 0.5  # per 4 KB; eventually consistent costs half
        if operation in _DDB_WRITES:
            self.write_units += _units(params.get("Item", params.get("Key")))
        elif operation in _DDB_READS:
            self.read_units += read
        elif operation == "TransactWriteItems":  # transactions cost two units per item
            self.write_units += sum(2 * _units(item) for item in params.get("TransactItems", []))
        elif operation == "TransactGetItems":
            self.read_units += 2 * len(params.get("TransactItems", []))
        elif operation == "BatchWriteItem":
            self.write_units += sum(_units(r) for rs in params.get("RequestItems", {}).values() for r in rs)
        elif operation == "BatchGetItem":
            self.read_units += sum(read * len(t.get("Keys", [])) for t in params.get("RequestItems", {}).values())


@contextmanager
def counting_calls(plane: LocalPlane) -> Iterator[Calls]:
    """Count every AWS call made while inside, by operation: the functions' (at the plane's endpoint) and the
    plane's own threads' (in this process)."""
    calls = Calls()
    lock = threading.Lock()
    original = moto_seam.original("botocore.make_api_call")

    def count(service: str, operation: str, params: dict[str, Any]) -> None:
        with lock:
            calls.count(service, operation, params)

    def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        count(client.meta.service_model.service_name, operation, params)
        return original(client, operation, params)

    assert plane.iam is not None
    patch = moto_seam.apply("botocore.make_api_call", counted)
    plane.iam.observers.append(count)
    try:
        yield calls
    finally:
        plane.iam.observers.remove(count)
        patch.restore()


def _function_snapshot(plane: LocalPlane) -> dict[str, tuple[int, float]]:
    return {name: (spec.invocations, spec.busy_s) for name, spec in plane.lambdas.functions.items()}


def _function_use(plane: LocalPlane, before: dict[str, tuple[int, float]], runs: int) -> list[FunctionUse]:
    assert plane.provisioner is not None
    resources = plane.provisioner.template.resources
    used = []
    for name, spec in sorted(plane.lambdas.functions.items()):
        calls, busy = before.get(name, (0, 0.0))
        if spec.invocations == calls:
            continue
        architectures = resources[spec.logical_id].get("Properties", {}).get("Architectures", ["x86_64"])
        used.append(
            FunctionUse(
                function=spec.logical_id,
                memory_mb=spec.memory_mb,
                architecture=architectures[0],
                invocations=(spec.invocations - calls) / runs,
                duration_ms=(spec.busy_s - busy) * 1000 / runs,
            )
        )
    return used


def _model_use(plane: LocalPlane, execution_ids: list[str]) -> list[ModelUse]:
    """Each model's turns and tokens per run, from the runs' turn records."""
    ddb = plane.client("dynamodb")
    table = plane.physical("DataDecisions", "AWS::DynamoDB::Table")
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    served: dict[str, set[str]] = defaultdict(set)
    providers: dict[str, str] = {}
    for execution_id in execution_ids:
        for _, turn in turns(records_of(ddb, table, execution_id)):
            model = turn["model_id"]
            counts[model].update(turns=1, **turn["usage"])
            providers[model] = turn.get("provider", "bedrock")
            if turn.get("served_by"):
                served[model].add(turn["served_by"])
    runs = max(1, len(execution_ids))
    return [
        ModelUse(
            model_id=model,
            turns=count["turns"] / runs,
            input_tokens=count["input_tokens"] / runs,
            output_tokens=count["output_tokens"] / runs,
            cache_read_tokens=count["cache_read_tokens"] / runs,
            cache_write_tokens=count["cache_write_tokens"] / runs,
            served_by=sorted(served[model]),
            provider=providers[model],
        )
        for model, count in sorted(counts.items())
    ]


def _workflows(plane: LocalPlane) -> dict[str, dict[str, Any]]:
    for spec in plane.lambdas.functions.values():
        if "WORKFLOWS" in spec.environment:
            workflows: dict[str, dict[str, Any]] = json.loads(spec.environment["WORKFLOWS"])
            return workflows
    raise CostError("the template's API has no WORKFLOWS setting")


def _endpoints(plane: LocalPlane) -> list[Endpoint]:
    """Instances each SageMaker endpoint configuration keeps running (serverless variants have none)."""
    assert plane.provisioner is not None
    found = []
    for lid, resource in sorted(plane.provisioner.template.resources.items()):
        if resource["Type"] != "AWS::SageMaker::EndpointConfig":
            continue
        for variant in resource.get("Properties", {}).get("ProductionVariants", []):
            if "InstanceType" in variant:
                name = f"{lid}/{variant.get('VariantName', 'AllTraffic')}"
                found.append(
                    Endpoint(
                        name=name,
                        instance_type=variant["InstanceType"],
                        instances=int(variant.get("InitialInstanceCount", 1)),
                    )
                )
    return found


def _schedules(plane: LocalPlane) -> list[Schedule]:
    """Each scheduled rule fired once, measured, and multiplied by its firings per month."""
    assert plane.provisioner is not None
    assert plane.scheduler is not None
    found = []
    for rule, (expression, _) in sorted(plane.provisioner.schedules.items()):
        every = rate_seconds(expression)
        if every is None:
            continue
        before = _function_snapshot(plane)
        plane.scheduler.run(rule)
        found.append(
            Schedule(
                rule=rule.split("-", 1)[-1],
                per_month=SECONDS_PER_MONTH / every,
                functions=_function_use(plane, before, 1),
            )
        )
    return found


def measure(plane: LocalPlane, workflow: str, request: Path, *, runs: int = 2, timeout: float = 120.0) -> Profile:
    """Run ``workflow`` ``runs`` times on the plane (approving what waits for a person) and average its use."""
    workflows = _workflows(plane)
    if workflow not in workflows:
        raise CostError(f"no workflow {workflow!r} in the template (have: {', '.join(sorted(workflows))})")
    spec = workflows[workflow]
    synchronous = bool(spec.get("synchronous", False))
    body = request.read_bytes()
    submitter = local_endpoint(plane.url, plane.state_dir, "submitter")
    approver = local_endpoint(plane.url, plane.state_dir, "approver")
    sfn = plane.client("stepfunctions")
    # Runs start through the workflow's live alias; its state machine names their executions.
    aliased = split_alias(spec["state_machine_arn"])
    machine_arn = aliased[0] if aliased else spec["state_machine_arn"]
    machine_type = sfn.describe_state_machine(stateMachineArn=machine_arn).get("type", "STANDARD")

    plane.settle()
    schedules = _schedules(plane)  # before the runs: their digest covers an idle ledger too
    transitions = 0
    duration_ms = 0.0
    api_before = sum(s.invocations for s in plane.lambdas.functions.values() if "WORKFLOWS" in s.environment)
    before = _function_snapshot(plane)
    measured: list[str] = []
    with counting_calls(plane) as calls:
        for _ in range(runs):
            if synchronous:
                answer = expect(call(submitter, "POST", f"/v1/workflows/{workflow}/invoke", body), 200)
            else:
                answer = expect(call(submitter, "POST", f"/v1/workflows/{workflow}/executions", body), 202)
            measured.append(answer["execution_id"])
            execution_arn = machine_arn.replace(":stateMachine:", ":execution:") + f":{answer['execution_id']}"
            run = _wait(sfn, execution_arn, approver, answer["execution_id"], timeout)
            history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
            transitions += sum(1 for event in history if event["type"].endswith("StateEntered"))
            duration_ms += (run["stopDate"] - run["startDate"]).total_seconds() * 1000
            plane.settle()
    api_requests = sum(s.invocations for s in plane.lambdas.functions.values() if "WORKFLOWS" in s.environment)
    return Profile(
        workflow=workflow,
        state_machine_type=machine_type,
        request=request.name,
        runs_measured=runs,
        per_run=RunUse(
            state_transitions=transitions / runs,
            duration_ms=duration_ms / runs,
            api_requests=(api_requests - api_before) / runs,
            events_published=calls.events / runs,
            dynamodb_write_units=calls.write_units / runs,
            dynamodb_read_units=calls.read_units / runs,
            s3_put_requests=calls.s3_put / runs,
            s3_get_requests=calls.s3_get / runs,
            functions=_function_use(plane, before, runs),
            models=_model_use(plane, measured),
        ),
        endpoints=_endpoints(plane),
        schedules=schedules,
    )


def _wait(sfn: Any, execution_arn: str, approver: ApiEndpoint, execution_id: str, timeout: float) -> dict[str, Any]:
    """The run once it has ended; when its approval is waiting, the approver lists and approves it once."""
    deadline = time.monotonic() + timeout
    approved = False
    while time.monotonic() < deadline:
        run: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if run["status"] != "RUNNING":
            return run
        if not approved and _waits_for_token(sfn, execution_arn):
            for approval in pending_approvals(approver, execution_id):
                settle(approver, approval["approval_id"], "approve", "cost measurement", approval["args_sha256"])
                approved = True
        time.sleep(0.05)
    raise CostError(f"execution {execution_id} did not finish in {timeout:.0f}s")


def _waits_for_token(sfn: Any, execution_arn: str) -> bool:
    """Whether the run waits for a person: the gate's task is submitted, i.e. the gate has stored the approval.
    (Read from the run's history, never the approvals table: the measurement's own reads must not count.)"""
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return any(
        event["type"] == "TaskSubmitted" and "waitForTaskToken" in json.dumps(event, default=str)
        for event in history[-6:]
    )


# A run with no person in the loop: the cost of the automated path (an approval adds two API requests).
DEFAULT_REQUESTS = {"doc-review": "doc-review-low-risk.json", "quick-check": "quick-check-request.json"}


def measure_locally(
    workflow: str,
    request: Path | None,
    *,
    runs: int,
    state_dir: Path,
    assembly: Path | None = None,
    synthesize: Callable[[Path], Path] | None = None,
) -> Profile:
    """Stand the template up on a local plane of its own, measure, and stop it. Without ``assembly``,
    ``synthesize`` (the caller's: cost does not import the CDK app) makes one in the state dir."""
    from infra.local.plane import PlaneOptions
    from infra.paths import REPO_ROOT

    if request is None:
        if workflow not in DEFAULT_REQUESTS:
            raise CostError(f"no sample request for {workflow!r}: pass --request FILE")
        request = REPO_ROOT / "events" / DEFAULT_REQUESTS[workflow]
    if not request.is_file():
        raise CostError(f"--request {request}: no such file")
    if runs < 1:
        raise CostError(f"--runs {runs}: measure at least one run")
    if assembly is not None and not assembly.is_dir():
        raise CostError(f"--assembly {assembly}: no such cloud assembly directory")
    if assembly is None:
        if synthesize is None:
            raise CostError("no assembly to measure: pass one, or a way to synthesize it")
        assembly = synthesize(state_dir)
    with LocalPlane(PlaneOptions(assembly_dir=assembly, state_dir=state_dir, fresh=True, schedule_scale=0)) as plane:
        return measure(plane, workflow, request, runs=runs)
