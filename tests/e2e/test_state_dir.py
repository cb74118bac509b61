"""The local plane's state dir: a plane cannot restore what a previous one held, so it refuses to reuse the dir
unless told to wipe it (``--fresh``), never starting a new ledger and signing key there silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.cli import main as agentplane
from infra.client import request
from infra.local.plane import LocalPlane, PlaneOptions, StateDirInUse

pytestmark = pytest.mark.e2e


def test_a_stopped_planes_dir_is_refused_and_fresh_wipes_it(tmp_path: Path, assembly: Path) -> None:
    # GIVEN a plane that served (and signed its credentials) from a dir, then stopped
    with LocalPlane(PlaneOptions(assembly_dir=assembly, state_dir=tmp_path, schedule_scale=0)) as first:
        assert request(first.url, "GET", "/v1/capabilities").status == 200
        first_key = first.auth.defaults["admin"].access_key_id if first.auth else ""

    # THEN a second plane refuses the dir and names the way out, without touching it
    with pytest.raises(StateDirInUse) as refused:
        LocalPlane(PlaneOptions(assembly_dir=assembly, state_dir=tmp_path, schedule_scale=0)).start()
    assert str(tmp_path) in str(refused.value)
    assert "--fresh" in str(refused.value)
    assert (tmp_path / "logs" / "api-access.log").is_file()

    # AND a fresh plane wipes what the first left and serves with new keys
    with LocalPlane(PlaneOptions(assembly_dir=assembly, state_dir=tmp_path, schedule_scale=0, fresh=True)) as second:
        assert second.auth is not None
        assert second.auth.defaults["admin"].access_key_id != first_key
        access_log = (tmp_path / "logs" / "api-access.log").read_text()
        assert access_log == ""  # the first plane's requests are gone with its state
        assert request(second.url, "GET", "/v1/capabilities").status == 200


def test_a_killed_planes_credentials_make_serve_refuse_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN what a plane killed with -9 leaves: its plane.json and credentials, its keys dead with it
    (tmp_path / "plane.json").write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": 1, "stack": "agentplane"}))
    (tmp_path / "credentials.json").write_text("{}")

    code = agentplane(["local", "serve", "--port", "0", "--state-dir", str(tmp_path)])

    assert code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"agentplane: {tmp_path} holds a previous local plane's state")
    assert "--fresh" in err
    assert (tmp_path / "credentials.json").is_file()  # refused, not wiped
