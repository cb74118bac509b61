"""The release lock and its gate: today's contracts against the lock in the repository, and the gate itself
against synthetic contracts (copies in memory or in a temporary directory; the real ones are never edited)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.capability import CapabilityContract
from contracts.compat import snapshot
from contracts.loader import CONTRACTS_DIR, load_contracts
from contracts.release import LOCK_PATH, LockError, gate, read_lock, release, render_lock, write_lock
from infra import cli
from infra.cli.contracts import BREAKING_EXIT

pytestmark = pytest.mark.unit

CONTRACTS = load_contracts()


def test_current_contracts_keep_the_promises_of_the_last_release() -> None:
    # The gate `make test` holds every change to: breaking needs a major bump, any change needs some bump.
    report = gate(CONTRACTS, read_lock())
    assert report.ok, "contracts changed without the version bump they need:\n" + "\n".join(report.problems)
    assert not report.removed


def test_the_lock_in_the_repository_is_written_as_release_writes_it() -> None:
    assert LOCK_PATH.read_text(encoding="utf-8") == render_lock(read_lock())


def changed(name: str, **update: Any) -> dict[str, CapabilityContract]:
    """Today's contracts with one of them changed (a validated copy in memory)."""
    document = CONTRACTS[name].model_dump(mode="json") | update
    return {**CONTRACTS, name: CapabilityContract.model_validate(document)}


@pytest.fixture
def released(tmp_path: Path) -> Path:
    lock = tmp_path / "released.lock.json"
    write_lock(release(CONTRACTS, {}), lock)
    return lock


def test_a_breaking_change_without_a_major_bump_fails_the_gate_naming_it(released: Path) -> None:
    # GIVEN a release, and then a contract that gained a permission, version untouched
    current = changed("evidence-verifier", permissions=["read:kb", "write:documents"])
    # WHEN the gate runs
    report = gate(current, read_lock(released))
    # THEN it fails, naming contract, versions, the bump needed and the change
    assert report.problems == [
        "evidence-verifier 1.2.0 -> 1.2.0: breaking change without a major version bump (to 2.0.0; got no bump): "
        "permissions: now holds 'write:documents': a wider grant needs a fresh review"
    ]


def test_a_breaking_change_with_a_major_bump_passes_the_gate(released: Path) -> None:
    current = changed("evidence-verifier", version="2.0.0", permissions=["read:kb", "write:documents"])
    report = gate(current, read_lock(released))
    assert report.ok
    assert [d.name for d in report.diffs if d.breaking] == ["evidence-verifier"]


def test_a_compatible_change_without_a_bump_fails_and_with_one_passes(released: Path) -> None:
    capabilities = [*CONTRACTS["risk-scorer"].capabilities, "triage"]
    unbumped = gate(changed("risk-scorer", capabilities=capabilities), read_lock(released))
    assert len(unbumped.problems) == 1
    assert "minor-level change without a minor version bump (to 1.3.0; got no bump)" in unbumped.problems[0]
    assert "now also offers 'triage'" in unbumped.problems[0]
    assert gate(changed("risk-scorer", version="1.3.0", capabilities=capabilities), read_lock(released)).ok


def test_a_change_to_a_model_a_contract_names_is_caught_though_the_contract_file_did_not_move(
    released: Path,
) -> None:
    # GIVEN a release whose recorded output schema for the verifier had one more output field than today's model
    lock = json.loads(released.read_text())
    verdict = lock["contracts"]["evidence-verifier"]["schemas"]["output"]
    verdict["properties"]["source_count"] = {"type": "integer"}
    verdict["required"].append("source_count")
    released.write_text(json.dumps(lock))
    # WHEN today's (unchanged) contract is held to it
    report = gate(CONTRACTS, read_lock(released))
    # THEN the field's disappearance is a breaking change of that contract
    assert len(report.problems) == 1
    assert report.problems[0].startswith("evidence-verifier 1.2.0 -> 1.2.0: breaking change")
    assert "io.output.source_count: output field removed" in report.problems[0]


def test_a_new_contract_is_unreleased_not_a_problem(released: Path) -> None:
    newcomer = CONTRACTS["risk-scorer"].model_copy(update={"name": "risk-scorer-lite"})
    report = gate({**CONTRACTS, "risk-scorer-lite": newcomer}, read_lock(released))
    assert report.ok
    assert report.unreleased == ("risk-scorer-lite",)


def test_a_released_contract_that_is_gone_fails_the_gate_and_release_needs_allow_removed(released: Path) -> None:
    remaining = {name: c for name, c in CONTRACTS.items() if name != "entity-tagger"}
    report = gate(remaining, read_lock(released))
    assert report.removed == ("entity-tagger",)
    assert report.problems == [
        "entity-tagger: released contract is gone: callers of it break "
        "(`agentplane contracts release --allow-removed` retires it)"
    ]
    with pytest.raises(LockError, match="not released: entity-tagger: released contract is gone"):
        release(remaining, read_lock(released))
    assert set(release(remaining, read_lock(released), allow_removed=True)) == set(remaining)


def test_release_refuses_a_breaking_change_without_a_major_bump_and_records_one_with_it(released: Path) -> None:
    widened = ["read:kb", "write:idempotency"]
    breaking = changed("evidence-verifier", side_effects="external-action", permissions=widened)
    with pytest.raises(LockError, match=r"^not released: evidence-verifier 1.2.0 -> 1.2.0: breaking change"):
        release(breaking, read_lock(released))
    bumped = changed("evidence-verifier", version="2.0.0", side_effects="external-action", permissions=widened)
    write_lock(release(bumped, read_lock(released)), released)
    relocked = read_lock(released)
    assert relocked["evidence-verifier"] == snapshot(bumped["evidence-verifier"])
    assert gate(bumped, relocked).diffs[0].changes == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "released.lock.json: <document>: Invalid JSON"),
        ('{"format": 1}', "released.lock.json: contracts: Field required"),
        ('{"format": 9, "contracts": {}}', "released.lock.json: format 9 is not 1"),
    ],
)
def test_a_broken_lock_is_one_line(tmp_path: Path, text: str, says: str) -> None:
    lock = tmp_path / "released.lock.json"
    lock.write_text(text)
    with pytest.raises(LockError) as raised:
        read_lock(lock)
    assert says in str(raised.value)
    assert "\n" not in str(raised.value)


def test_no_lock_means_nothing_released_yet(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "absent.json") == {}


# --- the CLI ----------------------------------------------------------------------------------------


def write_contract(directory: Path, name: str, **update: Any) -> Path:
    document = yaml.safe_load((CONTRACTS_DIR / f"{name}.yaml").read_text()) | update
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_diff_of_two_files_prints_each_change_and_exits_3_when_breaking(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write_contract(tmp_path / "old", "evidence-verifier")
    new = write_contract(
        tmp_path / "new", "evidence-verifier", slo={"p95_ms": 900, "availability": 99.9, "error_budget_pct": 0.1}
    )
    assert cli.main(["contracts", "diff", str(old), str(new)]) == BREAKING_EXIT
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "evidence-verifier 1.2.0 -> 1.2.0: 1 change (1 breaking)"
    assert out[1].split()[:2] == ["BREAKING", "slo.p95_ms"]
    assert "p95 1500 ms -> 900 ms" in out[1]
    assert out[2] == "  version: breaking change without a major version bump (to 2.0.0; got no bump)"


def test_diff_json_is_for_tools(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_contract(tmp_path / "old", "risk-scorer")
    new = write_contract(tmp_path / "new", "risk-scorer", version="1.3.0", capabilities=["risk-scoring", "triage"])
    assert cli.main(["contracts", "diff", str(old), str(new), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["ok"] is True
    assert body["breaking"] is False
    [contract] = body["contracts"]
    assert (contract["needed_bump"], contract["version_bump"]) == ("minor", "minor")
    assert contract["changes"] == [
        {
            "path": "capabilities",
            "kind": "capability-added",
            "compatibility": "compatible",
            "bump": "minor",
            "detail": "now also offers 'triage'",
            "old": None,
            "new": "triage",
        }
    ]


def test_release_then_diff_against_released(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN contracts released into a lock of their own
    contracts_dir, lock = tmp_path / "agents", tmp_path / "released.lock.json"
    for name in ("evidence-verifier", "risk-scorer"):
        write_contract(contracts_dir, name)
    paths = ["--contracts-dir", str(contracts_dir), "--lock", str(lock)]
    assert cli.main(["contracts", "release", *paths]) == 0
    assert "released evidence-verifier 1.2.0 (new)" in capsys.readouterr().out
    # WHEN one of them adds an error type callers do not handle, without a bump
    write_contract(contracts_dir, "risk-scorer", telemetry={"metrics": ["latency_ms"], "errors": ["BadInput", "Boom"]})
    # THEN diff --against released says so and exits 3; release refuses in one line and leaves the lock alone
    before = lock.read_text()
    assert cli.main(["contracts", "diff", "--against", "released", *paths]) == BREAKING_EXIT
    out = capsys.readouterr().out
    assert "evidence-verifier 1.2.0: no changes" in out
    assert "may now raise 'Boom'" in out
    assert cli.main(["contracts", "release", *paths]) == 1
    err = capsys.readouterr().err
    assert err.startswith("agentplane: not released: risk-scorer 1.2.0 -> 1.2.0: breaking change")
    assert err.count("\n") == 1
    assert lock.read_text() == before
    # AND one contract can be asked about by name
    assert cli.main(["contracts", "diff", "evidence-verifier", "--against", "released", *paths]) == 0
    assert capsys.readouterr().out == "evidence-verifier 1.2.0: no changes\n"


@pytest.mark.parametrize(
    ("argv", "says", "code"),
    [
        (["contracts", "diff", "only-one.yaml"], "give OLD and NEW contract files, or --against released", 2),
        (["contracts", "diff", "nope", "--against", "released"], "no contract 'nope'", 1),
        (["contracts", "diff", "a.yaml", "b.yaml"], "a.yaml: <document>: cannot read", 1),
        (["contracts", "diff", "--against", "yesterday"], "invalid choice: 'yesterday'", 2),
        (
            ["contracts", "diff", "--against", "released", "--contracts-dir", "/nonexistent"],
            "cannot read /nonexistent",
            1,
        ),
        (["contracts", "release", "--lock", "/nonexistent/dir/lock.json"], "cannot use /nonexistent/dir/lock.json", 1),
    ],
)
def test_diff_errors_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], says: str, code: int) -> None:
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert says in err
    assert err.count("\n") == 1


def test_a_lock_with_a_version_that_is_not_semver_is_one_line(
    released: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lock = json.loads(released.read_text())
    lock["contracts"]["risk-scorer"]["contract"]["version"] = "latest"
    released.write_text(json.dumps(lock))
    assert cli.main(["contracts", "diff", "risk-scorer", "--against", "released", "--lock", str(released)]) == 1
    err = capsys.readouterr().err
    assert err == "agentplane: not a MAJOR.MINOR.PATCH version: 'latest'\n"
