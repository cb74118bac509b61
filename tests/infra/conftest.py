from __future__ import annotations

import pytest

from tests.infra.assembly import Synthesized, synthesize


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The plane as `cdk synth` builds it from the contracts in the repository, cdk-nag included; once per worker."""
    return synthesize(tmp_path_factory.mktemp("cdk"))
