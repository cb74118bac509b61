from __future__ import annotations

import pytest

from tests.generated_contracts import contracts_dir, functions_dir
from tests.infra.assembly import Synthesized, synthesize


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The plane as `cdk synth` builds it from the contracts in the repository, cdk-nag included; once per worker.

    The generated contract tests can point it at another set of contracts (see tests/generated_contracts.py).
    """
    return synthesize(tmp_path_factory.mktemp("cdk"), contracts_dir=contracts_dir(), functions_dir=functions_dir())
