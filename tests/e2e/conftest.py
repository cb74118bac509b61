from __future__ import annotations

from pathlib import Path

import pytest

from infra.synth import plane_assembly


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app synthesized once per worker for the planes these tests start: a plane only reads its assembly
    (its functions run the staged code without writing bytecode beside it)."""
    return plane_assembly(tmp_path_factory.mktemp("app"))
