"""The approval window: a run nobody decides in time escalates, and a late approval is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.app import build_app
from infra.local.plane import LocalPlane, PlaneOptions
from infra.workflows import doc_review
from tests.e2e.client import finished
from tests.e2e.test_approvals import decide, submit, waiting_approval

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def short_window(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlane]:
    # GIVEN the same app with a two-second approval window (a CDK constant, synthesized like any change)
    outdir = tmp_path_factory.mktemp("cdk.out")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(doc_review, "APPROVAL_WINDOW_S", 2)
        build_app(outdir, context={"aws:cdk:enable-asset-metadata": "true"}).synth()
    options = PlaneOptions(state_dir=tmp_path_factory.mktemp("plane"), assembly_dir=outdir, schedule_scale=0)
    with LocalPlane(options) as running:
        yield running


def test_a_closed_window_escalates_and_a_late_approval_is_refused(short_window: LocalPlane) -> None:
    run_id = submit(short_window)
    approval = waiting_approval(short_window, run_id)

    run = finished(short_window.url, run_id, timeout=60)
    late = decide(short_window, approval, "approve")

    assert run["status"] == "SUCCEEDED"
    assert run["decision"]["outcome"] == "escalate"
    assert run["decision"]["approval"]["decision"] == "timeout"
    assert late.status == 409
    assert late.body["type"].endswith("/expired")
