"""Fixtures: one signing key and one small signed ledger, built once per session (tests never mutate them)."""

from __future__ import annotations

import pytest

from functions.runtime.ledger import LocalSigner
from tests.unit.ledger.ledger_fixture import Ledger, build_ledger


@pytest.fixture(scope="session")
def signer() -> LocalSigner:
    return LocalSigner.generate()


@pytest.fixture(scope="session")
def ledger(signer: LocalSigner) -> Ledger:
    return build_ledger(signer)


@pytest.fixture
def lines(ledger: Ledger) -> list[str]:
    """A fresh copy of the untouched export's lines, to tamper with."""
    return ledger.lines()
