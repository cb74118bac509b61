"""The local plane's state dir means what its name says: a plane stopped (or killed) and started again on it resumes
its runs, ledger, signing key and credentials; a dir it cannot restore is refused in one line, never silently
replaced by a fresh ledger under a new key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from infra.cli import main as agentplane
from infra.client import TERMINAL, fetch_export, local_endpoint, pending_approvals, request, served_endpoint, settle
from infra.local.persistence import FORMAT
from infra.local.plane import LocalPlane, PlaneOptions, StateDirInUse, wait_until
from infra.paths import REPO_ROOT

pytestmark = pytest.mark.e2e

LOW_RISK = json.loads((REPO_ROOT / "events" / "doc-review-low-risk.json").read_text())
HIGH_RISK = json.loads((REPO_ROOT / "events" / "doc-review-request.json").read_text())


def settle_approvals(base: str, execution_id: str, decision: str) -> int:
    """As the approver, decide every pending approval of this run; how many it decided."""
    approver = served_endpoint(base, "approver")
    assert approver is not None
    mine = pending_approvals(approver, execution_id)
    for approval in mine:
        settle(approver, approval["approval_id"], decision, f"e2e: {decision}", approval["args_sha256"])
    return len(mine)


def _run(url: str, execution_id: str) -> dict[str, object]:
    body: dict[str, object] = request(url, "GET", f"/v1/executions/{execution_id}").body
    return body


def _pending(url: str, execution_id: str) -> list[dict[str, str]]:
    approvals = request(url, "GET", "/v1/approvals?status=PENDING").body["approvals"]
    return [a for a in approvals if a["execution_id"] == execution_id]


def _pin_signing_key(plane: LocalPlane, path: Path) -> None:
    """The ledger's public key as KMS gives it (not as an export states it): what a verifier pins."""
    arn = next(
        s.environment["SIGNING_KEY_ID"] for s in plane.lambdas.functions.values() if "SIGNING_KEY_ID" in s.environment
    )
    der = plane.client("kms").get_public_key(KeyId=arn)["PublicKey"]
    pem = serialization.load_der_public_key(der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path.write_bytes(pem)


def _verify(plane: LocalPlane, work: Path, name: str) -> int:
    """`agentplane audit verify` of the plane's export with the pinned key and the checkpoint file kept in ``work``."""
    assert request(plane.url, "POST", "/local/schedules/run").status == 200  # a digest over what is written
    path = work / f"{name}.jsonl"
    path.write_text(fetch_export(local_endpoint(plane.url, plane.state_dir, "admin")))
    return agentplane(
        ["audit", "verify", str(path), "--public-key", str(work / "pinned.pem"), "--checkpoint", str(work / "cp.json")]
    )


def test_a_stopped_plane_is_resumed_on_its_state_dir(tmp_path: Path, assembly: Path) -> None:
    state = tmp_path / "state"

    def options(*, fresh: bool = False) -> PlaneOptions:
        return PlaneOptions(state_dir=state, assembly_dir=assembly, schedule_scale=0, fresh=fresh)

    # GIVEN a plane with a finished run, a run waiting for a person, and a ledger checkpoint taken with its key pinned
    with LocalPlane(options()) as first:
        assert first.auth is not None
        done = request(first.url, "POST", "/v1/workflows/doc-review/executions", LOW_RISK, persona="submitter")
        waiting = request(first.url, "POST", "/v1/workflows/doc-review/executions", HIGH_RISK, persona="submitter")
        done_id, waiting_id = done.body["execution_id"], waiting.body["execution_id"]
        assert wait_until(lambda: _run(first.url, done_id)["status"] in TERMINAL, timeout=180, interval=0.5)
        assert wait_until(lambda: bool(_pending(first.url, waiting_id)), timeout=180, interval=0.5)
        first_approval = _pending(first.url, waiting_id)[0]["approval_id"]
        first.settle()
        _pin_signing_key(first, tmp_path / "pinned.pem")
        assert _verify(first, tmp_path, "before") == 0
        admin = first.auth.defaults["admin"]
        finished = _run(first.url, done_id)
    # the plane was killed mid-write: its journal ends with a torn line
    with (state / "state" / "journal.jsonl").open("ab") as journal:
        journal.write(b'{"ddb": [["agentplane-')

    # WHEN a plane starts again on the same dir
    with LocalPlane(options()) as second:
        # THEN it says what it resumed, serves the same keys and answers the finished run as it ended
        assert second.auth is not None
        assert second.restored.runs_resumed == [waiting_id]
        assert second.restored.dropped_tail is not None
        assert "resumed 1 runs" in second.restored.line()
        assert "resumed 1 runs" in (state / "logs" / "plane.log").read_text()
        assert second.auth.defaults["admin"] == admin
        assert _run(second.url, done_id)["status"] == finished["status"]
        assert _run(second.url, done_id)["decision"] == finished["decision"]
        # AND the waiting run asks again (its old approval's task token died with the first plane)
        expired = request(second.url, "GET", "/v1/approvals?status=EXPIRED").body["approvals"]
        assert [a["decided_by"] for a in expired if a["approval_id"] == first_approval] == ["system:restart"]
        assert wait_until(lambda: bool(_pending(second.url, waiting_id)), timeout=180, interval=0.5)
        assert settle_approvals(second.url, waiting_id, "approve") == 1
        assert wait_until(lambda: _run(second.url, waiting_id)["status"] in TERMINAL, timeout=180, interval=0.5)
        resumed = _run(second.url, waiting_id)
        assert resumed["status"] == "SUCCEEDED"
        assert resumed["decision"] is not None
        second.settle()
        # AND the ledger extends the checkpoint taken before the stop, signed by the same key
        assert _verify(second, tmp_path, "after") == 0

    # AND --fresh wipes all of it: new keys, nothing resumed
    with LocalPlane(options(fresh=True)) as third:
        assert third.auth is not None
        assert not third.restored.restored
        assert third.auth.defaults["admin"].access_key_id != admin.access_key_id
        assert request(third.url, "GET", f"/v1/executions/{done_id}").status == 404


def test_a_dir_without_a_journal_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN what a plane that journaled nothing left (an older plane): its plane.json and credentials
    (tmp_path / "plane.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 1, "stack": "agentplane"}))
    (tmp_path / "credentials.json").write_text("{}")

    code = agentplane(["local", "serve", "--port", "0", "--state-dir", str(tmp_path)])

    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"agentplane: {tmp_path} holds a previous local plane's state")
    assert "--fresh" in err
    assert (tmp_path / "credentials.json").is_file()  # refused, not wiped


def test_a_dir_in_another_format_is_refused_in_one_line(
    tmp_path: Path, assembly: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "format.json").write_text(json.dumps({"format": FORMAT + 1}))

    with pytest.raises(StateDirInUse, match=f"state format {FORMAT + 1}, this plane reads format {FORMAT}"):
        LocalPlane(PlaneOptions(state_dir=tmp_path, assembly_dir=assembly, schedule_scale=0)).start()
    code = agentplane(["local", "serve", "--port", "0", "--state-dir", str(tmp_path), "--assembly", str(assembly)])

    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{tmp_path} cannot be resumed" in err
