"""Audit: one trace's lineage, verified entry by entry, the ledger's export, page by page, and turn content."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api import adapters
from functions.api.audit import content, export, lineage
from functions.api.http import json_response, new_router


def router() -> APIGatewayRouter:
    routes = new_router()

    @routes.get("/v1/audit/traces/<trace_id>")
    def audit_trace(trace_id: str) -> Response[str]:
        key = adapters.signer().public_key_pem()
        return json_response(
            200, lineage(trace_id, store=adapters.ledger(), archive=adapters.digests(), public_key_pem=key)
        )

    @routes.get("/v1/audit/content/<sha256>")
    def audit_content(sha256: str) -> Response[str]:
        return json_response(200, content(sha256, store=adapters.contents()))

    @routes.get("/v1/audit/export")
    def audit_export() -> Response[str]:
        signer = adapters.signer()
        lines, following = export(
            store=adapters.ledger(),
            archive=adapters.digests(),
            public_key_pem=signer.public_key_pem(),
            key_id=signer.key_id,
            cursor=(routes.current_event.query_string_parameters or {}).get("cursor"),
        )
        headers = {} if following is None else {"X-Next-Cursor": following}
        return Response(status_code=200, content_type="application/x-ndjson", body=lines, headers=headers)

    return routes
