"""What the CDK app writes into the template and the local plane reads back."""

from __future__ import annotations

from contracts.capability import CapabilityContract, LambdaRuntime, LlmRuntime

# Resource metadata on each Lambda layer: "runtime" (our code), "dependencies" (arm64 wheels the local
# plane skips: its interpreter has the same lockfile's packages) or "data" (mounted files, e.g. the KB).
LAYER_KIND_METADATA = "agentplane:layer-kind"

# Metadata on each SageMaker model: the folder under containers/ whose app serves it (the local plane runs that
# app on loopback for the endpoints that use the model).
CONTAINER_METADATA = "agentplane:container"
# Metadata on a SageMaker model served by a standard LLM image instead: {image, version, model_name} (the local
# plane serves those with its stand-in for the image's chat-completions API).
SERVING_METADATA = "agentplane:serving"

# Metadata on each stateful resource: the kind of data it keeps, a key of contracts.retention.
RETENTION_METADATA = "agentplane:retention"

# Metadata on each state machine: the workflow it runs (preflight sizes its sample payloads from events/).
WORKFLOW_METADATA = "agentplane:workflow"

# Template metadata: the environment (sandbox or prod) the stack was synthesized for (see infra.context).
ENVIRONMENT_METADATA = "agentplane:environment"


# Where every agent's EMF metrics go (functions.runtime.telemetry writes them there).
METRICS_NAMESPACE = "agentplane"


def agent_environment(contract: CapabilityContract) -> dict[str, str]:
    """What every agent's function knows about itself, from its contract (the pool adds what its grants name)."""
    runtime = contract.runtime
    ttl_ms = runtime.effective_timeout_s(contract.slo) * 1000 if isinstance(runtime, LambdaRuntime | LlmRuntime) else 0
    return {
        "AGENT_NAME": contract.name,
        "AGENT_VERSION": contract.version,
        "AGENT_CAPABILITIES": ",".join(contract.capabilities),
        "AGENT_METRICS": ",".join(contract.telemetry.metrics),
        "AGENT_SIDE_EFFECTS": contract.side_effects,
        "AGENT_TTL_MS": str(ttl_ms),
        "POWERTOOLS_SERVICE_NAME": contract.name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
    }
