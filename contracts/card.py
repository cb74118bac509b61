"""A capability contract as an A2A Agent Card (the ``/.well-known/agent-card.json`` document), for discovery interop.

The card says who the agent is (name, description, version), what it can do (one skill per capability),
what it exchanges (JSON in, JSON out) and how a caller authenticates (SigV4-signed requests, IAM). What A2A
has no field for (the payload models, side effects, SLO) travels in an agentplane extension.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from contracts.capability import CapabilityContract

A2A_PROTOCOL_VERSION = "0.3.0"
JSON = "application/json"
SIGV4 = "sigv4"
CONTRACT_EXTENSION = "urn:agentplane:extension:capability-contract:v1"


class AgentProfile(BaseModel):
    """What discovery shows of an agent: its contract's public face. The registry entry carries it, so the API
    lists agents whose contracts it does not ship (a project's, deployed in a stack of its own)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    description: str
    capabilities: list[str]
    runtime: str
    input: str
    output: str
    side_effects: str
    slo: dict[str, Any]
    fallback: list[str | dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def of(cls, contract: CapabilityContract) -> AgentProfile:
        return cls(
            name=contract.name,
            version=contract.version,
            description=contract.description,
            capabilities=list(contract.capabilities),
            runtime=contract.runtime.kind,
            input=contract.io.input,
            output=contract.io.output,
            side_effects=contract.side_effects,
            slo=contract.slo.model_dump(mode="json"),
            fallback=[f if isinstance(f, str) else f.model_dump(mode="json") for f in contract.fallback],
        )


def agent_card(agent: CapabilityContract | AgentProfile, *, url: str) -> dict[str, Any]:
    """The agent's Agent Card (from its contract, or the profile its registry entry holds); ``url`` is where the
    plane that runs it is reached."""
    contract = agent if isinstance(agent, AgentProfile) else AgentProfile.of(agent)
    return {
        "protocolVersion": A2A_PROTOCOL_VERSION,
        "name": contract.name,
        "description": contract.description,
        "url": url,
        "preferredTransport": "HTTP+JSON",
        "version": contract.version,
        "provider": {"organization": "agentplane", "url": url},
        "capabilities": {
            "streaming": False,
            "pushNotifications": False,
            "stateTransitionHistory": True,
            "extensions": [
                {
                    "uri": CONTRACT_EXTENSION,
                    "description": "The agentplane capability contract behind this card",
                    "required": False,
                    "params": {
                        "input": contract.input,
                        "output": contract.output,
                        "runtime": contract.runtime,
                        "side_effects": contract.side_effects,
                        "slo": contract.slo,
                    },
                }
            ],
        },
        "defaultInputModes": [JSON],
        "defaultOutputModes": [JSON],
        "skills": [
            {
                "id": capability,
                "name": capability,
                "description": f"{contract.description} (input {contract.input}, output {contract.output})",
                "tags": [capability, contract.runtime, contract.side_effects],
                "inputModes": [JSON],
                "outputModes": [JSON],
            }
            for capability in contract.capabilities
        ],
        "securitySchemes": {
            SIGV4: {
                "type": "http",
                "scheme": "AWS4-HMAC-SHA256",
                "description": "AWS Signature Version 4: requests are signed with IAM credentials of a persona role "
                "(submitter, approver, auditor) that API Gateway authorises",
            }
        },
        "security": [{SIGV4: []}],
    }
