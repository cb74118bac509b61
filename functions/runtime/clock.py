"""The local plane's scaled clock, as the functions that turn declared waits into times see it.

On AWS nothing sets :data:`WAIT_SCALE_ENV` and every wait is as declared. The local plane may run declared
waits (an approval window, a workflow's timeout) faster; it then sets the same factor here so the deadlines the
API computes and the expiry the approval gate stores keep their proportions to those waits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

WAIT_SCALE_ENV = "AGENTPLANE_WAIT_SCALE"


def wait_scale(env: Mapping[str, str] | None = None) -> float:
    """The factor declared waits and budgets run at here (1.0 unless the local plane says otherwise)."""
    raw = (os.environ if env is None else env).get(WAIT_SCALE_ENV, "")
    try:
        scale = float(raw) if raw else 1.0
    except ValueError:
        raise RuntimeError(f"{WAIT_SCALE_ENV} must be a positive number, got {raw!r}") from None
    if scale <= 0:
        raise RuntimeError(f"{WAIT_SCALE_ENV} must be a positive number, got {raw!r}")
    return scale
