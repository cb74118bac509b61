"""The approval window, as deployed, on the plane's scaled clock: a late approval still finishes and is recorded, a
run nobody decides in time escalates and is recorded, and an approval after the window is refused.

The template is the real one (a 60-minute window, a deadline that covers it); the plane runs declared waits, and
the deadlines and approval expiries that cover them, at ``SCALE`` of their time, keeping their proportions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from contracts.workflow import WORKFLOWS_DIR, load_workflow
from infra.client import finished
from infra.local.plane import LocalPlane, PlaneOptions
from tests.e2e.test_approvals import decide, submit, waiting_approval

pytestmark = pytest.mark.e2e

SCALE = 0.02  # the 60-minute window lasts 72 s; the 15-minute work budget 18 s
DOC_REVIEW = load_workflow(WORKFLOWS_DIR / "doc-review.yaml")
WINDOW_S = DOC_REVIEW.approvals[0].window_s * SCALE
WORK_S = DOC_REVIEW.deadline.work_s * SCALE


@pytest.fixture(scope="module")
def plane(plane_options: Callable[..., PlaneOptions]) -> Iterator[LocalPlane]:
    options = plane_options(schedule_scale=0, wait_scale=SCALE)
    with LocalPlane(options) as running:
        yield running


@pytest.fixture(scope="module")
def undecided(plane: LocalPlane) -> str:
    """A high-risk run nobody decides, started first so its window runs out while the other test runs."""
    return submit(plane)


def test_an_approval_after_the_work_budget_finishes_the_run_and_is_recorded(plane: LocalPlane, undecided: str) -> None:
    # GIVEN a high-risk run waiting for a person
    started = time.monotonic()
    run_id = submit(plane)
    approval = waiting_approval(plane, run_id)

    # WHEN the approver decides later than the work budget alone would allow (but within the window)
    time.sleep(max(0.0, started + WORK_S + 1 - time.monotonic()))
    assert time.monotonic() - started < WINDOW_S
    answer = decide(plane, approval, "approve")

    # THEN the approval is taken, and the run goes on to record its decision
    assert answer.status == 200, answer.body
    run = finished(plane.url, run_id, timeout=60)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["decision"]["outcome"] == "accept"
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["RecordDecision"]["status"] == "SUCCEEDED"


def test_a_closed_window_escalates_and_is_recorded_and_a_late_approval_is_refused(
    plane: LocalPlane, undecided: str
) -> None:
    # GIVEN the run nobody decided
    approval = waiting_approval(plane, undecided)

    # WHEN its whole window passes
    run = finished(plane.url, undecided, timeout=WINDOW_S + 60)
    late = decide(plane, approval, "approve")

    # THEN it escalated and its decision was recorded (not DeadlineExceeded, not a timed-out execution)
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["decision"]["outcome"] == "escalate"
    assert run["decision"]["approval"]["decision"] == "timeout"
    steps = {s["step"]: s for s in run["steps"]}
    assert steps["RecordDecision"]["status"] == "SUCCEEDED"
    # AND an approval after the window is refused
    assert late.status == 409
    assert late.body["type"].endswith("/expired")
