"""Every moto (and botocore) internal the local plane patches, in one list: the target, why, and the version it
was checked against. The plane's parts apply and restore their patches only through :func:`apply`.

moto has no extension points for what the plane needs of it (functions in their own processes, deliveries
with retries and faults, IAM decided per function, scaled waits), so the plane replaces a few of its
internals while it runs and puts them back when it stops. A new moto may rename or reshape any of them:
``tests/unit/test_moto_seam.py`` fails, naming the entry, when a target is gone, its parameters changed, or the
installed version is not the one recorded here (re-check each entry, then update :data:`CHECKED_AGAINST`).
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any, Literal

CHECKED_AGAINST = {"moto": "5.2.5", "botocore": "1.44.5"}  # uv.lock's pins

# replace: an attribute swapped for ours; add: one moto lacks, removed again; prepend/append: an item put in a
# moto list (its URL routing), taken out again.
Kind = Literal["replace", "add", "prepend", "append"]


@dataclass(frozen=True)
class Patch:
    module: str
    attribute: str  # "Class.member", or a name in the module
    why: str
    # The parameter names the replacement was written for; None where the target is not a function.
    parameters: tuple[str, ...] | None = None
    kind: Kind = "replace"

    @property
    def target(self) -> str:
        return f"{self.module}:{self.attribute}"

    def owner(self) -> Any:
        """The module or class that holds the attribute."""
        owner: Any = importlib.import_module(self.module)
        for part in self.attribute.split(".")[:-1]:
            owner = getattr(owner, part)
        return owner

    @property
    def name(self) -> str:
        return self.attribute.rsplit(".", 1)[-1]


_SFN_PARSER = "moto.stepfunctions.parser.asl.component"
_JOURNALED = ": the plane journals it in the state dir before answering, so a restarted plane resumes it"
PATCHES: dict[str, Patch] = {
    "lambda.invoke": Patch(
        "moto.awslambda.models",
        "LambdaFunction._invoke_lambda",
        "moto runs a function in Docker or not at all; the plane runs it in its own process, with its role, "
        "timeout, memory and faults (infra/local/lambdas.py)",
        ("self", "event"),
    ),
    "lambda.alias_routing": Patch(
        "moto.awslambda.models",
        "LambdaStorage.get_function_by_name_with_qualifier",
        "moto ignores an alias's routing config; a canary needs the weighted version (infra/local/rollout.py)",
        ("self", "name", "qualifier"),
    ),
    "events.send_to_targets": Patch(
        "moto.events.models",
        "Rule.send_to_targets",
        "moto invokes Lambda targets inline without retries or dead-letter queues; the plane delivers them "
        "asynchronously with the target's retry policy and faults (infra/local/events.py)",
        ("self", "original_event", "transform_input"),
    ),
    "sqs.add_message": Patch(
        "moto.sqs.models",
        "Queue.add_message",
        "the plane polls the queues agents drain (moto would invoke inside SendMessage, one message a batch); "
        "a new message wakes the queue's poller (infra/local/queues.py)",
        ("self", "message"),
    ),
    "dynamodb.transact_write_items": Patch(
        "moto.dynamodb.models",
        "DynamoDBBackend.transact_write_items",
        "moto deep-copies every table a transaction touches, so each ledger append costs time in the ledger's "
        "size; the plane's snapshot copies only the items the transaction names (infra/local/dynamodb.py)",
        ("self", "transact_items"),
    ),
    "dynamodb.copy": Patch(
        "moto.dynamodb.models",
        "copy",
        "the module moto's transactions deep-copy tables with; replaced by the shim that copies only the named "
        "items (infra/local/dynamodb.py)",
    ),
    "dynamodb.query": Patch(
        "moto.dynamodb.models.table",
        "Table.query",
        "moto answers a query on a table's key by sorting every item of the table, so each run cost more than the "
        "last; the plane hands it the queried partition only, as DynamoDB reads it (infra/local/dynamodb.py)",
        (
            "self",
            "hash_key",
            "range_comparison",
            "range_objs",
            "limit",
            "exclusive_start_key",
            "scan_index_forward",
            "projection_expressions",
            "index_name",
            "consistent_read",
            "filter_expression",
            "hash_key_conditions",
            "range_key_conditions",
            "filter_kwargs",
        ),
    ),
    "stepfunctions.parse_definition": Patch(
        "moto.stepfunctions.parser.backend.execution_worker",
        "ExecutionWorker._get_evaluation_entrypoint",
        "moto parses a definition with ANTLR at the start of every execution (doc-review's: ~0.3 s of CPU); the "
        "plane parses each definition once (infra/local/interpreter.py)",
        ("self",),
    ),
    "stepfunctions.json_path_parse": Patch(
        "moto.stepfunctions.parser.asl.utils.json_path",
        "parse",
        "moto builds a JSONPath parser for every path it evaluates (~1 ms each); the plane compiles each path "
        "once (infra/local/interpreter.py)",
        ("path", "debug"),
    ),
    "stepfunctions.result_path_parse": Patch(
        f"{_SFN_PARSER}.common.path.result_path",
        "parse",
        "the same JSONPath parser, for ResultPath (infra/local/interpreter.py)",
        ("string",),
    ),
    "stepfunctions.map_iteration_error": Patch(
        f"{_SFN_PARSER}.state.exec.state_map.iteration.iteration_worker",
        "CustomErrorName",
        'moto re-raises a failed Map iteration\'s error as a custom name, which refuses the reserved "States." '
        "names: a States.Timeout inside an iteration became States.Runtime, past the Map's Catch; Step Functions "
        "passes the name on (infra/local/interpreter.py)",
        ("error_name",),
    ),
    "dynamodb.stream_add": Patch(
        "moto.dynamodb.models.table",
        "StreamShard.add",
        "moto delivers each write to stream consumers synchronously, one record a call, ignoring the answer; "
        "the plane delivers batches asynchronously as the mapping says (infra/local/streams.py)",
        ("self", "old", "new"),
    ),
    "iam.authorize": Patch(
        "moto.core.authorization",
        "ActionAuthenticatorMixin._authenticate_and_authorize_action",
        "moto evaluates most actions against the resource *, which never matches a policy scoped to one "
        "table or bus; the plane names each request's resource for moto's evaluator, for the functions' "
        "calls only (infra/local/iam.py)",
        ("self", "iam_request_cls", "resource"),
    ),
    "sagemaker.invoke_endpoint": Patch(
        "moto.sagemakerruntime.responses",
        "SageMakerRuntimeResponse.invoke_endpoint",
        "moto answers InvokeEndpoint with canned output; the plane forwards it to the container's app "
        "(infra/local/sagemaker.py)",
        ("self",),
    ),
    "stepfunctions.start_execution": Patch(
        "moto.stepfunctions.parser.models",
        "StepFunctionsParserBackend.start_execution",
        "moto does not route a run started through a state machine alias by its weights (infra/local/stepfunctions.py)",
        ("self", "state_machine_arn", "name", "execution_input", "trace_header"),
    ),
    "stepfunctions.start_sync_execution": Patch(
        "moto.stepfunctions.responses",
        "StepFunctionResponse.start_sync_execution",
        "moto has no StartSyncExecution (Express workflows) (infra/local/stepfunctions.py)",
        kind="add",
    ),
    "stepfunctions.sync_url_base": Patch(
        "moto.stepfunctions.urls",
        "url_bases",
        "boto3 sends StartSyncExecution to the sync-states host, which moto's Step Functions must answer",
        kind="append",
    ),
    "stepfunctions.sync_url_pattern": Patch(
        "moto.backend_index",
        "backend_url_patterns",
        "moto's server finds the backend of a request by host: the sync-states host goes to Step Functions",
        kind="prepend",
    ),
    "stepfunctions.task_token_timeout": Patch(
        f"{_SFN_PARSER}.state.exec.execute_state",
        "ExecutionState._evaluate_with_timeout",
        "a task token's declared window lasts PlaneOptions.wait_scale of its time (infra/local/waits.py)",
        ("self", "env"),
    ),
    "stepfunctions.workflow_timeout": Patch(
        f"{_SFN_PARSER}.program.program",
        "Program.eval",
        "a workflow's TimeoutSeconds lasts PlaneOptions.wait_scale of its time (infra/local/waits.py)",
        ("self", "env"),
    ),
    "server.backend_for_host": Patch(
        "moto.moto_server.werkzeug_app",
        "DomainDispatcherApplication.get_backend_for_host",
        "moto's server finds a request's backend by listing its own package folder and trying every service's URL "
        "patterns (~0.5 ms of CPU); the function processes send every AWS call through it, and the answer depends "
        "on the host alone, so the plane keeps it per host (infra/local/plane.py)",
        ("self", "host"),
    ),
    "stepfunctions.retry_clock": Patch(
        f"{_SFN_PARSER}.common.retry.retrier_decl",
        "time",
        "the one place moto's interpreter sleeps between retries: its clock is scaled, the backoff's shape kept "
        "(infra/local/plane.py)",
    ),
    "dynamodb.put_item": Patch(
        "moto.dynamodb.models",
        "DynamoDBBackend.put_item",
        f"an item written{_JOURNALED}",
        (
            "self",
            "table_name",
            "item_attrs",
            "expected",
            "condition_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "overwrite",
            "return_values_on_condition_check_failure",
        ),
    ),
    "dynamodb.update_item": Patch(
        "moto.dynamodb.models",
        "DynamoDBBackend.update_item",
        f"an item updated{_JOURNALED}",
        (
            "self",
            "table_name",
            "key",
            "update_expression",
            "expression_attribute_names",
            "expression_attribute_values",
            "attribute_updates",
            "expected",
            "condition_expression",
            "return_values_on_condition_check_failure",
        ),
    ),
    "dynamodb.delete_item": Patch(
        "moto.dynamodb.models",
        "DynamoDBBackend.delete_item",
        f"an item deleted{_JOURNALED}",
        (
            "self",
            "table_name",
            "key",
            "expression_attribute_names",
            "expression_attribute_values",
            "condition_expression",
            "return_values_on_condition_check_failure",
        ),
    ),
    "s3.put_object": Patch(
        "moto.s3.models",
        "S3Backend.put_object",
        f"an object stored{_JOURNALED}",
        (
            "self",
            "bucket_name",
            "key_name",
            "value",
            "storage",
            "etag",
            "multipart",
            "encryption",
            "kms_key_id",
            "bucket_key_enabled",
            "lock_mode",
            "lock_legal_status",
            "lock_until",
            "checksum_value",
            "request_method",
            "disable_notification",
        ),
    ),
    "s3.delete_object": Patch(
        "moto.s3.models",
        "S3Backend.delete_object",
        f"an object deleted{_JOURNALED}",
        ("self", "bucket_name", "key_name", "version_id", "bypass"),
    ),
    "sqs.delete_message": Patch(
        "moto.sqs.models",
        "Queue.delete_message",
        f"a message deleted{_JOURNALED}",
        ("self", "receipt_handle"),
    ),
    "stepfunctions.execution_terminated": Patch(
        "moto.stepfunctions.parser.backend.execution",
        "BaseExecutionWorkerCommunication.terminated",
        f"a run's end{_JOURNALED}",
        ("self",),
    ),
    "botocore.make_api_call": Patch(
        "botocore.client",
        "BaseClient._make_api_call",
        "botocore's one call method: the cost measurement counts the plane's own AWS calls there "
        "(infra/cost/measure.py)",
        ("self", "operation_name", "api_params"),
    ),
}

_MISSING = object()
_lock = threading.Lock()
_active: list[Applied] = []


class SeamError(RuntimeError):
    """A patch that cannot be applied as recorded."""


@dataclass
class Applied:
    """One patch in place; :meth:`restore` puts moto back as it was (once)."""

    patch: Patch
    original: Any
    value: Any

    def restore(self) -> None:
        with _lock:
            if self not in _active:
                return
            _active.remove(self)
            owner = self.patch.owner()
            if self.patch.kind in ("prepend", "append"):
                items = getattr(owner, self.patch.name)
                if self.value in items:
                    items.remove(self.value)
            elif self.original is _MISSING:
                delattr(owner, self.patch.name)
            else:
                setattr(owner, self.patch.name, self.original)


def original(name: str) -> Any:
    """What the target holds now (moto's own, unless patched): what a replacement calls through to."""
    patch = PATCHES[name]
    return getattr(patch.owner(), patch.name)


def apply(name: str, value: Any) -> Applied:
    """Put ``value`` in place of the target of patch ``name`` (or into it, for a list)."""
    patch = PATCHES[name]
    owner = patch.owner()
    with _lock:
        found = getattr(owner, patch.name, _MISSING)
        if patch.kind in ("prepend", "append"):
            if not isinstance(found, list):
                raise SeamError(f"{patch.target} is no longer a list")
            found.insert(0 if patch.kind == "prepend" else len(found), value)
        elif patch.kind == "add":
            if found is not _MISSING:
                raise SeamError(f"{patch.target} exists now: moto has its own, retire this patch")
            setattr(owner, patch.name, value)
        else:
            if found is _MISSING:
                raise SeamError(f"{patch.target} is gone")
            setattr(owner, patch.name, value)
        applied = Applied(patch, found, value)
        _active.append(applied)
    return applied


class Patches:
    """The patches one part of the plane holds; :meth:`restore` undoes them, the newest first."""

    def __init__(self) -> None:
        self._applied: list[Applied] = []

    def apply(self, name: str, value: Any) -> None:
        self._applied.append(apply(name, value))

    def restore(self) -> None:
        while self._applied:
            self._applied.pop().restore()

    def __bool__(self) -> bool:
        return bool(self._applied)


def active() -> list[str]:
    """The names of the patches in place now."""
    with _lock:
        return [name for applied in _active for name, patch in PATCHES.items() if patch is applied.patch]
