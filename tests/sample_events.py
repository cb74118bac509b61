"""Sample events from ``events/``, the same files the integration tests and the demo send."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_event(name: str) -> Any:
    """The parsed JSON of ``events/<name>``."""
    return json.loads((Path(__file__).parents[1] / "events" / name).read_text(encoding="utf-8"))
