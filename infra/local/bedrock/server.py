"""Converse over HTTP as Bedrock Runtime serves it (rest-json): ``POST /model/{modelId}/converse``.

Errors carry Bedrock's status, its ``x-amzn-ErrorType`` header and a ``{"message": ...}`` body, which is what
botocore reads to raise the right ``ClientError``. Only Converse is served; any other operation is answered with
``UnknownOperationException``, naming what the local Bedrock does not emulate.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from infra.local.bedrock.errors import BedrockError, validation

if TYPE_CHECKING:
    from infra.local.bedrock.service import LocalBedrock

MAX_BODY_BYTES = 32 * 1024 * 1024
IDLE_TIMEOUT_S = 30.0  # an idle keep-alive connection is closed after this


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agentplane-local-bedrock"
    timeout = IDLE_TIMEOUT_S
    server: _Server

    def do_POST(self) -> None:
        parts = self.path.split("?", 1)[0].split("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(validation("Input is too long for requested model."))
            return
        raw = self.rfile.read(length)
        if len(parts) != 4 or parts[1] != "model" or parts[3] != "converse":
            operation = parts[3] if len(parts) == 4 and parts[1] == "model" else self.path
            self._send(
                404,
                {"message": f"The local Bedrock Runtime serves Converse only; {operation} is not emulated."},
                {"x-amzn-errortype": "UnknownOperationException"},
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._error(validation("Malformed input request, please reformat your input and try again."))
            return
        body["modelId"] = unquote(parts[2])  # a URI member: botocore sends it in the path
        bedrock = self.server.bedrock
        principal = bedrock.authorizer.from_headers(dict(self.headers)) if bedrock.authorizer else None
        try:
            response = bedrock.answer(body, principal)
        except BedrockError as error:
            self._error(error)
            return
        model = response["additionalModelResponseFields"]["agentplane"]["model"]
        self._send(200, response, {"x-agentplane-local-model": f"{model} (local stand-in)"})

    def do_GET(self) -> None:
        self._send(
            404,
            {"message": "The local Bedrock Runtime serves Converse only."},
            {"x-amzn-errortype": "UnknownOperationException"},
        )

    def _error(self, error: BedrockError) -> None:
        self._send(error.status, error.body(), error.headers())

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for name, value in headers.items():
            self.send_header(name, value.encode("ascii", "replace").decode())
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # callers see their answers; the server writes no access log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bedrock: LocalBedrock) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bedrock = bedrock


class BedrockServer:
    """The HTTP server on 127.0.0.1 (ephemeral port), in a thread of its own."""

    def __init__(self, bedrock: LocalBedrock) -> None:
        self._server = _Server(bedrock)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> BedrockServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
