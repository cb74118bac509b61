"""SnapStart's runtime hooks: registered only under SnapStart; a restored instance re-seeds and reconnects."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import snapshot_restore_py

from functions.runtime import adapters, snapstart

pytestmark = pytest.mark.unit


@pytest.fixture
def registries() -> Iterator[tuple[list[object], list[object]]]:
    before, after = snapshot_restore_py.get_before_snapshot(), snapshot_restore_py.get_after_restore()
    saved = (list(before), list(after))
    before.clear()
    after.clear()
    yield before, after
    before[:], after[:] = saved


def test_outside_snapstart_nothing_is_registered(registries: tuple[list[object], list[object]]) -> None:
    assert not snapstart.install({"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})
    assert not snapstart.install({})
    assert registries == ([], [])


def test_under_snapstart_both_hooks_are_registered(registries: tuple[list[object], list[object]]) -> None:
    assert snapstart.install({"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"})

    before, after = registries
    assert [hook for hook, _, _ in before] == [snapstart.before_snapshot]  # type: ignore[misc]
    assert [hook for hook, _, _ in after] == [snapstart.after_restore]  # type: ignore[misc]


def test_a_restored_instance_draws_its_own_numbers_and_makes_new_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the state a snapshot would hold: a seeded generator and a client made during init
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    random.seed(7)
    snapshotted = random.getstate()
    made_at_init = adapters.client("s3")

    # WHEN two instances restore from it
    draws = []
    for _ in range(2):
        random.setstate(snapshotted)
        snapstart.after_restore()
        draws.append(random.random())

    # THEN they do not share a sequence, and neither reuses the client (or its sockets) from the snapshot
    assert draws[0] != draws[1]
    assert adapters.client("s3") is not made_at_init
