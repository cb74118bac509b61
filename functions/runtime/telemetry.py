"""Logger and Metrics for an agent: JSON logs with correlation ids, EMF metrics per capability."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

METRICS_NAMESPACE = "agentplane"


def agent_logger(service: str) -> Logger:
    return Logger(service=service)


def agent_metrics(service: str, *, capability: str, version: str) -> Metrics:
    # Metrics instances share one metric store unless each has its own provider; agents that share
    # a process (the local plane, tests) must not mix their metrics and dimensions.
    provider = AmazonCloudWatchEMFProvider(namespace=METRICS_NAMESPACE, service=service)
    metrics = Metrics(namespace=METRICS_NAMESPACE, service=service, provider=provider)
    # Low-cardinality dimensions only; run and trace ids go to log keys.
    metrics.set_default_dimensions(capability=capability, version=version)
    return metrics
