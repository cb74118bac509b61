"""Compile a workflow spec (contracts.workflow) to Step Functions states, from the contract-built agent pools.

Sequences are built from their end: each step is made knowing what follows it, so a branch's last step (a choice
case, a catch's or fallback's steps, an escalation) goes on to the step after the one it branched from. Top-level
steps catch every failure into the failure path; steps inside a Map or Parallel fail their Map or Parallel instead.
A new step kind is a builder in ``_Builder.BUILDERS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from contracts.workflow import (
    AgentStep,
    AnyStep,
    ApprovalStep,
    Case,
    ChoiceStep,
    EmitStep,
    FailStep,
    MapStep,
    ParallelStep,
    Retry,
    SetStep,
    SucceedStep,
    TaskStep,
    WorkflowSpec,
    agent_state_names,
    is_reference,
    step_id,
)
from infra.components.agent_pool import AgentPool
from infra.components.coordinator_workflow import (
    agent_step,
    approval_request,
    catch_failures,
    caused_by,
    dispatched_step,
    record_failure,
)
from infra.components.event_mesh import EVENT_SOURCE
from infra.components.sagemaker_endpoint import FALLBACK_ERRORS
from infra.workflows.resolve import AGENT_KINDS, fallback, resolve, workflow_agents

# What every Map iteration sees of the run besides its item, so its steps send the run's envelope.
RUN_CONTEXT = ("trace_id", "traceparent", "correlation_id", "deadline")
# The approval a window nobody decided in leaves, when the run goes on.
TIMED_OUT = {"decision": "timeout", "actor": "system:approval-window"}


@dataclass(frozen=True)
class PlaneTargets:
    """What compiled steps call: the agents (Lambda pools and endpoint invokers, by name), the plane's functions."""

    pools: Mapping[str, AgentPool]
    gate: lambda_.IFunction
    dispatcher: lambda_.IFunction
    bus: events.IEventBus


@dataclass(frozen=True)
class CompiledWorkflow:
    definition: sfn.IChainable
    agents: list[AgentPool]
    calls_gate: bool
    calls_dispatcher: bool


@dataclass(frozen=True)
class _Where:
    top: bool = True  # a top-level state: its failures go to the failure path
    indexed: bool = False  # inside a Map: causation ids carry the item's index


def render(value: Any) -> Any:
    """A spec value as ASL: a reference (state path, intrinsic) is read from the run (``key.$``); the rest literal."""
    if isinstance(value, dict):
        return {
            (f"{key}.$" if is_reference(item) else key): (item if is_reference(item) else render(item))
            for key, item in value.items()
        }
    return value


def _literal(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_literal(item) for item in value.values())
    return not is_reference(value)


def compile_workflow(scope: Construct, spec: WorkflowSpec, targets: PlaneTargets) -> CompiledWorkflow:
    """The states of ``spec`` under ``scope`` (a construct of its own: state names are unique per workflow)."""
    builder = _Builder(scope, spec, targets)
    entry = builder.sequence(list(spec.steps), None, _Where())
    assert entry is not None  # a spec has at least one step
    contracts = builder.contracts
    return CompiledWorkflow(
        definition=entry,
        agents=[targets.pools[name] for name in workflow_agents(spec, contracts)],
        calls_gate=builder.calls_gate,
        calls_dispatcher=builder.calls_dispatcher,
    )


class _Builder:
    def __init__(self, scope: Construct, spec: WorkflowSpec, targets: PlaneTargets) -> None:
        self.scope = scope
        self.spec = spec
        self.targets = targets
        self.contracts = {name: pool.contract for name, pool in targets.pools.items()}
        self.calls_gate = self.calls_dispatcher = False
        self.failed: sfn.IChainable | None = None
        if spec.failure is not None:
            recorder = resolve(spec.failure.capability, spec.failure.version, self.contracts)
            self.failed = record_failure(
                scope,
                spec.failure.id,
                targets.pools[recorder.name],
                workflow=spec.name,
                attempts=spec.failure.attempts,
            )

    def sequence(self, steps: list[AnyStep], then: sfn.IChainable | None, where: _Where) -> sfn.IChainable | None:
        """The entry of ``steps`` followed by ``then`` (None: the sequence ends); ``then`` itself when empty."""
        entry = then
        for step in reversed(steps):
            entry = self.BUILDERS[step.kind](self, step, entry, where)
        return entry

    def _join(self, steps: list[AnyStep], then: sfn.IChainable | None, where: _Where, name: str) -> sfn.IChainable:
        """Like :meth:`sequence`, for a branch that needs a target: an empty branch at the end ends at a Pass."""
        entry = self.sequence(steps, then, where)
        return entry if entry is not None else sfn.Pass(self.scope, name)

    def _causation(self, name: str, where: _Where) -> str:
        return caused_by(name, sfn.JsonPath.string_at("$.index")) if where.indexed else caused_by(name)

    def _handle(
        self, state: Any, step: TaskStep | AgentStep | MapStep | ParallelStep, then: Any, where: _Where, *more: Any
    ) -> None:
        """The step's own retries and catches on ``state`` (and the ``more`` states of the same step), each catch's
        steps going on to ``then``."""
        for target in (state, *more):
            for retry in step.retry:
                _add_retry(target, retry)
        for index, catch in enumerate(step.catch):
            handler = self._join(list(catch.steps), then, where, f"{step_id(step)}Caught{index}")
            for target in (state, *more):
                target.add_catch(handler, errors=list(catch.errors), result_path=catch.result)

    def _fail_to_path(self, state: Any, where: _Where) -> None:
        if where.top and self.failed is not None:
            catch_failures(state, self.failed)

    def _next(self, state: Any, then: sfn.IChainable | None) -> sfn.IChainable:
        chained: sfn.IChainable = state.next(then) if then is not None else state
        return chained

    def _task(self, step: TaskStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        contract = resolve(step.capability, step.version, self.contracts)
        pool = self.targets.pools[contract.name]
        payload = render(step.input)
        state: tasks.LambdaInvoke
        if step.via == "registry":
            self.calls_dispatcher = True
            state = dispatched_step(
                self.scope,
                step.task,
                self.targets.dispatcher,
                pool,
                accept=step.version or f"{contract.major}.x",
                payload=payload,
                causation=self._causation(step.task, where),
                result_path=step.result,
                capability=step.capability,
            )
        else:
            state = agent_step(
                self.scope,
                step.task,
                pool,
                payload=payload,
                causation=self._causation(step.task, where),
                result_path=step.result,
                capability=step.capability,
                timeout=step.timeout_s,
            )
        self._handle(state, step, then, where)
        if step.fallback is not None:
            other = agent_step(
                self.scope,
                step.fallback.id,
                self.targets.pools[fallback(step, self.contracts).name],
                payload=payload,
                causation=self._causation(step.fallback.id, where),
                result_path=step.result,
                capability=step.capability,
            )
            self._fail_to_path(other, where)
            after = self.sequence(list(step.fallback.then), then, where)
            if after is not None:
                other.next(after)
            errors = list(step.fallback.errors) if step.fallback.errors is not None else FALLBACK_ERRORS
            state.add_catch(other, errors=errors, result_path=step.fallback.error_result)
        self._fail_to_path(state, where)
        return self._next(state, self.sequence(list(step.then), then, where))

    def _agent(self, step: AgentStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        """The loop in rounds: a round answers or pauses on an external-action call; a person decides on the call
        (a window nobody decides in is a refusal), and the next round resumes the loop with the decision."""
        contract = resolve(step.capability, step.version, self.contracts, AGENT_KINDS)
        pool = self.targets.pools[contract.name]

        def round_(name: str, result: str, beside: dict[str, Any] | None) -> tasks.LambdaInvoke:
            return agent_step(
                self.scope,
                name,
                pool,
                payload=render(step.input),
                causation=self._causation(step.agent, where),  # one step on the ledger, however many rounds
                result_path=result,
                capability=step.capability,
                timeout=step.timeout_s,
                beside=beside,
            )

        if step.approvals is None:  # nothing to wait for: one call; an external action it asks for fails the step
            state = round_(step.agent, step.result, None)
            self._handle(state, step, then, where)
            self._fail_to_path(state, where)
            return self._next(state, then)

        self.calls_gate = True
        at = f"$.loops.{step.agent}"
        resumes, paused, answered, approval, unanswered = agent_state_names(step.agent)
        first = round_(step.agent, at, {"loop": {"max_approvals": step.approvals.max_calls}})
        again = round_(
            resumes,
            at,
            {
                "loop": {
                    "max_approvals": step.approvals.max_calls,
                    "pending": sfn.JsonPath.object_at(f"{at}.pending"),
                    "approval": sfn.JsonPath.object_at(f"{at}.approval"),
                }
            },
        )
        request = approval_request(
            self.scope,
            approval,
            self.targets.gate,
            workflow=self.spec.name,
            window_s=step.approvals.window_s,
            subject=sfn.JsonPath.object_at(f"{at}.pending.subject"),
            policy_version=f"{contract.name}@{contract.version}",
            result_path=f"{at}.approval",
        )
        timed_out = sfn.Pass(
            self.scope, unanswered, result=sfn.Result.from_object(TIMED_OUT), result_path=f"{at}.approval"
        )
        request.add_catch(timed_out, errors=[sfn.Errors.TIMEOUT], result_path=f"{at}.approval_error")
        done = self._next(sfn.Pass(self.scope, answered, input_path=f"{at}.answer", result_path=step.result), then)
        choice = sfn.Choice(self.scope, paused).when(sfn.Condition.is_present(f"{at}.pending"), request)
        choice.otherwise(done)
        first.next(choice)
        again.next(choice)
        request.next(again)
        timed_out.next(again)
        self._handle(first, step, then, where, again)
        for state in (first, again, request):
            self._fail_to_path(state, where)
        return first

    def _map(self, step: MapStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        selector = {
            step.item: "$$.Map.Item.Value",
            "index": "$$.Map.Item.Index",
            **{key: f"$.{key}" for key in RUN_CONTEXT},
            **step.carry,
        }
        state = sfn.Map(
            self.scope,
            step.map,
            items_path=step.items,
            max_concurrency=step.concurrency or None,
            result_path=step.result,
            item_selector=render(selector),
        )
        body = self.sequence(list(step.steps), None, _Where(top=False, indexed=True))
        assert body is not None
        state.item_processor(body)
        self._handle(state, step, then, where)
        self._fail_to_path(state, where)
        return self._next(state, then)

    def _parallel(self, step: ParallelStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        state = sfn.Parallel(self.scope, step.parallel, result_path=step.result)
        for branch in step.branches:
            entry = self.sequence(list(branch), None, _Where(top=False, indexed=where.indexed))
            assert entry is not None
            state.branch(entry)
        self._handle(state, step, then, where)
        self._fail_to_path(state, where)
        return self._next(state, then)

    def _choice(self, step: ChoiceStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        state = sfn.Choice(self.scope, step.choice)
        for index, case in enumerate(step.cases):
            target = self._join(list(case.steps), then, where, f"{step.choice}Case{index}")
            state.when(_condition(step.field, case), target)
        state.otherwise(self._join(list(step.default), then, where, f"{step.choice}Otherwise"))
        return state

    def _approval(self, step: ApprovalStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        self.calls_gate = True
        request = approval_request(
            self.scope,
            step.approval,
            self.targets.gate,
            workflow=self.spec.name,
            window_s=step.window_s,
            subject=render(step.subject),
            policy_version=step.policy_version,
            result_path=step.result,
        )
        escalation = step.escalation
        timed_out: sfn.IChainable
        if escalation.action == "continue":
            passed = sfn.Pass(
                self.scope, escalation.id, result=sfn.Result.from_object(TIMED_OUT), result_path=step.result
            )
            timed_out = self._next(passed, self.sequence(list(escalation.steps), then, where))
        elif self.failed is not None:
            failure = {"Error": "ApprovalTimedOut", "Cause": f"nobody decided within {step.window_s} s"}
            timed_out = sfn.Pass(
                self.scope, escalation.id, result=sfn.Result.from_object(failure), result_path="$.failure"
            ).next(self.failed)
        else:
            timed_out = sfn.Fail(
                self.scope, escalation.id, error="ApprovalTimedOut", cause=f"nobody decided within {step.window_s} s"
            )
        request.add_catch(timed_out, errors=[sfn.Errors.TIMEOUT], result_path=f"{step.result}_error")
        self._fail_to_path(request, where)
        return self._next(request, then)

    def _emit(self, step: EmitStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        entry = tasks.EventBridgePutEventsEntry(
            detail=sfn.TaskInput.from_object(render(step.detail)),
            detail_type=step.detail_type,
            source=EVENT_SOURCE,
            event_bus=self.targets.bus,
        )
        state = tasks.EventBridgePutEvents(
            self.scope, step.emit, entries=[entry], result_path=sfn.JsonPath.DISCARD, comment=f"emit {step.detail_type}"
        )
        state.add_retry(
            errors=["EventBridge.EventBridgeException", "EventBridge.InternalException"],
            interval=Duration.seconds(1),
            max_attempts=3,
            backoff_rate=2.0,
            jitter_strategy=sfn.JitterType.FULL,
        )
        self._fail_to_path(state, where)
        return self._next(state, then)

    def _set(self, step: SetStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        if _literal(step.value):
            state = sfn.Pass(self.scope, step.set, result=sfn.Result.from_object(step.value), result_path=step.result)
        else:
            state = sfn.Pass(self.scope, step.set, parameters=render(step.value), result_path=step.result)
        return self._next(state, then)

    def _succeed(self, step: SucceedStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        return sfn.Succeed(self.scope, step.succeed)

    def _fail(self, step: FailStep, then: sfn.IChainable | None, where: _Where) -> sfn.IChainable:
        return sfn.Fail(self.scope, step.fail, error=step.error, cause=step.cause)

    BUILDERS: Mapping[str, Callable[[_Builder, Any, sfn.IChainable | None, _Where], sfn.IChainable]] = {
        "task": _task,
        "agent": _agent,
        "map": _map,
        "parallel": _parallel,
        "choice": _choice,
        "approval": _approval,
        "emit": _emit,
        "set": _set,
        "succeed": _succeed,
        "fail": _fail,
    }


def _add_retry(state: Any, retry: Retry) -> None:
    state.add_retry(
        errors=list(retry.errors),
        interval=Duration.seconds(retry.interval_s),
        max_attempts=retry.max_attempts,
        backoff_rate=retry.backoff,
        max_delay=Duration.seconds(retry.max_delay_s) if retry.max_delay_s else None,
        jitter_strategy=sfn.JitterType.FULL,
    )


def _condition(field: str, case: Case) -> sfn.Condition:
    if case.matches is not None:
        return sfn.Condition.string_matches(field, case.matches)
    value = case.equals
    if isinstance(value, bool):
        return sfn.Condition.boolean_equals(field, value)
    if isinstance(value, int | float):
        return sfn.Condition.number_equals(field, value)
    return sfn.Condition.string_equals(field, str(value))
