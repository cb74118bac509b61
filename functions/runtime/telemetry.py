"""Logger and Metrics for an agent: JSON logs with correlation ids, EMF metrics per capability."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

METRICS_NAMESPACE = "agentplane"


def agent_logger(service: str) -> Logger:
    return Logger(service=service)


def agent_metrics(service: str, *, capability: str, version: str) -> Metrics:
    metrics = Metrics(namespace=METRICS_NAMESPACE, service=service)
    # Low-cardinality dimensions only; run and trace ids go to log keys.
    metrics.set_default_dimensions(capability=capability, version=version)
    return metrics
