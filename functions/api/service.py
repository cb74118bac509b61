"""The public API's logic: start runs (idempotently), report them with their steps, list capabilities.

No AWS here: the engine, the executions view and the decisions table come in as small ports
(their AWS side is :mod:`functions.api.adapters`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from contracts.capability import CapabilityContract
from contracts.card import AgentProfile, agent_card
from contracts.catalog import WorkflowEntry
from contracts.envelope import TRACE_ID_PATTERN
from contracts.models import MODELS, S3Ref
from contracts.payloads import schema_model
from contracts.registry import Implementation
from functions.api.admission import AdmissionLimit, retry_after_s
from functions.runtime import tracing
from functions.runtime.admission import AdmissionSlots
from functions.runtime.canonical import canonical_json, sha256_hex
from functions.runtime.decisions import DecisionStore, step_name
from functions.runtime.executions import ExecutionItem, ExecutionStore

# Project workflows' input schemas, staged with this code (infra.components.public_api.api_code).
INPUTS_FOLDER = "inputs"
INPUTS_DIR = Path(__file__).parent / INPUTS_FOLDER


class ProblemError(Exception):
    """An RFC 9457 problem: the handler turns it into an application/problem+json response."""

    def __init__(self, status: int, title: str, detail: str, *, kind: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.extensions = extensions

    def body(self, instance: str) -> dict[str, Any]:
        return {
            "type": f"https://agentplane.dev/problems/{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
            **self.extensions,
        }


# Personas that may read any run; a submitter, or a caller with no persona, reads only the runs it started.
READ_ANY_PERSONAS = frozenset({"approver", "auditor", "admin"})
_ASSUMED_ROLE = re.compile(r"^arn:[^:]+:sts::\d{12}:assumed-role/(?P<role>[^/]+)/[^/]+$")


@dataclass(frozen=True)
class Caller:
    """Who signed the request (``requestContext.identity.userArn``) and the persona of the role they assumed."""

    arn: str
    persona: str | None

    def may_read(self, item: ExecutionItem) -> bool:
        return self.persona in READ_ANY_PERSONAS or item.submitted_by == self.arn


def person_of(arn: str) -> str:
    """Who signed, as a person: an assumed role's session name, else the principal's ARN.

    Every persona role requires a source identity and a session named after it (infra.components.personas),
    so one person's sessions of two persona roles share a name, and a caller cannot pick another's.
    """
    assumed = _ASSUMED_ROLE.match(arn)
    return arn.rsplit("/", 1)[1] if assumed else arn


def load_persona_roles(raw: str | None) -> dict[str, str]:
    """The PERSONA_ROLES setting (persona -> role name) the stack writes, as role name -> persona."""
    return {role: persona for persona, role in json.loads(raw or "{}").items()}


def caller_from(identity: Mapping[str, Any] | None, *, persona_roles: Mapping[str, str]) -> Caller:
    """The caller API Gateway authenticated with SigV4; a request with none is refused.

    The persona comes from the role, never from the session name: callers choose their session names.
    """
    arn = (identity or {}).get("userArn")
    if not arn:
        raise ProblemError(401, "Unauthenticated", "this route needs a SigV4-signed request", kind="unauthenticated")
    assumed = _ASSUMED_ROLE.match(arn)
    return Caller(arn=str(arn), persona=persona_roles.get(assumed["role"]) if assumed else None)


@dataclass(frozen=True)
class Workflow:
    name: str
    state_machine_arn: str
    input_model: type[BaseModel]
    ttl_ms: int
    synchronous: bool = False
    # The request goes to the documents bucket and the run carries its reference (claim-check), not the body:
    # a run's state is limited (256 KiB), the bodies the request model accepts are not that small.
    claim_check: bool = False
    # At most this many runs processing at once (functions.api.admission); None admits every valid request.
    admission: AdmissionLimit | None = None


class RequestStore(Protocol):
    """Where claim-checked requests go (the documents bucket): bytes by key."""

    @property
    def bucket(self) -> str: ...

    def put(self, key: str, body: bytes) -> None: ...


def input_model(
    workflow: str, name: str, inputs: Path = INPUTS_DIR, schema: Mapping[str, Any] | None = None
) -> type[BaseModel]:
    """A workflow's input: one of the plane's own types, or a project's, from its schema (the catalog's, or the one
    shipped beside this code)."""
    if name in MODELS:
        return MODELS[name]
    if schema is None:
        schema = json.loads((inputs / f"{workflow}.json").read_text(encoding="utf-8"))
    return schema_model(dict(schema), name=name)


def workflow_of(entry: WorkflowEntry, *, wait_scale: float = 1.0, max_in_flight_cap: int | None = None) -> Workflow:
    """``wait_scale`` is the local plane's scaled clock (:mod:`functions.runtime.clock`); 1.0 on AWS.
    ``max_in_flight_cap`` lowers every admission limit (the local plane's ``PlaneOptions.max_in_flight``); None on AWS.
    """
    limit = entry.max_in_flight
    return Workflow(
        name=entry.name,
        state_machine_arn=entry.state_machine_arn,
        input_model=input_model(entry.name, entry.input_model, schema=entry.input_schema),
        ttl_ms=max(1, round(entry.ttl_ms * wait_scale)),
        synchronous=entry.synchronous,
        claim_check=entry.claim_check,
        admission=AdmissionLimit(
            max_in_flight=min(limit, max_in_flight_cap or limit),
            # The window is processing time, which the local plane's scaled clock does not shrink.
            window_ms=entry.admission_window_ms,
        )
        if limit and entry.admission_window_ms
        else None,
    )


def load_workflows(raw: str, *, wait_scale: float = 1.0, max_in_flight_cap: int | None = None) -> dict[str, Workflow]:
    """The WORKFLOWS setting the stack writes: name -> state machine, input model, time budget, admission limit."""
    return {
        name: workflow_of(
            WorkflowEntry.from_item({**spec, "name": name}), wait_scale=wait_scale, max_in_flight_cap=max_in_flight_cap
        )
        for name, spec in json.loads(raw).items()
    }


class CatalogSource(Protocol):
    """The plane's catalog table: the workflows projects deployed in stacks of their own."""

    def entries(self) -> list[WorkflowEntry]: ...


class WorkflowCatalog(Mapping[str, Workflow]):
    """The workflows this API serves: those its own stack wrote into its settings, and those projects deployed since
    (read from the catalog table, again when a name is not known yet, at most every ``refresh_s``)."""

    def __init__(
        self,
        static: Mapping[str, Workflow],
        source: CatalogSource | None = None,
        *,
        wait_scale: float = 1.0,
        max_in_flight_cap: int | None = None,
        refresh_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._static = dict(static)
        self._found: dict[str, Workflow] = {}
        self._source = source
        self._refresh_s = refresh_s
        self._clock = clock
        self._read_at: float | None = None
        self._wait_scale = wait_scale
        self._max_in_flight_cap = max_in_flight_cap

    def _refresh(self, *, force: bool = False) -> None:
        if self._source is None:
            return
        now = self._clock()
        if not force and self._read_at is not None and now - self._read_at < self._refresh_s:
            return
        if force and self._read_at is not None and now - self._read_at < min(1.0, self._refresh_s):
            return  # a burst of unknown names costs one read, not one each
        self._read_at = now
        self._found = {
            entry.name: workflow_of(entry, wait_scale=self._wait_scale, max_in_flight_cap=self._max_in_flight_cap)
            for entry in self._source.entries()
            if entry.name not in self._static
        }

    def __getitem__(self, name: str) -> Workflow:
        self._refresh()
        if name not in self._static and name not in self._found:
            self._refresh(force=True)
        if name in self._static:
            return self._static[name]
        return self._found[name]

    def __iter__(self) -> Iterator[str]:
        self._refresh()
        return iter({**self._static, **self._found})

    def __len__(self) -> int:
        self._refresh()
        return len({**self._static, **self._found})


@dataclass(frozen=True)
class RunStatus:
    status: str
    output: str | None
    error: str | None
    cause: str | None
    started_at: datetime
    stopped_at: datetime | None


@dataclass(frozen=True)
class RunInput:
    """What a run starts with: its ids, its deadline and the caller's request, inline or claim-checked.

    The request stays the model it was parsed into; :meth:`to_json` writes the state machine's input once.
    """

    workflow: str
    trace_id: str
    traceparent: str
    correlation_id: str  # the execution id, also the execution's name
    submitted_at: str
    deadline: str
    request: BaseModel | None = None
    request_ref: S3Ref | None = None

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "workflow": self.workflow,
            "trace_id": self.trace_id,
            "traceparent": self.traceparent,
            "correlation_id": self.correlation_id,
            "submitted_at": self.submitted_at,
            "deadline": self.deadline,
        }
        if self.request is not None:
            body["request"] = self.request.model_dump(mode="json")
        if self.request_ref is not None:
            body["request_ref"] = self.request_ref.model_dump(mode="json")
        return json.dumps(body)


class WorkflowEngine(Protocol):
    def start(self, *, state_machine_arn: str, run: RunInput) -> str:
        """Start a run (named after its execution id); returns its execution ARN."""
        ...

    def describe(self, execution_arn: str) -> RunStatus: ...


@dataclass(frozen=True)
class Submitted:
    execution_id: str
    trace_id: str
    replayed: bool

    def body(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "trace_id": self.trace_id,
            "status_url": f"/v1/executions/{self.execution_id}",
        }


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [{"field": ".".join(str(p) for p in err["loc"]) or "<body>", "message": err["msg"]} for err in exc.errors()]


def find_workflow(workflows: Mapping[str, Workflow], name: str, *, synchronous: bool) -> Workflow:
    """The named workflow, if it runs the way the route asks; 404 or 409 problems otherwise."""
    workflow = workflows.get(name)
    if workflow is None:
        known = ", ".join(sorted(workflows))
        raise ProblemError(404, "Unknown workflow", f"no workflow named {name!r}; known: {known}", kind="not-found")
    if workflow.synchronous != synchronous:
        route = "invoke" if workflow.synchronous else "executions"
        raise ProblemError(
            409,
            "Wrong route for this workflow",
            f"{name} runs {'synchronously' if workflow.synchronous else 'asynchronously'}: "
            f"POST /v1/workflows/{name}/{route}",
            kind="wrong-route",
        )
    return workflow


def run_input(
    workflow: Workflow,
    request: BaseModel,
    *,
    execution_id: str,
    trace_id: str,
    now: datetime,
    traceparent: str | None = None,
    request_ref: S3Ref | None = None,
) -> RunInput:
    """A run's input: its deadline is the workflow's budget from now; a claim-checked request travels as its
    reference only.

    ``traceparent`` (the API's span) parents every step's span; without one the run still gets a valid
    context in its trace, since every step's envelope reads it.
    """
    return RunInput(
        workflow=workflow.name,
        trace_id=trace_id,
        traceparent=traceparent or tracing.new_traceparent(trace_id),
        correlation_id=execution_id,
        submitted_at=now.isoformat(),
        deadline=(now + timedelta(milliseconds=workflow.ttl_ms)).isoformat(),
        request=None if request_ref is not None else request,
        request_ref=request_ref,
    )


JSON_MEDIA_TYPE = "application/json"


def require_json(content_type: str | None) -> None:
    """A body is JSON only when it says so: the request models validate ``application/json`` bodies, and a run
    must never start from a body no model was asked to check (415 otherwise)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        shown = media_type or "none"
        raise ProblemError(
            415,
            "Unsupported media type",
            f"send the body as {JSON_MEDIA_TYPE} (Content-Type {shown} is not accepted)",
            kind="unsupported-media-type",
        )


_XRAY_TRACE_ID = re.compile(TRACE_ID_PATTERN)


def xray_root(header: str) -> str | None:
    """The Root of an ``X-Amzn-Trace-Id`` header when it is a trace id; a malformed header is ignored."""
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Root" and _XRAY_TRACE_ID.fullmatch(value):
            return value
    return None


# The reserved "workflow" under which a trace is claimed by its first run (workflow names are kebab-case).
TRACE_CLAIM = "(trace)"


def own_trace(
    requested: str | None, *, execution_id: str, executions: ExecutionStore, new_trace: Callable[[], str]
) -> str:
    """The trace a new run records in: the caller's (``requested``) if no run has it yet, else one of its own.

    A trace holds one run, so a caller reusing a trace id (or guessing another's) cannot join unrelated runs
    into one audit lineage; the caller's trace still parents the first run it sends.
    """
    if requested is None:
        return new_trace()
    if executions.claim_key(TRACE_CLAIM, requested, execution_id=execution_id, request_sha256="") is None:
        return requested
    return new_trace()


def give_back_trace(requested: str | None, trace_id: str, *, executions: ExecutionStore) -> None:
    """A request that started no run of its own (refused, invalid, or an idempotent replay) gives back the caller's
    trace it claimed, so the caller's retry still continues its trace."""
    if requested is not None and trace_id == requested:
        executions.release_key(TRACE_CLAIM, requested)


REQUESTS_PREFIX = "documents/requests/"


def claim_check(request_json: str, request_sha256: str, requests: RequestStore | None) -> S3Ref:
    """Store the canonical request under its digest and return the reference the run carries."""
    if requests is None:
        raise RuntimeError("this workflow claim-checks its requests but the API has no documents bucket")
    body = request_json.encode("utf-8")
    key = f"{REQUESTS_PREFIX}{request_sha256}.json"
    requests.put(key, body)
    return S3Ref(bucket=requests.bucket, key=key, sha256=request_sha256, size_bytes=len(body))


def parse_body(raw: str | None, model: type[BaseModel]) -> BaseModel:
    if not raw:
        raise ProblemError(400, "Request body required", "send a JSON object", kind="bad-request")
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProblemError(
            400, "Malformed JSON", f"body is not JSON: {exc.msg} at {exc.pos}", kind="bad-request"
        ) from None
    except RecursionError:
        raise ProblemError(
            400, "Malformed JSON", "body nests deeper than a JSON parser follows", kind="bad-request"
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        first = errors[0]
        raise ProblemError(
            400,
            "Invalid request body",
            f"{first['field']}: {first['message']}",
            kind="validation",
            errors=errors,
        ) from None


class AtCapacityError(ProblemError):
    """The workflow admitted all it can finish for now: the caller retries after ``retry_after`` seconds."""

    def __init__(self, workflow: str, retry_after: int) -> None:
        super().__init__(
            503,
            "At capacity",
            f"{workflow} is running all the runs it can finish within its budgets; retry in {retry_after} s",
            kind="at-capacity",
            retry_after_s=retry_after,
        )
        self.retry_after = retry_after


def admit(workflow: Workflow, execution_id: str, *, slots: AdmissionSlots | None, now: datetime) -> None:
    """Hold a slot for the new run until it leaves processing (at the latest its deadline), or refuse it (503)."""
    limit = workflow.admission
    if limit is None or slots is None:
        return
    now_ms = round(now.timestamp() * 1000)
    if not slots.admit(workflow.name, execution_id, now_ms=now_ms, lease_ms=workflow.ttl_ms, limit=limit.max_in_flight):
        raise AtCapacityError(workflow.name, retry_after_s(limit))


def submit(
    workflow_name: str,
    raw_body: str | None,
    *,
    idempotency_key: str | None,
    trace_id: str,
    workflows: Mapping[str, Workflow],
    engine: WorkflowEngine,
    executions: ExecutionStore,
    now: datetime,
    new_id: Callable[[], str],
    caller: Caller | None = None,
    traceparent: str | None = None,
    requests: RequestStore | None = None,
    admission: AdmissionSlots | None = None,
) -> Submitted:
    workflow = find_workflow(workflows, workflow_name, synchronous=False)
    request = parse_body(raw_body, workflow.input_model)
    request_json = canonical_json(request.model_dump(mode="json"))
    request_sha256 = sha256_hex(request_json.encode())
    execution_id = new_id()
    if idempotency_key is not None:
        owner = executions.claim_key(
            workflow.name, idempotency_key, execution_id=execution_id, request_sha256=request_sha256
        )
        if owner is not None:
            owner_id, owner_sha = owner
            if owner_sha != request_sha256:
                raise ProblemError(
                    422,
                    "Idempotency key reused",
                    "this Idempotency-Key was used with a different request body",
                    kind="idempotency-key-reused",
                )
            existing = executions.get(owner_id)
            if existing is not None and existing.submitted_by != (caller.arn if caller else None):
                # Another caller's key: their run is not this caller's to learn about.
                raise ProblemError(
                    422,
                    "Idempotency key reused",
                    "this Idempotency-Key was used by another caller",
                    kind="idempotency-key-reused",
                )
            return Submitted(execution_id=owner_id, trace_id=existing.trace_id if existing else trace_id, replayed=True)
    try:
        admit(workflow, execution_id, slots=admission, now=now)  # after the replay check: a retry is answered
    except AtCapacityError:
        if idempotency_key is not None:
            executions.release_key(workflow.name, idempotency_key)  # the refused request may be sent again
        raise
    run = run_input(
        workflow,
        request,
        execution_id=execution_id,
        trace_id=trace_id,
        now=now,
        traceparent=traceparent,
        request_ref=claim_check(request_json, request_sha256, requests) if workflow.claim_check else None,
    )
    try:
        execution_arn = engine.start(state_machine_arn=workflow.state_machine_arn, run=run)
    except Exception:
        if idempotency_key is not None:
            executions.release_key(workflow.name, idempotency_key)
        if admission is not None and workflow.admission is not None:
            admission.release(workflow.name, execution_id)  # the run never started: its slot is free
        raise
    executions.put(
        ExecutionItem(
            execution_id=execution_id,
            workflow=workflow.name,
            execution_arn=execution_arn,
            trace_id=trace_id,
            submitted_at=now.isoformat(),
            request_sha256=request_sha256,
            idempotency_key=idempotency_key,
            submitted_by=caller.arn if caller else None,
        )
    )
    return Submitted(execution_id=execution_id, trace_id=trace_id, replayed=False)


# The longest a status read may wait for its run to end: below API Gateway's 29 s integration timeout (and the API
# function's, the same), with room for the read itself.
MAX_WAIT_S = 20
WAIT_FIRST_CHECK_S = 0.05  # the first re-check of a running run; each next one waits twice as long, up to
WAIT_LONGEST_CHECK_S = 1.0


def wait_seconds(raw: str | None) -> float:
    """The ``wait`` query parameter: seconds (0 to :data:`MAX_WAIT_S`) a status read may hold for its run to end."""
    if raw is None or raw == "":
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT_S:  # NaN fails this too
        raise ProblemError(
            400, "Bad wait", f"wait must be a number of seconds from 0 to {MAX_WAIT_S}, got {raw!r}", kind="bad-request"
        )
    return seconds


def settled(
    read: Callable[[], RunStatus],
    *,
    wait_s: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> RunStatus:
    """The run's status once it has left RUNNING, or as it stands when ``wait_s`` has passed (at once for 0).

    Each check reads only the run's status; re-checks back off from :data:`WAIT_FIRST_CHECK_S` to
    :data:`WAIT_LONGEST_CHECK_S` and never sleep past the deadline."""
    deadline = clock() + wait_s
    pause = WAIT_FIRST_CHECK_S
    while True:
        run = read()
        left = deadline - clock()
        if run.status != "RUNNING" or left <= 0:
            return run
        sleep(min(pause, left))
        pause = min(pause * 2, WAIT_LONGEST_CHECK_S)


def describe(
    execution_id: str,
    *,
    engine: WorkflowEngine,
    executions: ExecutionStore,
    decisions: DecisionStore,
    reader: Caller | None = None,
    wait_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """A run as its reader may see it. ``reader`` None is a trusted internal read (no object-level check).

    With ``wait_s``, a running run is re-checked (its status only) until it ends or that long has passed; its steps
    and record are read once, for the answer. A run the reader may not read is reported exactly like one that does
    not exist.
    """
    item = executions.get(execution_id)
    if item is None or (reader is not None and not reader.may_read(item)):
        raise ProblemError(404, "Unknown execution", f"no execution {execution_id!r}", kind="not-found")
    arn = item.execution_arn
    run = settled(lambda: engine.describe(arn), wait_s=wait_s, clock=clock, sleep=sleep)
    if wait_s and run.status != "RUNNING":
        item = executions.get(execution_id) or item  # the recorder may have written the decision meanwhile
    steps = [
        {
            "step": step_name(r.step_key, execution_id),
            "agent": r.agent,
            "agent_version": r.agent_version,
            "function_version": r.function_version,
            "capability": r.capability,
            "capability_version": r.capability_version,
            "status": r.status,
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat(),
            "duration_ms": round(r.duration_ms, 3),
            "actor": r.actor,
            "input_sha256": r.input_sha256,
            "output_sha256": r.output_sha256,
            **({"error": {"type": r.error_type, "message": r.error_message}} if r.status == "FAILED" else {}),
            **({"route": json.loads(r.route_json)} if r.route_json else {}),
        }
        for r in decisions.list(execution_id)
    ]
    body: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow": item.workflow,
        "status": run.status,
        "trace_id": item.trace_id,
        "submitted_at": item.submitted_at,
        "submitted_by": item.submitted_by,
        "started_at": run.started_at.isoformat(),
        "stopped_at": run.stopped_at.isoformat() if run.stopped_at else None,
        "output": json.loads(run.output) if run.output else None,
        "error": {"error": run.error, "cause": run.cause} if run.error else None,
        "decision": item.decision.model_dump(mode="json") if item.decision else None,
        "steps": steps,
    }
    return body


def _implementation_view(implementation: Implementation) -> dict[str, Any]:
    health = implementation.health
    circuit = implementation.circuit
    return {
        "implementation": implementation.name,
        "variant": implementation.variant,
        "contract_version": implementation.contract_version,
        "runtime": implementation.runtime,
        "target": implementation.target,
        "published_version": implementation.published_version or None,
        "deployment_group": implementation.deployment_group or None,
        "health": {
            "samples": health.samples,
            "p50_ms": health.p50_ms,
            "p95_ms": health.p95_ms,
            "error_rate": health.error_rate,
            "last_heartbeat": health.last_heartbeat.isoformat() if health.last_heartbeat else None,
        },
        "circuit": {
            "state": circuit.state,
            "reason": circuit.reason,
            "opened_at": circuit.opened_at.isoformat() if circuit.opened_at else None,
        },
    }


def capabilities(
    contracts: Mapping[str, CapabilityContract], registry: Sequence[Implementation] = (), *, base_url: str = ""
) -> dict[str, Any]:
    """Each agent with its A2A Agent Card (``base_url``: where callers reach this plane) and the registry's entries
    for it: where it runs, how healthy, whether its circuit is open. The contracts this API ships, and every other
    agent the registry holds (a project's), from the profile its entry carries."""
    profiles = {name: AgentProfile.of(c) for name, c in contracts.items()}
    for implementation in registry:
        if implementation.profile is not None and implementation.variant == "primary":
            profiles.setdefault(implementation.agent, implementation.profile)
    return {
        "capabilities": [
            {
                "name": p.name,
                "version": p.version,
                "description": p.description,
                "capabilities": list(p.capabilities),
                "runtime": p.runtime,
                "io": {"input": p.input, "output": p.output},
                "side_effects": p.side_effects,
                "slo": p.slo,
                "fallback": list(p.fallback),
                "implementations": [_implementation_view(i) for i in registry if i.agent == p.name],
                "card": agent_card(p, url=base_url),
            }
            for p in profiles.values()
        ]
    }
