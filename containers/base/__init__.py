"""The serving base every container shares: SageMaker's HTTP contract, settings, micro-batching, metrics."""

from containers.base.batching import BatchPolicy, DeadlineExceeded, MicroBatcher, QueueFull
from containers.base.metrics import BatchMetrics
from containers.base.server import BadRequest, Predictor, ServingApp
from containers.base.settings import ServingSettings

__all__ = [
    "BadRequest",
    "BatchMetrics",
    "BatchPolicy",
    "DeadlineExceeded",
    "MicroBatcher",
    "Predictor",
    "QueueFull",
    "ServingApp",
    "ServingSettings",
]
