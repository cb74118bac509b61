"""A capability contract as an A2A Agent Card (the ``/.well-known/agent-card.json`` document), for discovery interop.

The card says who the agent is (name, description, version), what it can do (one skill per capability),
what it exchanges (JSON in, JSON out) and how a caller authenticates (SigV4-signed requests, IAM). What A2A
has no field for (the payload models, side effects, SLO) travels in an agentplane extension.
"""

from __future__ import annotations

from typing import Any

from contracts.capability import CapabilityContract

A2A_PROTOCOL_VERSION = "0.3.0"
JSON = "application/json"
SIGV4 = "sigv4"
CONTRACT_EXTENSION = "urn:agentplane:extension:capability-contract:v1"


def agent_card(contract: CapabilityContract, *, url: str) -> dict[str, Any]:
    """The contract's Agent Card; ``url`` is where the plane that runs it is reached."""
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
                        "input": contract.io.input,
                        "output": contract.io.output,
                        "runtime": contract.runtime.kind,
                        "side_effects": contract.side_effects,
                        "slo": contract.slo.model_dump(mode="json"),
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
                "description": f"{contract.description} (input {contract.io.input}, output {contract.io.output})",
                "tags": [capability, contract.runtime.kind, contract.side_effects],
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
