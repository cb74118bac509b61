"""Workflow spec: a workflow as data, its steps named by capability, never by function.

One YAML file per workflow (``contracts/workflows/*.yaml`` here; ``workflows/`` beside ``agents/`` in any project) is
validated by :class:`WorkflowSpec`. ``infra.workflows.compiler`` resolves each capability through the contracts and
builds the Step Functions definition; ``infra.workflows.check`` holds a spec against the contracts (capabilities,
types flowing from one step's output into the next one's input).

A step is a mapping whose kind is its one kind key, the key's value being the step's id (its state name):
``{task: Intake, capability: document-intake, ...}``. A new kind is a model here (with ``kind``), one more member of
:data:`Step`, and its builder in the compiler.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from contracts import payloads
from contracts.capability import DEFAULT_ROLLOUT, DETAIL_TYPE_PATTERN, KEBAB_PATTERN, VERSION_RANGE_PATTERN, Rollout
from contracts.loader import DOCUMENT, ContractError, Roots, resolve_types, validate_file

WORKFLOWS_DIR = Path(__file__).parent / "workflows"
# A state name: what the run's history, traces and decision records call the step.
STEP_ID_PATTERN = r"^[A-Z][A-Za-z0-9]*$"
# A reference into the run's state (``$.intake.claims``), the whole state (``$``) or the context (``$$.Map.Item``).
STATE_PATH_PATTERN = r"^\$\$?(\.[A-Za-z_][A-Za-z0-9_]*)*$"
ERROR_NAME_PATTERN = r"^[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)?$"
_INTRINSIC = re.compile(r"^States\.[A-Z][A-Za-z]*\(")
# Express runs last at most five minutes (Step Functions' limit).
EXPRESS_MAX_S = 300
# The names the compiled failure path takes: no step may use them.
FAILURE_PATH_STATES = ("HasCause", "NameTheCause", "ReservedErrorName", "UnreservedErrorName", "Failed")

Kebab = Annotated[str, Field(pattern=KEBAB_PATTERN)]
StepId = Annotated[str, Field(pattern=STEP_ID_PATTERN, max_length=80)]
StatePath = Annotated[str, Field(pattern=STATE_PATH_PATTERN)]
ErrorName = Annotated[str, Field(pattern=ERROR_NAME_PATTERN)]


def is_reference(value: object) -> bool:
    """Whether a spec value is read from the run (a state path or an intrinsic function), not a literal."""
    return isinstance(value, str) and (bool(re.match(STATE_PATH_PATTERN, value)) or bool(_INTRINSIC.match(value)))


def _known_model(name: str | None) -> str | None:
    if name is not None and not payloads.known(name):
        raise ValueError(payloads.unknown(name))
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Strict):
    """One more retrier after the plane's own (transient Lambda errors, full jitter)."""

    errors: list[ErrorName] = Field(min_length=1)
    interval_s: int = Field(default=1, ge=1)
    max_attempts: int = Field(default=3, ge=0)
    backoff: float = Field(default=2.0, ge=1)
    max_delay_s: int | None = Field(default=None, ge=1)


class Catch(_Strict):
    """Errors handled here: the error goes to ``result``, ``steps`` run, then the sequence goes on after the step."""

    errors: list[ErrorName] = Field(min_length=1)
    result: StatePath = "$.error"
    steps: list[Step] = Field(default_factory=list)


class Fallback(_Strict):
    """Another implementation of the step's capability, from the contract's own ``fallback`` list.

    On ``errors`` (unset: the plane's fallback errors: throttling, model and endpoint errors, timeouts, transient Lambda
    errors) the fallback runs with the same input and result; its ``then`` steps run, and the sequence goes on.
    """

    id: StepId
    errors: list[ErrorName] | None = None
    error_result: StatePath = Field(description="Where the primary's error goes (what ``then`` can report).")
    then: list[Step] = Field(default_factory=list)


class _Handled(_Strict):
    retry: list[Retry] = Field(default_factory=list)
    catch: list[Catch] = Field(default_factory=list)


class TaskStep(_Handled):
    """One call of a capability: the contract serving it is found by capability (and version range), never named."""

    kind: ClassVar[str] = "task"
    task: StepId
    capability: Kebab
    version: str | None = Field(
        default=None, pattern=VERSION_RANGE_PATTERN, description='Range of versions ("1.x"); unset: any.'
    )
    via: Literal["direct", "registry"] = Field(
        default="direct",
        description="direct: the implementation resolved at synth; registry: the dispatcher picks a healthy one "
        "at run time and follows the contract's fallback (raises Escalated when only a person is left).",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The payload: literals and state paths.")
    result: StatePath = "$"
    timeout_s: int | None = Field(default=None, ge=1, description="Unset: the contract's timeout.")
    fallback: Fallback | None = None
    then: list[Step] = Field(
        default_factory=list,
        description="Steps only a success runs, before the sequence goes on (catch and fallback paths skip them).",
    )


class MapStep(_Handled):
    """The ``steps`` once per item of the list at ``items``, up to ``concurrency`` at once; results in order."""

    kind: ClassVar[str] = "map"
    map: StepId
    items: StatePath
    item: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$")] = Field(
        default="item", description="The name each item has in its iteration's state ($.<item>)."
    )
    carry: dict[str, StatePath] = Field(
        default_factory=dict, description="More of the run's state each iteration sees (the run's ids always)."
    )
    concurrency: int = Field(default=0, ge=0, description="0: no limit.")
    steps: list[Step] = Field(min_length=1)
    result: StatePath = "$"


class ParallelStep(_Handled):
    """Every branch at once; the result is the list of the branches' outputs."""

    kind: ClassVar[str] = "parallel"
    parallel: StepId
    branches: list[list[Step]] = Field(min_length=2)
    result: StatePath = "$"

    @field_validator("branches")
    @classmethod
    def _no_empty_branch(cls, branches: list[list[Step]]) -> list[list[Step]]:
        if any(not branch for branch in branches):
            raise ValueError("every branch needs at least one step")
        return branches


class Case(_Strict):
    """One branch of a choice: exactly one of ``equals`` and ``matches`` (a pattern with ``*``)."""

    equals: str | int | float | bool | None = None
    matches: str | None = None
    steps: list[Step] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_test(self) -> Case:
        if (self.equals is None) == (self.matches is None):
            raise ValueError("give exactly one of equals and matches")
        return self


class ChoiceStep(_Strict):
    """The first case whose test the value at ``field`` passes runs, else ``default``; then the sequence goes on."""

    kind: ClassVar[str] = "choice"
    choice: StepId
    field: StatePath
    cases: list[Case] = Field(min_length=1)
    default: list[Step] = Field(default_factory=list)


class Escalation(_Strict):
    """What happens when the approval window closes with nobody's decision."""

    id: StepId
    action: Literal["continue", "fail"] = Field(
        default="continue",
        description='continue: the run goes on with {decision: "timeout"} as the approval; fail: the run fails '
        "(ApprovalTimedOut), recorded like any failure.",
    )
    steps: list[Step] = Field(default_factory=list, description="Run after the escalation, when it continues.")


class ApprovalStep(_Strict):
    """The run waits for a person (a task token the approval gate keeps) for at most ``window_s``."""

    kind: ClassVar[str] = "approval"
    approval: StepId
    who: Kebab = Field(default="approver", description="The persona whose members may decide.")
    window_s: int = Field(ge=1, le=365 * 24 * 3600)
    subject: dict[str, Any] = Field(min_length=1, description="What the person reviews (its digest is recorded).")
    policy_version: str = Field(description="The policy that asked for the approval: a literal or a state path.")
    result: StatePath = "$.approval"
    escalation: Escalation


class ToolApproval(_Strict):
    """Who approves an agent's external-action tool calls, how long each waits, and how many one step may ask for."""

    who: Kebab = Field(default="approver", description="The persona whose members may decide.")
    window_s: int = Field(ge=1, le=365 * 24 * 3600)
    max_calls: int = Field(
        default=1,
        ge=1,
        le=20,
        description="Approvals the step may wait for; a call past them is refused to the model (a tool error).",
    )


class AgentStep(_Handled):
    """An llm agent's tool-use loop as a durable step: its external-action tool calls wait for a person.

    The loop runs in the agent's function until it answers or asks for a tool whose contract has
    ``side_effects: external-action``; then it pauses (its conversation stored, a checkpoint in the run's state),
    the approval gate holds the call for ``approval.who``, and the loop resumes with the decision: an approved call
    runs with exactly the arguments reviewed, a rejected or unanswered one is a tool error the model reads.
    """

    kind: ClassVar[str] = "agent"
    agent: StepId
    capability: Kebab
    version: str | None = Field(
        default=None, pattern=VERSION_RANGE_PATTERN, description='Range of versions ("1.x"); unset: any.'
    )
    input: dict[str, Any] = Field(default_factory=dict, description="The payload: literals and state paths.")
    result: StatePath = "$"
    timeout_s: int | None = Field(default=None, ge=1, description="Each round of the loop; unset: the contract's.")
    approvals: ToolApproval | None = Field(
        default=None, description="Required when any of the agent's tools has external side effects."
    )

    @property
    def waits_s(self) -> int:
        """The longest the step may wait for people: every approval it may ask for, each its whole window."""
        return 0 if self.approvals is None else self.approvals.window_s * self.approvals.max_calls


class EmitStep(_Strict):
    """An event on the plane's bus (source ``agentplane``); subscribers of its detail-type run on it."""

    kind: ClassVar[str] = "emit"
    emit: StepId
    detail_type: str = Field(pattern=DETAIL_TYPE_PATTERN)
    detail: dict[str, Any] = Field(min_length=1)


class SetStep(_Strict):
    """Put a value into the run's state (at ``result``; unset: the value becomes the state)."""

    kind: ClassVar[str] = "set"
    set: StepId
    value: dict[str, Any]
    result: StatePath | None = None
    model: str | None = Field(default=None, description="The payload model the value is (checked, and typed).")

    @field_validator("model")
    @classmethod
    def _known(cls, name: str | None) -> str | None:
        return _known_model(name)


class SucceedStep(_Strict):
    kind: ClassVar[str] = "succeed"
    succeed: StepId


class FailStep(_Strict):
    kind: ClassVar[str] = "fail"
    fail: StepId
    error: ErrorName
    cause: str = Field(min_length=1, max_length=1000)


STEP_KINDS = ("task", "agent", "map", "parallel", "choice", "approval", "emit", "set", "succeed", "fail")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [kind for kind in STEP_KINDS if kind in value]
        return kinds[0] if len(kinds) == 1 else None
    return getattr(value, "kind", None)


Step = Annotated[
    Annotated[TaskStep, Tag("task")]
    | Annotated[AgentStep, Tag("agent")]
    | Annotated[MapStep, Tag("map")]
    | Annotated[ParallelStep, Tag("parallel")]
    | Annotated[ChoiceStep, Tag("choice")]
    | Annotated[ApprovalStep, Tag("approval")]
    | Annotated[EmitStep, Tag("emit")]
    | Annotated[SetStep, Tag("set")]
    | Annotated[SucceedStep, Tag("succeed")]
    | Annotated[FailStep, Tag("fail")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message=f"a step has exactly one kind key: one of {', '.join(STEP_KINDS)}",
    ),
]
AnyStep = (
    TaskStep
    | AgentStep
    | MapStep
    | ParallelStep
    | ChoiceStep
    | ApprovalStep
    | EmitStep
    | SetStep
    | SucceedStep
    | FailStep
)


def step_id(step: AnyStep) -> str:
    return str(getattr(step, step.kind))


def children(step: AnyStep) -> Iterator[tuple[str, list[AnyStep]]]:
    """Each nested sequence of a step, with its name: ``catch[0]``, ``fallback``, ``cases[1]``, ``branches[0]``..."""
    if isinstance(step, TaskStep | AgentStep | MapStep | ParallelStep):
        for index, catch in enumerate(step.catch):
            yield f"catch[{index}]", list(catch.steps)
    if isinstance(step, TaskStep):
        yield "then", list(step.then)
        if step.fallback is not None:
            yield "fallback.then", list(step.fallback.then)
    elif isinstance(step, MapStep):
        yield "steps", list(step.steps)
    elif isinstance(step, ParallelStep):
        for index, branch in enumerate(step.branches):
            yield f"branches[{index}]", list(branch)
    elif isinstance(step, ChoiceStep):
        for index, case in enumerate(step.cases):
            yield f"cases[{index}]", list(case.steps)
        yield "default", list(step.default)
    elif isinstance(step, ApprovalStep):
        yield "escalation", list(step.escalation.steps)


def walk(steps: list[AnyStep]) -> Iterator[AnyStep]:
    """Every step, nested ones included, in document order."""
    for step in steps:
        yield step
        for _, nested in children(step):
            yield from walk(nested)


def state_names(step: AnyStep) -> list[str]:
    """The states a step adds besides nested steps: its own, a fallback's, an escalation's."""
    names = [step_id(step)]
    if isinstance(step, TaskStep) and step.fallback is not None:
        names.append(step.fallback.id)
    if isinstance(step, ApprovalStep):
        names.append(step.escalation.id)
    if isinstance(step, AgentStep):
        names.extend(agent_state_names(step.agent))
    return names


def agent_state_names(agent: str) -> list[str]:
    """The states an agent step compiles to besides its own: the resumed loop, the pause test, the approval."""
    return [f"{agent}Resumes", f"{agent}Paused", f"{agent}Answered", f"{agent}Approval", f"{agent}Unanswered"]


class Deadline(_Strict):
    """The run's deadline: its own work, plus every approval window it may wait through."""

    work_s: int = Field(ge=1, description="The budget for the run's own steps.")
    grace_s: int = Field(
        default=900,
        ge=0,
        description="How long the state machine outlives the deadline, so a step late for it fails and is recorded "
        "before the execution itself could time out unrecorded.",
    )


class Api(_Strict):
    """How the public API starts the workflow."""

    mode: Literal["async", "sync"] = Field(
        default="async", description="async: POST .../executions answers 202; sync: POST .../invoke waits (Express)."
    )
    claim_check: bool = Field(
        default=False, description="The API stores the body in S3; the run carries $.request_ref, not $.request."
    )
    admission: bool = Field(
        default=False, description="Refuse runs beyond what the workflow's agents can finish (from their contracts)."
    )


class FailurePath(_Strict):
    """Any failure of a top-level step is recorded by this capability, then the run fails with the original error."""

    capability: Kebab = "record-failure"
    version: str | None = Field(default=None, pattern=VERSION_RANGE_PATTERN)
    id: StepId = "RecordFailure"
    attempts: int = Field(default=4, ge=0, le=10, description="Retries of the recorder on any error of its own.")


class WorkflowSpec(_Strict):
    """One workflow."""

    name: Kebab
    description: str = Field(min_length=1, max_length=500)
    type: Literal["standard", "express"] = "standard"
    input: str = Field(description="The model of the request that starts a run (the API validates the body).")
    output: str | None = Field(default=None, description="The model of what a finished run returns, if any.")
    api: Api = Field(default_factory=Api)
    deadline: Deadline
    rollout: Rollout | None = Field(default=None, description="How a changed definition takes traffic; unset: canary.")
    failure: FailurePath | None = Field(default=None, description="Unset: a failed step fails the run unrecorded.")
    steps: list[Step] = Field(min_length=1)

    @field_validator("input", "output")
    @classmethod
    def _known(cls, name: str | None) -> str | None:
        return _known_model(name)

    @model_validator(mode="after")
    def _consistent(self) -> WorkflowSpec:
        seen: set[str] = set(FAILURE_PATH_STATES) | ({self.failure.id} if self.failure else set())
        for step in walk(list(self.steps)):
            for name in state_names(step):
                if name in seen:
                    raise ValueError(f"step id {name!r} is used twice (or is a name the failure path takes)")
                seen.add(name)
            if self.type == "express" and isinstance(step, AgentStep) and step.approvals is not None:
                raise ValueError(
                    f"agent {step.agent!r}: an express workflow cannot wait for a person to approve its tool calls: "
                    "use type: standard"
                )
            if self.type == "express" and isinstance(step, ApprovalStep):
                raise ValueError(
                    f"approval {step.approval!r}: an express workflow cannot wait for a person (no task tokens, runs "
                    "end within 5 minutes): use type: standard"
                )
        if self.type == "express" and self.timeout_s > EXPRESS_MAX_S:
            raise ValueError(f"an express run ends within {EXPRESS_MAX_S} s: work_s + grace_s is {self.timeout_s}")
        if self.api.mode == "sync" and self.type != "express":
            raise ValueError("api.mode sync answers inside the request: only an express workflow can")
        return self

    def walk(self) -> Iterator[AnyStep]:
        return walk(list(self.steps))

    def step(self, step_id_: str) -> AnyStep:
        for step in self.walk():
            if step_id(step) == step_id_:
                return step
        raise KeyError(step_id_)

    @property
    def approvals(self) -> list[ApprovalStep]:
        return [step for step in self.walk() if isinstance(step, ApprovalStep)]

    @property
    def ttl_ms(self) -> int:
        """The run's deadline from its start: its work and every window it may wait (windows on exclusive branches
        count each: the deadline errs long, never short)."""
        agents = sum(step.waits_s for step in self.walk() if isinstance(step, AgentStep))
        return (self.deadline.work_s + sum(a.window_s for a in self.approvals) + agents) * 1000

    @property
    def timeout_s(self) -> int:
        """The state machine's own timeout: past the deadline by the grace."""
        return self.ttl_ms // 1000 + self.deadline.grace_s

    @property
    def effective_rollout(self) -> Rollout:
        return self.rollout or DEFAULT_ROLLOUT


for _model in (Catch, Fallback, TaskStep, AgentStep, MapStep, ParallelStep, Case, ChoiceStep, Escalation, ApprovalStep):
    _model.model_rebuild()
WorkflowSpec.model_rebuild()


def load_workflow(path: Path, roots: Roots | None = None) -> WorkflowSpec:
    """Parse and validate one spec file; its stem must be the workflow's name. Errors are one line each.

    An ``input`` or ``output`` named by import path or schema file is registered first, as a contract's ``io`` is.
    """
    where = roots or Roots.beside(path)
    spec = validate_file(path, WorkflowSpec, field_path, prepare=lambda doc: resolve_types(str(path), doc, None, where))
    if spec.name != path.stem:
        raise ContractError(str(path), "name", f"{spec.name!r} must match the file name {path.stem!r}")
    return spec


def load_workflows(directory: Path = WORKFLOWS_DIR, roots: Roots | None = None) -> dict[str, WorkflowSpec]:
    """Every spec in ``directory`` (``*.yaml``, ``*.yml``), keyed and sorted by name; none if it does not exist."""
    if not directory.is_dir():
        return {}
    paths = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    specs = [load_workflow(path, roots) for path in paths]
    return {spec.name: spec for spec in sorted(specs, key=lambda s: s.name)}


def field_path(loc: tuple[int | str, ...]) -> str:
    """``steps[2].catch[0].result``: pydantic's location without the union tags it adds after a step's index."""
    path = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        elif not (part in STEP_KINDS and index > 0 and isinstance(loc[index - 1], int)):
            path += f".{part}" if path else part
    return path or DOCUMENT
