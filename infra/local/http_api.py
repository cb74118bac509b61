"""The template's REST API on 127.0.0.1: same routes, same request validation, same Lambda proxy integration."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema import Draft4Validator

from functions.runtime.tracing import new_trace_id
from infra.local.auth import LOCAL_ROUTES_PERSONA, AuthError, LocalAuth
from infra.local.provision import ApiDefinition
from infra.local.throttle import KeyRefused, UsagePlans

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
MAX_HEADER_BYTES = 10 * 1024  # API Gateway's limit on the request line and header values together
_XRAY_ROOT = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")
PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger(__name__)
_FUNCTION_IN_URI = re.compile(r"functions/(?P<arn>arn:[^/]+)/invocations")


@dataclass
class Route:
    method: str
    path: str  # /v1/workflows/{name}/executions
    function_arn: str
    authorization: str
    models: dict[str, str] = field(default_factory=dict)  # content type -> model name
    validate_body: bool = False
    validate_parameters: bool = False
    required_headers: list[str] = field(default_factory=list)
    api_key_required: bool = False

    @property
    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def match(self, parts: list[str]) -> dict[str, str] | None:
        segments = self.segments
        if len(segments) != len(parts):
            return None
        params: dict[str, str] = {}
        for segment, part in zip(segments, parts, strict=True):
            if segment.startswith("{") and segment.endswith("}"):
                params[segment[1:-1]] = part
            elif segment != part:
                return None
        return params

    @property
    def specificity(self) -> int:
        return sum(1 for s in self.segments if not s.startswith("{"))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def problem(status: int, title: str, detail: str, *, kind: str, instance: str, **extra: Any) -> Reply:
    body = {
        "type": f"https://agentplane.dev/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return Reply(status, {"Content-Type": PROBLEM_JSON}, json.dumps(body).encode())


def build_routes(api: ApiDefinition) -> list[Route]:
    def path_of(resource_id: str) -> str:
        if resource_id in api.root_ids:
            return ""
        resource = api.resources[resource_id]
        return f"{path_of(resource['parent'])}/{resource['path_part']}"

    routes = []
    for method in api.methods:
        integration = method.get("Integration", {})
        found = _FUNCTION_IN_URI.search(str(integration.get("Uri", "")))
        if integration.get("Type") != "AWS_PROXY" or found is None:
            continue
        validator = api.validators.get(method.get("RequestValidatorId", ""), {})
        parameters = method.get("RequestParameters", {})
        routes.append(
            Route(
                method=method["HttpMethod"],
                path=path_of(method["ResourceId"]) or "/",
                function_arn=found["arn"],
                authorization=method.get("AuthorizationType", "NONE"),
                models=dict(method.get("RequestModels", {})),
                validate_body=bool(validator.get("ValidateRequestBody")),
                validate_parameters=bool(validator.get("ValidateRequestParameters")),
                required_headers=[
                    name.removeprefix("method.request.header.")
                    for name, required in parameters.items()
                    if name.startswith("method.request.header.") and required
                ],
                api_key_required=bool(method.get("ApiKeyRequired")),
            )
        )
    return sorted(routes, key=lambda r: -r.specificity)


def schema_errors(validator: Draft4Validator, document: Any) -> list[dict[str, str]]:
    fields = [(_field(error), error.message) for error in validator.iter_errors(document)]
    return [{"field": field, "message": message} for field, message in sorted(fields)]


def _field(error: Any) -> str:
    path = [str(p) for p in error.absolute_path]
    # "required" and "additionalProperties" errors sit on the parent object; name the field itself.
    if error.validator in ("required", "additionalProperties"):
        path += re.findall(r"'([^']+)'", error.message)[:1]
    return ".".join(path) or "<body>"


def _trace_header(sent: str) -> str:
    """The caller's X-Ray header when its Root is a trace id, else a new trace: a malformed header is ignored,
    as a traced API Gateway stage starts a trace of its own for it."""
    fields = dict(part.strip().partition("=")[::2] for part in sent.split(";"))
    if _XRAY_ROOT.fullmatch(fields.get("Root", "")):
        return sent
    return f"Root={new_trace_id()}"


LocalRoute = Callable[[dict[str, list[str]]], Reply]


class LocalApi:
    """Template routes, plus the plane's own ``/local/...`` routes (what AWS does by itself, done on request)."""

    def __init__(
        self,
        api: ApiDefinition,
        client: Callable[[str], Any],
        access_log: IO[str],
        local_routes: dict[tuple[str, str], LocalRoute] | None = None,
        auth: LocalAuth | None = None,
        usage_plans: UsagePlans | None = None,
    ) -> None:
        self.local_routes = local_routes or {}
        self.auth = auth  # checks SigV4 on AWS_IAM routes; None leaves them open
        self.usage_plans = usage_plans  # API keys and throttling; None leaves them unchecked
        self.routes = build_routes(api)
        self.validators = {name: Draft4Validator(schema) for name, schema in api.models.items()}
        self.client = client
        self.access_log = access_log
        self._log_lock = threading.Lock()

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Reply:
        started = time.perf_counter()
        url = urlsplit(raw_path)
        path = url.path
        reply = self._dispatch(method, path, url.query, headers, body)
        with self._log_lock:
            self.access_log.write(
                json.dumps(
                    {
                        "httpMethod": method,
                        "path": path,
                        "status": reply.status,
                        "responseLength": len(reply.body),
                        "latencyMs": round((time.perf_counter() - started) * 1000, 2),
                    }
                )
                + "\n"
            )
        return reply

    def _dispatch(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Reply:
        local = self.local_routes.get((method, path))
        if local is not None:
            if self.auth is not None:
                # The plane's own routes start rollouts, inject faults and read every trace: admin only.
                try:
                    self.auth.identify_persona(
                        LOCAL_ROUTES_PERSONA, method, path + (f"?{query}" if query else ""), headers, body
                    )
                except AuthError as denied:
                    return self._refused(denied, path)
            return local(parse_qs(query))
        parts = [unquote(p) for p in path.split("/") if p]
        candidates = [(route, params) for route in self.routes if (params := route.match(parts)) is not None]
        if not candidates:
            # API Gateway's MISSING_AUTHENTICATION_TOKEN, rendered by the template's DEFAULT_4XX problem.
            return problem(403, "Request refused", "Missing Authentication Token", kind="refused", instance=path)
        allowed = [(r, p) for r, p in candidates if r.method == method]
        if not allowed:
            methods = ", ".join(sorted({r.method for r, _ in candidates}))
            reply = problem(
                405, "Method not allowed", f"{method} {path}: allowed {methods}", kind="refused", instance=path
            )
            reply.headers["Allow"] = methods
            return reply
        route, params = allowed[0]
        identity = {"sourceIp": "127.0.0.1"}
        if route.authorization == "AWS_IAM" and self.auth is not None:
            # As on API Gateway: who is calling and may they, before the body is looked at.
            try:
                identity |= self.auth.identify(method, path + (f"?{query}" if query else ""), headers, body)
            except AuthError as denied:
                return self._refused(denied, path)
        lowered = {k.lower(): v for k, v in headers.items()}
        refused = self._throttle(route, lowered, path) or self._validate(route, lowered, body, path)
        if refused is not None:
            return refused
        trace = _trace_header(lowered.get("x-amzn-trace-id", ""))
        event = {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": {**headers, "X-Amzn-Trace-Id": trace},
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in parse_qs(query).items()} or None,
            "multiValueQueryStringParameters": parse_qs(query) or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": path,
                "stage": "local",
                "requestId": str(uuid.uuid4()),
                "identity": identity,
            },
            "body": body.decode("utf-8", errors="replace") if body else None,
            "isBase64Encoded": False,
        }
        response = self.client("lambda").invoke(FunctionName=route.function_arn, Payload=json.dumps(event))
        payload = response["Payload"].read()
        if "FunctionError" in response:
            return problem(502, "Bad gateway", "the integration failed", kind="gateway-error", instance=path)
        result = json.loads(payload)
        # API Gateway merges both header maps of a proxy response; multi-value entries are comma-joined.
        out_headers = {str(k): ", ".join(map(str, v)) for k, v in (result.get("multiValueHeaders") or {}).items()}
        out_headers.update({str(k): str(v) for k, v in (result.get("headers") or {}).items()})
        out_headers["X-Amzn-Trace-Id"] = trace
        text = result.get("body") or ""
        return Reply(int(result.get("statusCode", 200)), out_headers, text.encode())

    @staticmethod
    def _refused(denied: AuthError, path: str) -> Reply:
        reply = problem(denied.status, denied.title, denied.detail, kind=denied.kind, instance=path)
        if denied.status == 401:
            reply.headers["WWW-Authenticate"] = "AWS4-HMAC-SHA256"
        return reply

    def _throttle(self, route: Route, headers: dict[str, str], path: str) -> Reply | None:
        """As API Gateway, after authorisation and before the body: the key, then its plan's bucket."""
        if not route.api_key_required or self.usage_plans is None:
            return None
        try:
            admission = self.usage_plans.admit(headers.get("x-api-key"))
        except KeyRefused as refused:
            return problem(403, "Forbidden", str(refused), kind="forbidden", instance=path)
        if admission.admitted:
            return None
        reply = problem(
            429,
            "Too many requests",
            f"this API key's usage plan is spent; retry in {admission.retry_after_s} s",
            kind="throttled",
            instance=path,
        )
        reply.headers["Retry-After"] = str(admission.retry_after_s)
        return reply

    def _validate(self, route: Route, headers: dict[str, str], body: bytes, path: str) -> Reply | None:
        if route.validate_parameters:
            missing = [h for h in route.required_headers if h.lower() not in headers]
            if missing:
                return problem(
                    400, "Invalid request parameters", f"missing header {missing[0]}", kind="validation", instance=path
                )
        if not (route.validate_body and route.models):
            return None
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        model = route.models.get(content_type) or route.models.get("$default")
        if model is None:
            return None
        try:
            document = json.loads(body or b"null")
            errors = schema_errors(self.validators[model], document)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past what a parser will follow
            return problem(
                400, "Invalid request body", "the body is not a JSON document", kind="validation", instance=path
            )
        if errors:
            first = errors[0]
            return problem(
                400,
                "Invalid request body",
                f"{first['field']}: {first['message']}",
                kind="validation",
                instance=path,
                errors=errors,
            )
        return None


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        try:
            length = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            self.send_error(400, "Content-Length is not a number")
            return
        header_bytes = len(self.requestline) + sum(len(k) + len(v) for k, v in self.headers.items())
        if header_bytes > MAX_HEADER_BYTES:
            self._discard(length)
            reply = problem(
                431,
                "Request header fields too large",
                f"the request line and headers are over {MAX_HEADER_BYTES} bytes",
                kind="refused",
                instance=self.path,
            )
            self.close_connection = True
        elif length > MAX_BODY_BYTES:
            self._discard(length)
            reply = problem(
                413, "Payload too large", f"body over {MAX_BODY_BYTES} bytes", kind="refused", instance=self.path
            )
            self.close_connection = True
        else:
            body = self.rfile.read(length) if length else b""
            try:
                reply = self.server.api.handle(self.command, self.path, dict(self.headers.items()), body)
            except Exception:
                logger.exception("local plane error on %s %s", self.command, self.path)
                reply = problem(
                    500, "Local plane error", "the request could not be completed", kind="internal", instance=self.path
                )
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a header line over 64 KiB, a malformed request line) as problems too."""
        self.close_connection = True
        if not getattr(self, "command", None):
            self.command = ""
        reply = problem(
            code,
            HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Bad request",
            message or "the request could not be read",
            kind="refused",
            instance=getattr(self, "path", "") or "",
        )
        self._send(reply)

    def __getattr__(self, name: str) -> Any:
        # Any other method (HEAD, OPTIONS, TRACE, made-up ones) is routed like the rest: 403/405 problems.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _discard(self, length: int) -> None:
        """Read what was sent: a client still uploading would otherwise see a broken pipe, not the answer."""
        remaining = min(length, 8 * MAX_BODY_BYTES)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                return
            remaining -= len(chunk)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        """The access log is written by LocalApi; no stderr noise."""


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, api: LocalApi, port: int) -> None:
        self.api = api
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])
