"""The shipped offline eval scores the registry ranks implementations by (``python -m infra.evals`` measures them)."""

from __future__ import annotations

import json
from pathlib import Path

from infra.paths import REPO_ROOT

EVALS_DIR = REPO_ROOT / "events" / "evals"
SCORES_FILE = EVALS_DIR / "scores.json"


def load_scores(path: Path = SCORES_FILE) -> dict[str, float]:
    """Implementation name -> score (0..1); empty when no scores are shipped."""
    if not path.is_file():
        return {}
    document = json.loads(path.read_text(encoding="utf-8"))
    return {name: float(entry["score"]) for name, entry in document.get("implementations", {}).items()}
