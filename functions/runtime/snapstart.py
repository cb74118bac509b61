"""SnapStart's runtime hooks, for agents whose contract sets ``runtime.snapstart``.

Lambda initializes such a function once, when a version is published, snapshots the initialized instance and
resumes every new instance of that version from the snapshot. Before the snapshot, spans still queued are
exported (the exporter's connection would not survive it). After each restore, the pseudo-random generator is
re-seeded (every instance would otherwise draw the same sequence) and AWS clients made during init are dropped,
so each instance connects with its own sockets and credentials. Clients are made on first use anyway
(``functions.runtime.adapters``), so a snapshot normally holds none.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

SNAP_START = "snap-start"
"""``AWS_LAMBDA_INITIALIZATION_TYPE`` in an instance of a SnapStart version."""
INITIALIZATION_TYPE_ENV = "AWS_LAMBDA_INITIALIZATION_TYPE"


def before_snapshot() -> None:
    from functions.runtime import tracing

    tracing.flush()


def after_restore() -> None:
    from functions.runtime import adapters

    random.seed()  # from os.urandom: this instance's own sequence
    adapters.client.cache_clear()
    adapters.table.cache_clear()


def install(environ: Mapping[str, str] = os.environ) -> bool:
    """Register the hooks when this instance runs under SnapStart; elsewhere do nothing (and import nothing)."""
    if environ.get(INITIALIZATION_TYPE_ENV) != SNAP_START:
        return False
    import snapshot_restore_py  # part of Lambda's Python runtime, and of the local plane's

    snapshot_restore_py.register_before_snapshot(before_snapshot)
    snapshot_restore_py.register_after_restore(after_restore)
    return True
