"""GET /v1/executions/{id}?wait=N: the status read that holds until the run ends, on a fake clock (no sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.api.service import MAX_WAIT_S, ProblemError, RunStatus, describe, settled, wait_seconds
from functions.runtime.decisions import InMemoryDecisionStore
from functions.runtime.executions import ExecutionItem, InMemoryExecutionStore

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Engine:
    """A run that is RUNNING until ``ends_at`` on the clock; counts the status reads."""

    def __init__(self, clock: Clock, ends_at: float | None) -> None:
        self.clock = clock
        self.ends_at = ends_at
        self.reads = 0

    def describe(self, execution_arn: str) -> RunStatus:
        self.reads += 1
        ended = self.ends_at is not None and self.clock.now >= self.ends_at
        return RunStatus("SUCCEEDED" if ended else "RUNNING", None, None, None, NOW, NOW if ended else None)

    def start(self, **_: object) -> str:
        raise AssertionError("not started here")


def test_a_running_run_is_answered_once_it_ends_with_status_reads_backing_off() -> None:
    clock = Clock()
    engine = Engine(clock, ends_at=1.0)

    run = settled(lambda: engine.describe("arn"), wait_s=20, clock=clock, sleep=clock.sleep)

    assert run.status == "SUCCEEDED"
    assert clock.slept == [0.05, 0.1, 0.2, 0.4, 0.8]  # ended at 1.0, seen at 1.55
    assert engine.reads == 6


def test_a_run_still_running_is_answered_at_the_deadline_never_past_it() -> None:
    clock = Clock()
    engine = Engine(clock, ends_at=None)

    run = settled(lambda: engine.describe("arn"), wait_s=3, clock=clock, sleep=clock.sleep)

    assert run.status == "RUNNING"
    assert clock.now == pytest.approx(3.0)
    assert max(clock.slept) <= 1.0


def test_without_wait_the_status_is_read_once_and_answered_at_once() -> None:
    clock = Clock()
    engine = Engine(clock, ends_at=None)

    assert settled(lambda: engine.describe("arn"), wait_s=0, clock=clock, sleep=clock.sleep).status == "RUNNING"
    assert clock.slept == []
    assert engine.reads == 1


def test_describe_waits_on_the_status_and_reads_the_steps_once() -> None:
    clock = Clock()
    engine = Engine(clock, ends_at=0.3)
    executions = InMemoryExecutionStore()
    executions.put(
        ExecutionItem(
            execution_id="run-1",
            workflow="doc-review",
            execution_arn="arn:exec:run-1",
            trace_id="1-6b000000-0123456789abcdef01234567",
            submitted_at=NOW.isoformat(),
            request_sha256="",
        )
    )

    class CountingDecisions(InMemoryDecisionStore):
        lists = 0

        def list(self, correlation_id: str) -> list:  # type: ignore[type-arg]
            CountingDecisions.lists += 1
            return super().list(correlation_id)

    body = describe(
        "run-1",
        engine=engine,
        executions=executions,
        decisions=CountingDecisions(),
        wait_s=10,
        clock=clock,
        sleep=clock.sleep,
    )

    assert body["status"] == "SUCCEEDED"
    assert engine.reads > 1
    assert CountingDecisions.lists == 1


@pytest.mark.parametrize(("raw", "seconds"), [(None, 0.0), ("", 0.0), ("0", 0.0), ("2.5", 2.5), ("20", 20.0)])
def test_wait_is_seconds_from_zero_to_the_cap(raw: str | None, seconds: float) -> None:
    assert wait_seconds(raw) == seconds


@pytest.mark.parametrize("raw", ["21", "-1", "soon", "nan", "inf"])
def test_a_wait_outside_zero_to_the_cap_is_a_clear_400(raw: str) -> None:
    with pytest.raises(ProblemError) as refused:
        wait_seconds(raw)

    assert refused.value.status == 400
    assert f"from 0 to {MAX_WAIT_S}" in str(refused.value)
