"""What the plane offers: its health, its capabilities (with their Agent Cards) and what is rolling out where."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from contracts.capability import CapabilityContract
from contracts.loader import load_contracts
from functions.api import adapters
from functions.api.http import base_url, json_response, new_router
from functions.api.rollouts import rollouts
from functions.api.service import Workflow, capabilities


@cache
def shipped_contracts() -> dict[str, CapabilityContract]:
    """Read on the first capabilities request, not at cold start (YAML for every contract)."""
    return load_contracts()


def router(workflows: Mapping[str, Workflow]) -> APIGatewayRouter:
    routes = new_router()

    @routes.get("/v1/health")
    def health() -> Response[str]:
        return json_response(200, {"status": "ok", "workflows": sorted(workflows)})

    @routes.get("/v1/capabilities")
    def list_capabilities() -> Response[str]:
        registered = adapters.registry().implementations()
        return json_response(
            200, capabilities(shipped_contracts(), registered, base_url=base_url(routes.current_event.raw_event))
        )

    @routes.get("/v1/rollouts")
    def list_rollouts() -> Response[str]:
        aliases = {name: w.state_machine_arn for name, w in workflows.items()}
        answer = rollouts(
            adapters.registry().implementations(),
            aliases,
            adapters.AwsRollouts(),
            application=os.environ.get("CODEDEPLOY_APPLICATION", ""),
        )
        return json_response(200, answer)

    return routes
