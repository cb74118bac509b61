"""`agentplane invoke`: one agent, in-process on moto, on a sample event; its output on stdout, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import cli
from infra.paths import REPO_ROOT

pytestmark = pytest.mark.integration

PAYLOADS = REPO_ROOT / "events" / "payloads"


def test_a_payload_runs_as_a_step_of_the_agent(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", "risk-scorer", "--event", str(PAYLOADS / "RiskInput.json")])

    out, err = capsys.readouterr()
    assert code == 0, err
    assessment = json.loads(out)  # stdout is the output alone: the agent's logs go to stderr
    assert assessment["level"] in {"low", "medium", "high"}
    # AND the step's AWS calls are counted: a read-only agent makes one, its decision record
    assert err.splitlines()[-1].endswith("AWS calls: dynamodb:PutItem(agentplane-decisions)")


def test_a_bus_event_reaches_an_event_driven_agent(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", "entity-tagger", "--event", str(REPO_ROOT / "events" / "decision-recorded.json")])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["entities"][0]["text"] == "Northwind Analytics"


def test_bad_input_is_one_line_naming_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["invoke", "risk-scorer", "--event", str(PAYLOADS / "ClaimCheck.json")])

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    [line] = [line for line in err.splitlines() if line.startswith("agentplane:")]
    assert line.startswith("agentplane: risk-scorer failed: BadInput: payload claims: Field required")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["invoke", "no-such-agent", "--event", "x.json"], "no contract named 'no-such-agent'"),
        (["invoke", "risk-scorer", "--event", "missing.json"], "cannot read missing.json"),
        (["invoke", "risk-scorer", "--event", "pyproject.toml"], "pyproject.toml is not JSON"),
    ],
)
def test_what_cannot_run_is_refused_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    code = cli.main(args)

    err = capsys.readouterr().err
    assert code == 1
    assert message in err
    assert len(err.splitlines()) == 1


def test_agents_code_must_live_in_a_functions_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["invoke", "risk-scorer", "--event", str(PAYLOADS / "RiskInput.json"), "--functions", str(tmp_path)]
    )

    assert code == 1
    assert "agents' code lives in a folder named 'functions'" in capsys.readouterr().err
