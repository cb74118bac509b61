"""The local plane's OTLP/HTTP trace receiver: the spans that go to X-Ray when deployed, kept per trace.

Functions export to it because the plane sets ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` in their
environment, as the ADOT collector layer's endpoint would be on AWS. It binds 127.0.0.1 only, and keeps
each span as a plain dict (see :mod:`infra.traces`), also appended to ``spans.jsonl`` in the state dir.
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from functions.runtime.tracing import xray_trace_id

MAX_BODY = 8 * 1024 * 1024


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[dict[str, Any]]:
    """OTLP protobuf -> spans as dicts; ids in X-Ray form (trace) and hex (span)."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return [
        _span(span, str(resource.get("service.name", "unknown")))
        for resource_spans in request.resource_spans
        for resource in [{kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}]
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def _span(span: Any, service: str) -> dict[str, Any]:
    return {
        "trace_id": xray_trace_id(int.from_bytes(span.trace_id, "big")),
        "span_id": span.span_id.hex(),
        "parent_id": span.parent_span_id.hex() or None,
        "name": span.name,
        "service": service,
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "status": "error" if span.status.code == Status.STATUS_CODE_ERROR else "ok",
        "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
        "events": [event.name for event in span.events],
    }


def read_journal(path: Path, trace_id: str) -> list[dict[str, Any]]:
    """A trace's spans from a stopped plane's ``spans.jsonl``, oldest first."""
    with path.open() as journal:
        spans = [span for line in journal if line.strip() and (span := json.loads(line))["trace_id"] == trace_id]
    return sorted(spans, key=lambda s: s["start_ns"])


class SpanStore:
    def __init__(self, journal: Path | None = None) -> None:
        self._spans: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._journal: IO[str] | None = journal.open("a", buffering=1) if journal is not None else None

    def add(self, spans: list[dict[str, Any]]) -> None:
        with self._lock:
            for span in spans:
                self._spans[span["trace_id"]].append(span)
                if self._journal is not None:
                    self._journal.write(json.dumps(span) + "\n")

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._spans.get(trace_id, []), key=lambda s: s["start_ns"])

    def close(self) -> None:
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None


class OtlpReceiver:
    """``POST /v1/traces`` (application/x-protobuf) on 127.0.0.1; started and stopped with the plane."""

    def __init__(self, store: SpanStore, port: int = 0) -> None:
        self.store = store
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path != "/v1/traces" or not 0 < length <= MAX_BODY:
                    self._answer(404 if self.path != "/v1/traces" else 400)
                    return
                try:
                    receiver.store.add(decode(self.rfile.read(length)))
                except DecodeError:
                    self._answer(400)
                    return
                self._answer(200)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: exports are not access-logged."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def start(self) -> OtlpReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="agentplane-otlp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.store.close()
