from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.local.plane import PlaneOptions
from infra.synth import plane_assembly


@pytest.fixture(scope="session")
def assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app synthesized once per worker for the planes these tests start: a plane only reads its assembly
    (its functions run the staged code without writing bytecode beside it)."""
    return plane_assembly(tmp_path_factory.mktemp("app"))


@pytest.fixture(scope="session")
def plane_options(assembly: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., PlaneOptions]:
    """Options for a plane of these tests: the shared assembly, a new state dir, and the settings given."""

    def options(**settings: Any) -> PlaneOptions:
        settings.setdefault("state_dir", tmp_path_factory.mktemp("plane"))
        # These tests submit runs back to back and follow them; what admission refuses is tested on planes that
        # set their own limit (test_loadtest). 8 at once, as the template's 10 would, not the local default of 2.
        settings.setdefault("max_in_flight", 8)
        return PlaneOptions(assembly_dir=assembly, **settings)

    return options
