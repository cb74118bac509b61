"""``agentplane workflows check``: hold workflow specs against the contracts, one line per problem.

Beyond what the spec model validates (shape, unique ids, no approval in Express), this follows the run's state
through the steps, typed by the contracts' models: every capability resolves, every state path a step reads exists
where it reads it, and what it reads fits the field of the next step's input model it goes into.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from contracts.capability import CapabilityContract
from contracts.loader import ContractError
from contracts.models import ApprovalOutcome
from contracts.payloads import payload_model
from contracts.workflow import (
    AgentStep,
    AnyStep,
    ApprovalStep,
    ChoiceStep,
    EmitStep,
    FailStep,
    MapStep,
    ParallelStep,
    SetStep,
    SucceedStep,
    TaskStep,
    WorkflowSpec,
    is_reference,
    load_workflow,
    step_id,
)
from infra.components.errors import ContractInfraError
from infra.components.llm_agent import acting_tools
from infra.components.personas import PERSONA_ROUTES
from infra.components.public_api import INTEGRATION_TIMEOUT_S
from infra.workflows.compiler import RUN_CONTEXT
from infra.workflows.resolve import AGENT_KINDS, ResolveError, fallback, resolve

ANY: Any = typing.Any  # a type the check cannot know: nothing is flagged against it
MISSING = object()  # a path that is not in the state
ENDED = object()  # the state after a step that ends the run (succeed, fail)
ERROR = {"Error": str, "Cause": str}  # what a Catch puts at its result path
PLANE_ERRORS = ("States.", "Lambda.")
ESCALATED = "Escalated"  # the dispatcher's, for registry steps
DECIDE_ROUTE = ("POST", "/v1/approvals/*")


@dataclass
class _Checker:
    spec: WorkflowSpec
    contracts: Mapping[str, CapabilityContract]
    file: str
    problems: list[str] = field(default_factory=list)

    def problem(self, where: str, reason: str) -> None:
        self.problems.append(f"{self.file}: {where}: {reason}")

    def run(self) -> list[str]:
        request = "request_ref" if self.spec.api.claim_check else "request"
        start: dict[str, Any] = dict.fromkeys(RUN_CONTEXT, str)
        start[request] = payload_model("S3Ref") if self.spec.api.claim_check else payload_model(self.spec.input)
        end = self.sequence(list(self.spec.steps), start, "steps", top=True)
        if self.spec.output is not None and end is not ENDED and not compatible(end, payload_model(self.spec.output)):
            self.problem("output", f"the run ends with {show(end)}, not {self.spec.output}")
        if self.spec.failure is not None:
            self.failure()
        if self.spec.api.mode == "sync" and self.spec.timeout_s > INTEGRATION_TIMEOUT_S:
            self.problem("deadline", f"a sync run must end within API Gateway's {INTEGRATION_TIMEOUT_S} s")
        return self.problems

    def failure(self) -> None:
        assert self.spec.failure is not None
        try:
            recorder = resolve(self.spec.failure.capability, self.spec.failure.version, self.contracts)
        except ResolveError as error:
            self.problem("failure.capability", str(error))
            return
        failure = {"workflow": self.spec.name, "error": "$.failure.Error", "cause": "$.failure.Cause"}
        self.object(failure, recorder.input_model, {"failure": ERROR}, "failure")

    # --- sequences and steps ------------------------------------------------------------------------------------

    def sequence(self, steps: Sequence[AnyStep], state: Any, where: str, *, top: bool) -> Any:
        for step in steps:
            if state is ENDED:
                self.problem(step_id(step), f"never reached: the run ends before it ({where})")
                return ENDED
            state = self.step(step, state, step_id(step), top)
        return state

    def step(self, step: AnyStep, state: Any, where: str, top: bool) -> Any:
        if isinstance(step, TaskStep):
            return self.task(step, state, where, top)
        if isinstance(step, AgentStep):
            return self.agent(step, state, where, top)
        if isinstance(step, MapStep):
            return self.map_step(step, state, where)
        if isinstance(step, ParallelStep):
            for index, branch in enumerate(step.branches):  # a branch's end (succeed) ends the branch, not the run
                self.sequence(branch, state, f"{where}.branches[{index}]", top=False)
            return self.caught(step, assign(state, step.result, list[Any]), where, top)
        if isinstance(step, ChoiceStep):
            return self.choice(step, state, where, top)
        if isinstance(step, ApprovalStep):
            return self.approval(step, state, where, top)
        if isinstance(step, EmitStep):
            return self.emit(step, state, where)
        if isinstance(step, SetStep):
            return self.set_step(step, state, where)
        assert isinstance(step, SucceedStep | FailStep)
        return ENDED

    def task(self, step: TaskStep, state: Any, where: str, top: bool) -> Any:
        self.envelope(state, where)
        try:
            contract = resolve(step.capability, step.version, self.contracts)
        except ResolveError as error:
            self.problem(f"{where}.capability", str(error))
            return assign(state, step.result, ANY)
        self.object(step.input, contract.input_model, state, f"{where}.input")
        known = set(contract.telemetry.errors) | ({ESCALATED} if step.via == "registry" else set())
        ends = [self.sequence(step.then, assign(state, step.result, contract.output_model), f"{where}.then", top=top)]
        if step.fallback is not None:
            try:
                other = fallback(step, self.contracts)
            except ContractInfraError as error:
                self.problem(f"{where}.fallback", str(error))
            else:
                self.object(step.input, other.input_model, state, f"{where}.fallback ({other.name}) input")
                if not compatible(other.output_model, contract.output_model):
                    returns = f"{other.name} returns {other.io.output}, not {contract.io.output}"
                    self.problem(f"{where}.fallback", returns)
                self.errors(step.fallback.errors or [], known, f"{where}.fallback.errors")
                failed = assign(state, step.fallback.error_result, ERROR)
                then = assign(failed, step.result, contract.output_model)
                ends.append(self.sequence(step.fallback.then, then, f"{where}.fallback.then", top=top))
        for index, catch in enumerate(step.catch):
            self.errors(catch.errors, known, f"{where}.catch[{index}].errors")
        return join(*ends, *self.catches(step, state, where, top))

    def agent(self, step: AgentStep, state: Any, where: str, top: bool) -> Any:
        self.envelope(state, where)
        try:
            contract = resolve(step.capability, step.version, self.contracts, AGENT_KINDS)
        except ResolveError as error:
            self.problem(f"{where}.capability", str(error))
            return assign(state, step.result, ANY)
        self.object(step.input, contract.input_model, state, f"{where}.input")
        acting = acting_tools(contract, self.contracts)
        if acting and step.approvals is None:
            self.problem(
                f"{where}.approvals",
                f"{contract.name}'s tools include external actions ({', '.join(acting)}): "
                "say who approves them (approvals: {who, window_s})",
            )
        if step.approvals is not None:
            self.decider(step.approvals.who, f"{where}.approvals.who")
        for index, catch in enumerate(step.catch):
            self.errors(catch.errors, set(contract.telemetry.errors), f"{where}.catch[{index}].errors")
        return join(assign(state, step.result, contract.output_model), *self.catches(step, state, where, top))

    def map_step(self, step: MapStep, state: Any, where: str) -> Any:
        items = lookup(state, step.items)
        if items is MISSING:
            self.problem(f"{where}.items", f"{step.items} is not in the run's state here")
            item: Any = ANY
        elif items is ANY:
            item = ANY
        elif get_origin(strip(items)) is list:
            item = (get_args(strip(items)) or (ANY,))[0]
        else:
            self.problem(f"{where}.items", f"{step.items} is {show(items)}, not a list")
            item = ANY
        body: dict[str, Any] = {step.item: item, "index": int, **dict.fromkeys(RUN_CONTEXT, str)}
        for key, path in step.carry.items():
            body[key] = self.read(path, state, f"{where}.carry.{key}")
        end = self.sequence(step.steps, body, f"{where}.steps", top=False)
        results = types.GenericAlias(list, (end,)) if end not in (ENDED, ANY) else list[Any]
        return self.caught(step, assign(state, step.result, results), where)

    def choice(self, step: ChoiceStep, state: Any, where: str, top: bool) -> Any:
        tested = self.read(step.field, state, f"{where}.field")
        ends = []
        for index, case in enumerate(step.cases):
            if case.equals is not None and tested not in (ANY, MISSING) and not fits(case.equals, tested):
                self.problem(f"{where}.cases[{index}].equals", f"{case.equals!r} is never {show(tested)}")
            ends.append(self.sequence(case.steps, state, f"{where}.cases[{index}].steps", top=top))
        ends.append(self.sequence(step.default, state, f"{where}.default", top=top))
        return join(*ends)

    def approval(self, step: ApprovalStep, state: Any, where: str, top: bool) -> Any:
        self.decider(step.who, f"{where}.who")
        for key, value in step.subject.items():
            if is_reference(value):
                self.read(value, state, f"{where}.subject.{key}")
        if is_reference(step.policy_version):
            self.read(step.policy_version, state, f"{where}.policy_version")
        decided = assign(state, step.result, ApprovalOutcome)
        ends = [decided]
        if step.escalation.action == "continue":
            ends.append(self.sequence(step.escalation.steps, decided, f"{where}.escalation.steps", top=top))
        return join(*ends)

    def decider(self, who: str, where: str) -> None:
        if DECIDE_ROUTE not in PERSONA_ROUTES.get(who, []):
            deciders = ", ".join(p for p, routes in PERSONA_ROUTES.items() if DECIDE_ROUTE in routes)
            self.problem(where, f"{who!r} is not a persona who decides approvals ({deciders})")

    def emit(self, step: EmitStep, state: Any, where: str) -> Any:
        subscribers = [c for c in self.contracts.values() if step.detail_type in c.subscribes]
        for contract in subscribers:
            self.object(step.detail, contract.input_model, state, f"{where}.detail ({contract.name})")
        if not subscribers:
            for key, value in step.detail.items():
                if is_reference(value):
                    self.read(value, state, f"{where}.detail.{key}")
        return state

    def set_step(self, step: SetStep, state: Any, where: str) -> Any:
        if step.model is not None:
            self.object(step.value, payload_model(step.model), state, f"{where}.value")
            value: Any = payload_model(step.model)
        else:
            value = self.infer(step.value, state, f"{where}.value")
        return assign(state, step.result or "$", value)

    def caught(self, step: MapStep | ParallelStep, state: Any, where: str, top: bool = False) -> Any:
        return join(state, *self.catches(step, state, where, top))

    def catches(
        self, step: TaskStep | AgentStep | MapStep | ParallelStep, state: Any, where: str, top: bool
    ) -> list[Any]:
        return [
            self.sequence(c.steps, assign(state, c.result, ERROR), f"{where}.catch[{i}].steps", top=top)
            for i, c in enumerate(step.catch)
        ]

    # --- values ---------------------------------------------------------------------------------------------------

    def envelope(self, state: Any, where: str) -> None:
        """A task sends the run's envelope: its ids must still be in the state."""
        lost = [key for key in RUN_CONTEXT if lookup(state, f"$.{key}") is MISSING]
        if lost:
            self.problem(where, f"the run's {', '.join(lost)} are no longer in the state (a step before replaced it)")

    def read(self, path: str, state: Any, where: str) -> Any:
        found = lookup(state, path)
        if found is MISSING:
            self.problem(where, f"{path} is not in the run's state here")
            return ANY
        return found

    def object(self, value: Mapping[str, Any], model: type[BaseModel], state: Any, where: str) -> None:
        """``value`` (literals and references) as an instance of ``model``: its fields, their types."""
        fields = model.model_fields
        for key in value:
            if key not in fields:
                self.problem(f"{where}.{key}", f"{model.__name__} has no field {key!r}")
        for name, info in fields.items():
            if name not in value:
                if info.is_required():
                    self.problem(where, f"{model.__name__}.{name} is required")
                continue
            wanted = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            self.value(value[name], wanted, state, f"{where}.{name}", model, name)

    def value(self, value: Any, wanted: Any, state: Any, where: str, model: type[BaseModel], name: str) -> None:
        target = f"{model.__name__}.{name}"
        if is_reference(value):
            if str(value).startswith("States."):
                return  # an intrinsic function: its type is not followed
            found = self.read(value, state, where)
            if not compatible(found, wanted):
                self.problem(where, f"{value} is {show(found)}, {target} takes {show(wanted)}")
            return
        inner = [m for m in members(strip(wanted)) if isinstance(m, type) and issubclass(m, BaseModel)]
        if isinstance(value, dict) and inner:
            self.object(value, inner[0], state, where)
            return
        try:
            TypeAdapter(wanted).validate_python(value)
        except ValidationError as error:
            self.problem(where, f"{value!r} is not a valid {target}: {error.errors()[0]['msg']}")

    def infer(self, value: Any, state: Any, where: str) -> Any:
        if isinstance(value, dict):
            return {key: self.infer(item, state, f"{where}.{key}") for key, item in value.items()}
        if is_reference(value):
            return ANY if str(value).startswith("States.") else self.read(value, state, where)
        return list[Any] if isinstance(value, list) else type(value)

    def errors(self, names: Iterable[str], known: set[str], where: str) -> None:
        for name in names:
            if not name.startswith(PLANE_ERRORS) and name not in known:
                self.problem(where, f"{name} is not an error the contract declares ({', '.join(sorted(known))})")


# --- the state's types --------------------------------------------------------------------------------------------


def _parts(path: str) -> list[str]:
    return [part for part in path.split(".")[1:] if part]


def lookup(state: Any, path: str) -> Any:
    """The type at ``path`` in a state typed ``state`` (a dict of keys, a model, ANY); MISSING if it is not there."""
    if path.startswith("$$."):
        return ANY  # the context object: the compiler's own reads
    current = state
    for part in _parts(path):
        current = strip(current)
        if current is ANY:
            return ANY
        if isinstance(current, dict):
            current = current.get(part, MISSING)
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(part)
            current = info.annotation if info is not None else MISSING
        else:
            nullable = [m for m in members(current) if isinstance(m, type) and issubclass(m, BaseModel)]
            if not nullable:
                return MISSING
            info = nullable[0].model_fields.get(part)
            current = info.annotation if info is not None else MISSING
        if current is MISSING:
            return MISSING
    return current


def assign(state: Any, path: str | None, value: Any) -> Any:
    """The state after ``value`` is put at ``path`` (None: discarded)."""
    if path is None:
        return state
    parts = _parts(path)
    if not parts:
        return value
    return _assign(state, parts, value)


def _assign(state: Any, parts: list[str], value: Any) -> Any:
    if isinstance(state, type) and issubclass(state, BaseModel):
        state = {name: info.annotation for name, info in state.model_fields.items()}
    elif not isinstance(state, dict):
        state = {}
    head, rest = parts[0], parts[1:]
    return {**state, head: _assign(state.get(head), rest, value) if rest else value}


def join(*states: Any) -> Any:
    """What the state is where branches meet: what they agree on; unknown where they differ."""
    live = [s for s in states if s is not ENDED]
    if not live:
        return ENDED
    first = live[0]
    if all(s == first for s in live):
        return first
    if all(isinstance(s, dict) for s in live):
        keys = set(first).intersection(*live)
        return {key: join(*(s[key] for s in live)) for key in keys} | {
            key: ANY for s in live for key in s if key not in keys
        }
    return ANY


def strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def members(annotation: Any) -> list[Any]:
    annotation = strip(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        return [strip(m) for m in get_args(annotation)]
    return [annotation]


def fits(value: Any, annotation: Any) -> bool:
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError:
        return False
    return True


def compatible(found: Any, wanted: Any) -> bool:
    """Whether a value typed ``found`` is a valid ``wanted``, as far as types tell (unknowns pass)."""
    found, wanted = strip(found), strip(wanted)
    if found is ANY or wanted is ANY or found is ENDED:
        return True
    wanted_members = members(wanted)
    if len(members(found)) > 1:
        return all(compatible(m, wanted) for m in members(found))
    if len(wanted_members) > 1:
        return any(compatible(found, m) for m in wanted_members)
    if get_origin(found) is Literal:
        return all(fits(v, wanted) for v in get_args(found))
    if get_origin(wanted) is Literal:
        return False  # a plain type may hold any value, not only the literal ones
    if isinstance(found, dict):
        if isinstance(wanted, type) and issubclass(wanted, BaseModel):
            fields = wanted.model_fields
            return set(found) <= set(fields) and all(
                compatible(found[n], f.annotation) if n in found else not f.is_required() for n, f in fields.items()
            )
        return wanted is dict or get_origin(wanted) is dict
    if get_origin(found) is list or get_origin(wanted) is list:
        if get_origin(found) is not list or get_origin(wanted) is not list:
            return False
        return compatible((get_args(found) or (ANY,))[0], (get_args(wanted) or (ANY,))[0])
    if get_origin(found) is dict or get_origin(wanted) is dict:
        return (get_origin(found) or found) is (get_origin(wanted) or wanted)
    if isinstance(found, type) and isinstance(wanted, type):
        return issubclass(found, wanted) or (found is int and wanted is float)
    return bool(found == wanted)


def show(annotation: Any) -> str:
    annotation = strip(annotation)
    if annotation is ANY:
        return "unknown"
    if isinstance(annotation, dict):
        return "{" + ", ".join(annotation) + "}"
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("contracts.models.", "")


# --- entry points ---------------------------------------------------------------------------------------------------


def check_spec(spec: WorkflowSpec, contracts: Mapping[str, CapabilityContract], file: str = "<spec>") -> list[str]:
    """Every problem of ``spec`` against ``contracts``, one line each; empty when it holds."""
    return _Checker(spec, contracts, file).run()


def spec_files(paths: Sequence[Path]) -> list[Path]:
    """The spec files ``paths`` name: files as given, directories' ``*.yaml`` and ``*.yml``."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    return found


def check_paths(paths: Sequence[Path], contracts: Mapping[str, CapabilityContract]) -> tuple[int, list[str]]:
    """How many specs were read, and every problem of every spec file ``paths`` name."""
    problems: list[str] = []
    files = spec_files(paths)
    for path in files:
        try:
            spec = load_workflow(path)
        except ContractError as error:
            problems.append(str(error))
            continue
        problems.extend(check_spec(spec, contracts, str(path)))
    return len(files), problems
