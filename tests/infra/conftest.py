from __future__ import annotations

import pytest

from tests.generated_contracts import contracts_dir, functions_dir
from tests.infra.assembly import SYNTH_CONTEXT, Synthesized, synthesize


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The plane as `cdk synth` builds it from the contracts in the repository, cdk-nag included; once per worker.

    The generated contract tests can point it at another set of contracts (see tests/generated_contracts.py).
    """
    return synthesize(tmp_path_factory.mktemp("cdk"), contracts_dir=contracts_dir(), functions_dir=functions_dir())


# Production, with the account-wide settings this stack may own: what `-c agentplane:environment=prod
# -c agentplane:account-settings=true` deploys (COMPLIANCE Object Lock, retained data, the account's API Gateway
# role and X-Ray sampling rules). The shared assembly above is the default: a sandbox without them.
PROD_CONTEXT = {**SYNTH_CONTEXT, "agentplane:environment": "prod", "agentplane:account-settings": "true"}


@pytest.fixture(scope="session")
def synthesized_prod(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(tmp_path_factory.mktemp("cdk-prod"), context=PROD_CONTEXT)
