"""Where benchmark reports go: bench/results/<name>-<UTC timestamp>.json (what `make bench-check` reads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_report(name: str, report: dict[str, Any], out: str | Path) -> Path:
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return path
