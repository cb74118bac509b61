"""The one module that owns the ``/opt/ml`` paths and the environment a serving container reads."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MODEL_DIR = Path("/opt/ml/model")
PORT = 8080

# Set on the SageMaker model from the contract's `batching` (infra/components/sagemaker_endpoint.py).
MAX_BATCH_ENV = "AGENTPLANE_MAX_BATCH"
MAX_WAIT_MS_ENV = "AGENTPLANE_MAX_WAIT_MS"
MAX_QUEUE_ENV = "AGENTPLANE_MAX_QUEUE"
MODEL_THREADS_ENV = "AGENTPLANE_MODEL_THREADS"
WORKERS_ENV = "AGENTPLANE_SERVING_WORKERS"
# SageMaker's own: where the model is, and the port it expects (8080 unless told).
MODEL_DIR_ENV = "SM_MODEL_DIR"
PORT_ENV = "SAGEMAKER_BIND_TO_PORT"


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's CPU set), at least one."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value} is below {minimum}")
    return value


@dataclass(frozen=True)
class ServingSettings:
    model_dir: Path = MODEL_DIR
    port: int = PORT
    max_batch: int = 1
    max_wait_ms: int = 0
    max_queue: int = 1024
    """Requests waiting beyond this are refused with 429: shed load instead of queueing past any deadline."""
    workers: int = 1
    """Serving processes, each with its own model, queue and batches, sharing the port. From the environment
    the default is one per CPU core the container may use: parsing, tokenising and HTTP are Python, so one
    process serves on one core however many the instance has."""
    model_threads: int = 1
    """CPU threads per model call. One: small graphs run faster without a spinning pool, and the event loop
    (parsing, encoding) keeps the other cores; a large CPU model may want more."""

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> ServingSettings:
        max_batch = _int(env, MAX_BATCH_ENV, 1, 1)
        return cls(
            model_dir=Path(env.get(MODEL_DIR_ENV) or MODEL_DIR),
            port=_int(env, PORT_ENV, PORT, 0),
            max_batch=max_batch,
            max_wait_ms=_int(env, MAX_WAIT_MS_ENV, 0, 0),
            max_queue=_int(env, MAX_QUEUE_ENV, max(1024, 8 * max_batch), 1),
            model_threads=_int(env, MODEL_THREADS_ENV, 1, 1),
            workers=_int(env, WORKERS_ENV, usable_cores(), 1),
        )

    def environment(self) -> dict[str, str]:
        """The variables that reproduce these batching settings (what infra writes on the model)."""
        return {
            MAX_BATCH_ENV: str(self.max_batch),
            MAX_WAIT_MS_ENV: str(self.max_wait_ms),
            MAX_QUEUE_ENV: str(self.max_queue),
        }
