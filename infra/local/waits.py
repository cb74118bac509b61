"""Declared waits on the local plane's scaled clock: a task token's window and a workflow's own timeout.

An approval window is an hour on AWS; locally it lasts ``scale`` times as long, and so does the state machine's
``TimeoutSeconds`` (and, through :data:`functions.runtime.clock.WAIT_SCALE_ENV`, the deadlines the API sets and
the approval the gate stores), so a test runs the template's real windows with their proportions kept. Processing
timeouts (a Lambda task's ``TimeoutSeconds``) are not waits and keep their length.
"""

from __future__ import annotations

from typing import Any

from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import TimeoutSeconds
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition

from infra.local import moto_seam


class _Scaled(TimeoutSeconds):
    """A declared timeout that passes ``scale`` times faster (moto waits on a float number of seconds as well)."""

    def __init__(self, declared: TimeoutSeconds, scale: float) -> None:
        super().__init__(timeout_seconds=declared.timeout_seconds * scale)  # type: ignore[arg-type]

    def is_default_value(self) -> bool:
        return False


def _waits_for_a_token(state: ExecutionState) -> bool:
    resource = getattr(state, "resource", None)
    return getattr(resource, "condition", None) == ResourceCondition.WaitForTaskToken


class ScaledWaits:
    """Patches moto's interpreter so task-token windows and workflow timeouts last ``scale`` times as long."""

    def __init__(self, scale: float) -> None:
        if scale <= 0:
            raise ValueError(f"wait scale must be positive, got {scale}")
        self.scale = scale
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        if self.scale == 1.0 or self._patches:
            return
        evaluate = moto_seam.original("stepfunctions.task_token_timeout")
        run = moto_seam.original("stepfunctions.workflow_timeout")
        scale = self.scale

        def evaluate_scaled(state: ExecutionState, env: Any) -> None:
            timeout = state.timeout
            declared = isinstance(timeout, TimeoutSeconds) and not timeout.is_default_value()
            if declared and _waits_for_a_token(state) and not isinstance(timeout, _Scaled):
                state.timeout = _Scaled(timeout, scale)  # type: ignore[arg-type]
            evaluate(state, env)

        def run_scaled(program: Program, env: Any) -> None:
            timeout = program.timeout_seconds
            if timeout is not None and not isinstance(timeout, _Scaled):
                program.timeout_seconds = _Scaled(timeout, scale)  # type: ignore[misc]
            run(program, env)

        self._patches.apply("stepfunctions.task_token_timeout", evaluate_scaled)
        self._patches.apply("stepfunctions.workflow_timeout", run_scaled)

    def uninstall(self) -> None:
        self._patches.restore()
