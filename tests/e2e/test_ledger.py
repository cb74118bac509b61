"""The audit ledger on the local plane: decisions stream into hash chains, a signed digest covers them,
an export verifies offline, and tampering with it is caught and named."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.cli import main as agentplane
from infra.client import finished, request
from infra.local.plane import LocalPlane, PlaneOptions
from tests.sample_events import load_event

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ledger_run(
    tmp_path_factory: pytest.TempPathFactory, plane_options: Callable[..., PlaneOptions]
) -> Iterator[tuple[LocalPlane, dict[str, object], Path]]:
    with LocalPlane(plane_options(schedule_scale=0)) as plane:
        started = request(
            plane.url, "POST", "/v1/workflows/doc-review/executions", load_event("doc-review-request.json")
        )
        run = finished(plane.url, started.body["execution_id"], enriched=True, approve="approve")
        fired = request(plane.url, "POST", "/local/schedules/run")
        assert fired.status == 200, fired.body
        export = tmp_path_factory.mktemp("audit") / "ledger.jsonl"
        assert agentplane(["audit", "export", "--out", str(export), "--api-url", plane.url]) == 0
        yield plane, run, export


def test_every_decision_of_the_run_is_chained_signed_and_verified(
    ledger_run: tuple[LocalPlane, dict[str, object], Path],
) -> None:
    plane, run, _ = ledger_run

    lineage = request(plane.url, "GET", f"/v1/audit/traces/{run['trace_id']}")

    assert lineage.status == 200
    assert lineage.body["verified"] is True
    steps = {s["step"] for s in lineage.body["steps"]}
    assert {"Intake", "ScoreRisk", "RecordDecision", "entity-tagging"} <= steps
    # agents, a person, and the llm fact-checker's model for each of its turns
    assert all(
        s["actor"].startswith(("agent:", "human:", "model:")) and s["digest"] == 1 for s in lineage.body["steps"]
    )
    assert {s["actor"] for s in lineage.body["steps"] if "/turn/" in s["step"]} == {
        "model:us.anthropic.claude-haiku-4-5-20251001-v1:0"
    }
    assert [s["step"] for s in lineage.body["steps"] if s["actor"].startswith("human:")] == ["Approval"]


def test_an_untouched_export_verifies(
    ledger_run: tuple[LocalPlane, dict[str, object], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, export = ledger_run

    assert agentplane(["audit", "verify", str(export)]) == 0
    assert "verified" in capsys.readouterr().out


def test_a_modified_entry_in_the_export_is_caught_and_named(
    ledger_run: tuple[LocalPlane, dict[str, object], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, export = ledger_run
    lines = export.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if json.loads(line)["kind"] == "entry")
    entry = json.loads(lines[index])
    entry["record"]["agent"] = "someone-else"
    lines[index] = json.dumps(entry)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")

    code = agentplane(["audit", "verify", str(tampered)])

    assert code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"entry {entry['chain_id']}#{entry['seq']}" in err


def test_an_unknown_trace_is_a_404_problem(ledger_run: tuple[LocalPlane, dict[str, object], Path]) -> None:
    plane, _, _ = ledger_run
    answer = request(plane.url, "GET", "/v1/audit/traces/1-00000000-000000000000000000000000")
    assert answer.status == 404
    assert answer.content_type == "application/problem+json"


def test_explain_prints_the_verified_lineage(
    ledger_run: tuple[LocalPlane, dict[str, object], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    plane, run, _ = ledger_run

    code = agentplane(["audit", "explain", str(run["trace_id"]), "--api-url", plane.url])

    out = capsys.readouterr().out
    assert code == 0
    assert f"trace {run['trace_id']}: verified" in out
    assert "agent:evidence-verifier" in out
    assert "RecordDecision" in out


def test_a_record_is_proven_included_from_the_export_alone(
    ledger_run: tuple[LocalPlane, dict[str, object], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, run, export = ledger_run
    record_id = next(
        json.loads(line)["record_id"]
        for line in export.read_text().splitlines()
        if json.loads(line)["kind"] == "entry"
        and json.loads(line)["record"]["step_key"].endswith("/ScoreRisk")
        and json.loads(line)["record"]["correlation_id"] == run["execution_id"]
    )

    code = agentplane(["audit", "prove", record_id, "--file", str(export)])

    proof = json.loads(capsys.readouterr().out)
    assert code == 0
    assert proof["entry"]["record_id"] == record_id
    assert proof["digest"]["body"]["seq"] == 1


def test_a_rollback_behind_the_auditors_checkpoint_is_caught(
    ledger_run: tuple[LocalPlane, dict[str, object], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an auditor's checkpoint kept while verifying the plane's ledger live, and a digest signed since
    plane, _, earlier = ledger_run
    checkpoint = tmp_path / "checkpoint.json"
    live = ["audit", "verify", "--api-url", plane.url, "--state-dir", str(tmp_path), "--checkpoint", str(checkpoint)]
    assert agentplane(live) == 0
    kept = json.loads(checkpoint.read_text())["digest_seq"]
    assert kept == 1  # the digest the earlier export ends with
    fired = request(plane.url, "POST", "/local/schedules/run")
    assert fired.status == 200, fired.body

    # WHEN the ledger is verified live again, and then the export taken before (its newest digests missing) is
    moved = agentplane(live)
    capsys.readouterr()
    rolled_back = agentplane(["audit", "verify", str(earlier), "--checkpoint", str(checkpoint)])

    # THEN the checkpoint moved on to the new digest, and the older export is refused in one line as a rollback
    assert moved == 0
    assert json.loads(checkpoint.read_text())["digest_seq"] == kept + 1
    assert rolled_back == 1
    [line] = capsys.readouterr().err.splitlines()
    assert f"checkpoint: rolled back: the newest digest is 1, the checkpoint already verified digest {kept + 1}" in line


def test_decisions_holding_awkward_text_cannot_make_the_export_unreadable(
    ledger_run: tuple[LocalPlane, dict[str, object], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN decision records whose outputs hold a submitter's text of emoji: each within DynamoDB's 400 KB item,
    # all of them together far fewer characters than a 4 MB page, but 12 bytes a character once the reply is
    # escaped, so that one page of them would be past Lambda's 6 MB response
    plane, _, _ = ledger_run
    ddb = plane.client("dynamodb")
    decisions = plane.physical("DataDecisions", "AWS::DynamoDB::Table")
    text = "😀" * 80_000
    for n in range(4):
        run = f"awkward-{n}"
        item = {"correlation_id": run, "step_key": f"{run}/Summarise", "trace_id": f"trace-{run}", "actor": "agent:x"}
        ddb.put_item(
            TableName=decisions,
            Item={
                **{k: {"S": v} for k, v in item.items()},
                "output_json": {"S": json.dumps({"s": text}, ensure_ascii=False)},
            },
        )
    assert plane.settle()
    fired = request(plane.url, "POST", "/local/schedules/run")
    assert fired.status == 200, fired.body

    # WHEN the ledger is exported over the API and verified
    export = tmp_path / "ledger.jsonl"
    exported = agentplane(["audit", "export", "--out", str(export), "--api-url", plane.url])
    capsys.readouterr()
    verified = agentplane(["audit", "verify", str(export), "--checkpoint", str(tmp_path / "checkpoint.json")])

    # THEN every page was answered, and the export holds those entries and verifies
    assert exported == 0
    assert verified == 0
    awkward = [line for line in export.read_text().splitlines() if '"correlation_id":"awkward-' in line]
    assert len(awkward) == 4
