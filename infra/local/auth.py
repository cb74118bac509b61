"""Local credentials per persona and SigV4 on the local API: who is calling, and may they call this route.

The persona roles and their routes come from the template (``agentplane:persona`` metadata and each role's
``execute-api:Invoke`` statements), so the local plane enforces what IAM would enforce on AWS.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.template import ACCOUNT_ID, REGION, Physical, Resolver, Template

# Resource metadata on each persona role (written by infra.components.personas): the persona's name.
PERSONA_METADATA = "agentplane:persona"
SERVICE = "execute-api"
LOCAL_ROUTES_PERSONA = "admin"  # who may call the plane's own /local/... routes (no template policy names them)
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)  # what AWS allows between the signer's clock and its own
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


class AuthError(Exception):
    """A refused request: 401 (who are you?) or 403 (not this route)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail

    @property
    def kind(self) -> str:
        return "unauthenticated" if self.status == 401 else "forbidden"


@dataclass(frozen=True)
class Credential:
    access_key_id: str
    secret_access_key: str
    persona: str
    session: str  # the role-session name: the person holding the key (their source identity on AWS)
    api_key: str | None = None  # the persona's x-api-key: its usage plan (infra.local.throttle)


@dataclass(frozen=True)
class Persona:
    name: str
    role_name: str
    role_id: str
    allowed: tuple[tuple[str, str], ...]  # (METHOD, path) patterns; IAM wildcards
    denied: tuple[tuple[str, str], ...] = ()

    def allows(self, method: str, path: str) -> bool:
        def matches(routes: tuple[tuple[str, str], ...]) -> bool:
            return any(_pattern(m + p).fullmatch(method + path) for m, p in routes)

        return matches(self.allowed) and not matches(self.denied)


@functools.lru_cache(maxsize=256)
def _pattern(resource: str) -> re.Pattern[str]:
    """IAM resource matching: ``*`` is any run of characters (``/`` included), ``?`` is one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in resource))


def route_of(arn: str) -> tuple[str, str]:
    """``arn:aws:execute-api:<region>:<account>:<api>/<stage>/<METHOD>/<path>`` -> (METHOD, /path); ``*``: any."""
    if arn == "*":
        return "*", ""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[2] != SERVICE:
        raise ValueError(f"not an execute-api ARN: {arn}")
    _api, _stage, *rest = parts[5].split("/", 3)
    method = rest[0] if rest else "*"
    path = ("/" + rest[1]) if len(rest) > 1 else ""
    return method, path


def _statements(template: Template, role_lid: str) -> Iterator[dict[str, Any]]:
    """The role's inline statements and those of every AWS::IAM::Policy attached to it."""
    role = template.resources[role_lid].get("Properties", {})
    for policy in role.get("Policies", []):
        yield from policy["PolicyDocument"]["Statement"]
    for resource in template.resources.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_lid} in props.get("Roles", []):
            yield from props["PolicyDocument"]["Statement"]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def personas_in(template: Template, resolver: Resolver, physical: Mapping[str, Physical]) -> dict[str, Persona]:
    """Each persona role of the template, with the API routes its policies allow (and deny)."""
    found: dict[str, Persona] = {}
    for lid, resource in template.resources.items():
        name = resource.get("Metadata", {}).get(PERSONA_METADATA)
        if resource["Type"] != "AWS::IAM::Role" or name is None:
            continue
        routes: dict[str, list[tuple[str, str]]] = {"Allow": [], "Deny": []}
        for statement in _statements(template, lid):
            actions = _as_list(statement.get("Action", []))
            if not {"execute-api:Invoke", "execute-api:*", "*"} & set(actions):
                continue
            arns = _as_list(resolver.resolve(statement["Resource"]))
            routes[statement.get("Effect", "Allow")].extend(route_of(str(arn)) for arn in arns)
        role = physical[lid]
        found[name] = Persona(
            name=name,
            role_name=role.ref,
            role_id=str(role.attributes.get("RoleId", role.ref)),
            allowed=tuple(routes["Allow"]),
            denied=tuple(routes["Deny"]),
        )
    return found


# --- signing and checking signatures ------------------------------------------------------------


def sign(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    region: str = REGION,
) -> dict[str, str]:
    """The request's headers with ``X-Amz-Date`` and a SigV4 ``Authorization`` for execute-api added."""
    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers))
    SigV4Auth(Credentials(access_key_id, secret_access_key, session_token), SERVICE, region).add_auth(request)
    return dict(request.headers.items())


def _signature(
    method: str, url: str, signed: Mapping[str, str], body: bytes, credential: Credential, amz_date: str
) -> str:
    """The signature botocore computes for this request at ``amz_date``, from the headers that were signed."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(signed))
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(credential.access_key_id, credential.secret_access_key), SERVICE, REGION)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))


@dataclass(frozen=True)
class _Authorization:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str


def _parse_authorization(header: str) -> _Authorization:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(401, "Invalid signature", f"the Authorization header must use {ALGORITHM}")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    scope = fields.get("Credential", "").split("/")
    signed = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    if len(scope) != 5 or scope[4] != "aws4_request" or not signed or not re.fullmatch(r"[0-9a-f]{64}", signature):
        raise AuthError(
            401, "Invalid signature", "the Authorization header needs Credential, SignedHeaders and Signature"
        )
    return _Authorization(scope[0], scope[1], scope[2], scope[3], signed.split(";"), signature)


def _new_access_key_id() -> str:
    return "AKIALOCAL" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(11))


def _now() -> datetime:
    return datetime.now(UTC)


# The local planes this process serves, by URL: in-process clients (the demo, the e2e tests) sign with their keys.
_served: dict[str, LocalAuth] = {}
_served_lock = threading.Lock()


def served_at(url: str) -> LocalAuth | None:
    with _served_lock:
        return _served.get(url.rstrip("/"))


class LocalAuth:
    """The plane's credential store and its SigV4 check: one key per persona at start, more on request."""

    def __init__(
        self,
        personas: Mapping[str, Persona],
        *,
        api_keys: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.personas = dict(personas)
        self.api_keys = dict(api_keys or {})
        self._clock = clock
        self._keys: dict[str, Credential] = {}
        self._lock = threading.Lock()
        self._url: str | None = None
        self.defaults = {name: self.issue(name) for name in sorted(self.personas)}

    def issue(self, persona: str, *, person: str | None = None) -> Credential:
        """A new key for ``persona``, held by ``person``: its session is named after the person, as the persona
        roles' trust policy requires on AWS (the source identity). Without one, each key is a person of its own
        (the persona's name for the first key, then ``<persona>-2``...)."""
        if persona not in self.personas:
            raise KeyError(f"no persona {persona!r}; the template has {', '.join(sorted(self.personas)) or 'none'}")
        with self._lock:
            issued = sum(1 for key in self._keys.values() if key.persona == persona)
            credential = Credential(
                access_key_id=_new_access_key_id(),
                secret_access_key=secrets.token_urlsafe(30),
                persona=persona,
                session=person or (persona if issued == 0 else f"{persona}-{issued + 1}"),
                api_key=self.api_keys.get(persona),
            )
            self._keys[credential.access_key_id] = credential
        return credential

    def adopt(self, saved: Mapping[str, Mapping[str, str]]) -> int:
        """Serve the default keys a previous plane on the same state dir wrote (``credentials.json``) instead of new
        ones, so its callers' keys work after a restart; personas the template no longer has are left out."""
        adopted = 0
        with self._lock:
            for name, key in saved.items():
                if name not in self.personas or not {"access_key_id", "secret_access_key"} <= set(key):
                    continue
                replaced = self.defaults.get(name)
                if replaced is not None:
                    self._keys.pop(replaced.access_key_id, None)
                credential = Credential(
                    access_key_id=key["access_key_id"],
                    secret_access_key=key["secret_access_key"],
                    persona=name,
                    session=replaced.session if replaced is not None else name,
                    api_key=self.api_keys.get(name),
                )
                self._keys[credential.access_key_id] = self.defaults[name] = credential
                adopted += 1
        return adopted

    def write(self, path: Path) -> None:
        """``{persona: {access_key_id, secret_access_key, api_key}}``, readable by its owner only."""
        document = {
            name: {
                "access_key_id": key.access_key_id,
                "secret_access_key": key.secret_access_key,
                **({"api_key": key.api_key} if key.api_key else {}),
            }
            for name, key in self.defaults.items()
        }
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")

    def serve(self, url: str) -> None:
        with _served_lock:
            self._url = url.rstrip("/")
            _served[self._url] = self

    def withdraw(self) -> None:
        with _served_lock:
            if self._url is not None and _served.get(self._url) is self:
                del _served[self._url]
            self._url = None

    # --- per request -----------------------------------------------------------------------------

    def authenticate(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Credential:
        """The key that signed this request, or AuthError(401)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        header = lowered.get("authorization")
        if not header:
            raise AuthError(
                401, "Missing authentication token", f"sign the request with SigV4 (service {SERVICE}, {REGION})"
            )
        auth = _parse_authorization(header)
        if (auth.region, auth.service) != (REGION, SERVICE):
            raise AuthError(401, "Invalid signature", f"the credential scope must name {REGION}/{SERVICE}")
        missing = [name for name in ("host", "x-amz-date", *auth.signed_headers) if name not in lowered]
        if missing or not {"host", "x-amz-date"} <= set(auth.signed_headers):
            raise AuthError(401, "Invalid signature", "host and x-amz-date must be sent and signed")
        amz_date = lowered["x-amz-date"]
        try:
            signed_at = datetime.strptime(amz_date, _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise AuthError(401, "Invalid signature", f"X-Amz-Date {amz_date!r} is not {_AMZ_DATE}") from None
        if amz_date[:8] != auth.date:
            raise AuthError(401, "Invalid signature", "the credential scope's date is not the X-Amz-Date's")
        if abs(self._clock() - signed_at) > MAX_SKEW:
            raise AuthError(401, "Signature expired", f"signed at {amz_date}, more than 5 minutes from now")
        with self._lock:
            credential = self._keys.get(auth.access_key_id)
        if credential is None:
            raise AuthError(401, "Invalid signature", "the access key id is not one this plane issued")
        claimed = lowered.get("x-amz-content-sha256")
        if claimed is not None and not hmac.compare_digest(claimed, hashlib.sha256(body).hexdigest()):
            # botocore signs the claimed hash as is: a body that does not match it must not pass.
            raise AuthError(401, "Invalid signature", "X-Amz-Content-SHA256 is not the body's hash")
        url = f"http://{lowered['host']}{raw_path}"
        expected = _signature(method, url, {h: lowered[h] for h in auth.signed_headers}, body, credential, amz_date)
        if not hmac.compare_digest(expected, auth.signature):
            raise AuthError(
                401, "Invalid signature", "the signature calculated for this request does not match the one sent"
            )
        return credential

    def authorize(self, credential: Credential, method: str, path: str) -> dict[str, str]:
        """The caller as API Gateway puts it into ``requestContext.identity``, or AuthError(403)."""
        persona = self.personas[credential.persona]
        if not persona.allows(method, path):
            raise AuthError(403, "Forbidden", f"the {persona.name} persona may not {method} {path}")
        return self._identity(credential)

    def _identity(self, credential: Credential) -> dict[str, str]:
        persona = self.personas[credential.persona]
        principal = f"{persona.role_id}:{credential.session}"
        return {
            "userArn": f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{persona.role_name}/{credential.session}",
            "caller": principal,
            "user": principal,
            "accessKey": credential.access_key_id,
            "accountId": ACCOUNT_ID,
        }

    def identify(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> dict[str, str]:
        credential = self.authenticate(method, raw_path, headers, body)
        return self.authorize(credential, method, raw_path.split("?", 1)[0])

    def identify_persona(
        self, persona: str, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """As :meth:`identify`, for a route no policy names (the plane's own): only ``persona`` may call it."""
        credential = self.authenticate(method, raw_path, headers, body)
        if credential.persona != persona:
            path = raw_path.split("?", 1)[0]
            raise AuthError(403, "Forbidden", f"the {credential.persona} persona may not {method} {path}")
        return self._identity(credential)
