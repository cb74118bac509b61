"""SigV4 on the local API and what the API does with the caller: signatures, route patterns, personas, read rules."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.api.service import Caller, ProblemError, caller_from, load_persona_roles
from functions.runtime.executions import ExecutionItem
from infra import cli
from infra.components.personas import PERSONA_ROUTES
from infra.local.auth import AuthError, Credential, LocalAuth, Persona, personas_in, route_of, sign
from infra.local.http_api import LocalApi
from infra.local.provision import ApiDefinition
from infra.local.template import Physical, Resolver, Template

pytestmark = pytest.mark.unit

BASE = "http://127.0.0.1:4577"
RUN = "/v1/workflows/doc-review/executions"


def persona(name: str) -> Persona:
    return Persona(
        name=name,
        role_name=f"agentplane-{name}-role",
        role_id=f"AROA{name.upper()}",
        allowed=tuple(PERSONA_ROUTES[name]),
    )


@pytest.fixture
def auth() -> LocalAuth:
    return LocalAuth({name: persona(name) for name in ("submitter", "auditor")})


def signed(
    key: Credential, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, str]:
    """Headers as a client sends them: what botocore signed, plus the Host the HTTP client adds."""
    sent = sign(
        method,
        BASE + path,
        {"Content-Type": "application/json", **(headers or {})},
        body,
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
    )
    return {**sent, "Host": "127.0.0.1:4577"}


# --- signatures -----------------------------------------------------------------------------------


def test_a_good_signature_names_the_key_and_its_persona(auth: LocalAuth) -> None:
    key = auth.defaults["submitter"]
    body = b'{"document": {"title": "t", "text": "x"}}'

    identity = auth.identify("POST", RUN, signed(key, "POST", RUN, body), body)

    assert identity["userArn"] == "arn:aws:sts::123456789012:assumed-role/agentplane-submitter-role/submitter"
    assert identity["caller"] == "AROASUBMITTER:submitter"
    assert identity["accessKey"] == key.access_key_id


def test_a_query_string_is_part_of_what_is_signed(auth: LocalAuth) -> None:
    key = auth.defaults["auditor"]
    headers = signed(key, "GET", "/v1/audit/export?after=3&chain=a")

    assert auth.authenticate("GET", "/v1/audit/export?after=3&chain=a", headers, b"") == key
    with pytest.raises(AuthError) as changed:
        auth.authenticate("GET", "/v1/audit/export?after=4&chain=a", headers, b"")
    assert changed.value.status == 401


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b + b" "), id="body changed"),
        pytest.param(lambda h, b: ({**h, "Content-Type": "text/plain"}, b), id="signed header changed"),
        pytest.param(lambda h, b: ({**h, "Host": "127.0.0.1:9999"}, b), id="host changed"),
        pytest.param(
            lambda h, b: ({**h, "Authorization": h["Authorization"][:-4] + "0000"}, b), id="signature changed"
        ),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "Authorization"}, b), id="no Authorization"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "X-Amz-Date"}, b), id="no X-Amz-Date"),
        pytest.param(lambda h, b: ({**h, "X-Amz-Content-SHA256": "0" * 64}, b), id="claimed body hash"),
    ],
)
def test_a_tampered_or_incomplete_request_is_401(auth: LocalAuth, tamper: Any) -> None:
    body = b'{"document": {"title": "t", "text": "x"}}'
    headers, sent = tamper(signed(auth.defaults["submitter"], "POST", RUN, body), body)

    with pytest.raises(AuthError) as refused:
        auth.identify("POST", RUN, headers, sent)

    assert refused.value.status == 401
    assert refused.value.kind == "unauthenticated"


def test_a_wrong_secret_or_an_unknown_key_is_401(auth: LocalAuth) -> None:
    real = auth.defaults["submitter"]
    wrong_secret = Credential(real.access_key_id, "not-the-secret", "submitter", "submitter")
    unknown = Credential("AKIALOCALNOTISSUED00", real.secret_access_key, "submitter", "submitter")

    for key in (wrong_secret, unknown):
        with pytest.raises(AuthError) as refused:
            auth.authenticate("GET", "/v1/capabilities", signed(key, "GET", "/v1/capabilities"), b"")
        assert refused.value.status == 401


@pytest.mark.parametrize("skew", [timedelta(minutes=6), timedelta(minutes=-6)])
def test_a_signature_more_than_five_minutes_off_is_401(skew: timedelta) -> None:
    # GIVEN a plane whose clock is six minutes ahead of (or behind) the signer's
    auth = LocalAuth({"submitter": persona("submitter")}, clock=lambda: datetime.now(UTC) + skew)
    headers = signed(auth.defaults["submitter"], "GET", "/v1/capabilities")

    # WHEN / THEN the otherwise good signature is refused as expired
    with pytest.raises(AuthError, match="more than 5 minutes") as refused:
        auth.authenticate("GET", "/v1/capabilities", headers, b"")
    assert refused.value.status == 401


def test_a_signature_for_another_service_or_region_is_401(auth: LocalAuth) -> None:
    key = auth.defaults["submitter"]
    headers = sign(
        "GET",
        BASE + "/v1/capabilities",
        {},
        b"",
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
        region="eu-west-1",
    )

    with pytest.raises(AuthError, match="us-east-1/execute-api"):
        auth.authenticate("GET", "/v1/capabilities", {**headers, "Host": "127.0.0.1:4577"}, b"")


# --- personas and their routes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "method", "path", "allowed"),
    [
        ("submitter", "POST", "/v1/workflows/doc-review/executions", True),
        ("submitter", "POST", "/v1/workflows/quick-check/invoke", True),
        ("submitter", "GET", "/v1/executions/3f2a", True),
        ("submitter", "GET", "/v1/capabilities", True),
        ("submitter", "GET", "/v1/audit/export", False),
        ("submitter", "POST", "/v1/approvals/a-1", False),
        ("submitter", "DELETE", "/v1/executions/3f2a", False),
        ("submitter", "GET", "/v1/capabilities/extra", False),
        ("auditor", "GET", "/v1/audit/export", True),
        ("auditor", "GET", "/v1/audit/traces/1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31", True),
        ("auditor", "POST", "/v1/workflows/doc-review/executions", False),
        ("approver", "GET", "/v1/approvals", True),
        ("approver", "POST", "/v1/approvals/a-1", True),
        ("approver", "GET", "/v1/audit/export", False),
        ("admin", "POST", "/v1/approvals/a-1", True),
        ("admin", "GET", "/v1/audit/export", True),
        ("admin", "GET", "/v1/health/anything", False),
    ],
)
def test_route_patterns_allow_exactly_the_personas_routes(name: str, method: str, path: str, allowed: bool) -> None:
    assert persona(name).allows(method, path) is allowed


def test_a_wildcard_spans_slashes_as_in_iam() -> None:
    # IAM matches '*' across '/', so GET /v1/executions/* also covers deeper paths: the API must 404 those itself.
    assert persona("submitter").allows("GET", "/v1/executions/a/b")


def test_a_route_outside_the_persona_is_403_with_who_and_what(auth: LocalAuth) -> None:
    key = auth.defaults["auditor"]

    with pytest.raises(AuthError, match="auditor persona may not POST") as refused:
        auth.identify("POST", RUN, signed(key, "POST", RUN, b"{}"), b"{}")

    assert (refused.value.status, refused.value.kind) == (403, "forbidden")


def test_a_second_key_for_a_persona_is_a_second_identity(auth: LocalAuth) -> None:
    first = auth.defaults["submitter"]
    second = auth.issue("submitter")

    ids = [auth.identify("GET", "/v1/capabilities", signed(k, "GET", "/v1/capabilities"), b"") for k in (first, second)]

    assert ids[0]["userArn"].endswith("/submitter")
    assert ids[1]["userArn"].endswith("/submitter-2")
    assert second.access_key_id != first.access_key_id
    with pytest.raises(KeyError, match="no persona 'root'"):
        auth.issue("root")


def test_credentials_file_holds_one_key_per_persona_for_its_owner_only(auth: LocalAuth, tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    path.write_text("stale")
    path.chmod(0o644)

    auth.write(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = json.loads(path.read_text())
    assert set(written) == {"submitter", "auditor"}
    assert written["auditor"] == {
        "access_key_id": auth.defaults["auditor"].access_key_id,
        "secret_access_key": auth.defaults["auditor"].secret_access_key,
    }


@pytest.mark.parametrize(
    ("arn", "route"),
    [
        ("arn:aws:execute-api:us-east-1:123456789012:abc/api/GET/v1/executions/*", ("GET", "/v1/executions/*")),
        ("arn:aws:execute-api:us-east-1:123456789012:abc/api/POST/v1/approvals", ("POST", "/v1/approvals")),
        ("arn:aws:execute-api:us-east-1:123456789012:abc/api/*", ("*", "")),
        ("*", ("*", "")),
    ],
)
def test_execute_api_arns_map_back_to_routes(arn: str, route: tuple[str, str]) -> None:
    assert route_of(arn) == route


def test_personas_are_read_from_role_metadata_and_policies(tmp_path: Path) -> None:
    # GIVEN a template with one persona role, its policy (CDK's shape), and a role that is no persona
    def arn(suffix: str) -> dict[str, Any]:
        parts = ["arn:", {"Ref": "AWS::Partition"}, ":execute-api:", {"Ref": "AWS::Region"}, ":"]
        return {
            "Fn::Join": ["", [*parts, {"Ref": "AWS::AccountId"}, ":", {"Ref": "Api"}, "/", {"Ref": "Stage"}, suffix]]
        }

    body = {
        "Resources": {
            "AuditorRole": {"Type": "AWS::IAM::Role", "Properties": {}, "Metadata": {"agentplane:persona": "auditor"}},
            "OtherRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "AuditorPolicy": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "Roles": [{"Ref": "AuditorRole"}],
                    "PolicyDocument": {
                        "Statement": [
                            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": [arn("/GET/v1/audit/*")]},
                            {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": arn("/GET/v1/audit/export")},
                            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"},
                        ]
                    },
                },
            },
        }
    }
    physical = {
        "AuditorRole": Physical(
            "agentplane-AuditorRole", {"Arn": "arn:aws:iam::123456789012:role/x", "RoleId": "AROA1"}
        ),
        "OtherRole": Physical("agentplane-OtherRole", {"Arn": "arn:aws:iam::123456789012:role/y"}),
        "Api": Physical("abc123"),
        "Stage": Physical("api"),
    }

    # WHEN the plane reads it
    found = personas_in(Template("agentplane", body, tmp_path), Resolver("agentplane", physical), physical)

    # THEN only the tagged role is a persona, with the routes its statements name
    assert list(found) == ["auditor"]
    auditor = found["auditor"]
    assert (auditor.role_name, auditor.role_id) == ("agentplane-AuditorRole", "AROA1")
    assert auditor.allowed == (("GET", "/v1/audit/*"),)
    assert auditor.allows("GET", "/v1/audit/traces/t-1")
    assert not auditor.allows("GET", "/v1/audit/export")


# --- the local API's hook -------------------------------------------------------------------------


class FakeLambda:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def invoke(self, FunctionName: str, Payload: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.events.append(json.loads(Payload))
        return {"Payload": io.BytesIO(json.dumps({"statusCode": 200, "body": "{}"}).encode())}


def local_api(auth: LocalAuth) -> tuple[LocalApi, FakeLambda]:
    api = ApiDefinition(root_ids={"root"})
    api.resources = {
        "v1": {"parent": "root", "path_part": "v1"},
        "health": {"parent": "v1", "path_part": "health"},
        "caps": {"parent": "v1", "path_part": "capabilities"},
    }
    function = "arn:aws:lambda:us-east-1:1:function:api"
    uri = f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{function}/invocations"
    integration = {"Type": "AWS_PROXY", "Uri": uri}
    api.methods = [
        {"HttpMethod": "GET", "ResourceId": "health", "Integration": integration, "AuthorizationType": "NONE"},
        {"HttpMethod": "GET", "ResourceId": "caps", "Integration": integration, "AuthorizationType": "AWS_IAM"},
    ]
    fake = FakeLambda()
    return LocalApi(api, lambda _: fake, io.StringIO(), auth=auth), fake


def test_iam_routes_need_a_signature_and_pass_the_caller_on(auth: LocalAuth) -> None:
    api, fake = local_api(auth)
    key = auth.defaults["submitter"]

    unsigned = api.handle("GET", "/v1/capabilities", {"Host": "127.0.0.1:4577"}, b"")
    health = api.handle("GET", "/v1/health", {"Host": "127.0.0.1:4577"}, b"")
    ok = api.handle("GET", "/v1/capabilities", signed(key, "GET", "/v1/capabilities"), b"")

    assert unsigned.status == 401
    assert unsigned.headers["Content-Type"] == "application/problem+json"
    assert unsigned.headers["WWW-Authenticate"] == "AWS4-HMAC-SHA256"
    assert json.loads(unsigned.body)["type"].endswith("/unauthenticated")
    assert (health.status, ok.status) == (200, 200)
    health_event, caps_event = fake.events
    assert "userArn" not in health_event["requestContext"]["identity"]
    assert caps_event["requestContext"]["identity"]["userArn"].endswith(
        "assumed-role/agentplane-submitter-role/submitter"
    )


def test_the_cli_without_local_credentials_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a state dir no plane has written to
    # WHEN a client command would talk to the local plane
    code = cli.main(["status", "some-run", "--state-dir", str(tmp_path)])

    # THEN it exits 1 with one line naming the file it looked for
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert f"no local credentials at {tmp_path / 'credentials.json'}" in err


# --- what the API does with the caller ------------------------------------------------------------

SUBMITTER_ROLE = "agentplane-PersonasSubmitterRole-1A2B"
AUDITOR_ROLE = "agentplane-PersonasAuditorRole-3C4D"
ROLES = load_persona_roles(json.dumps({"submitter": SUBMITTER_ROLE, "auditor": AUDITOR_ROLE}))


def assumed(role: str, session: str) -> dict[str, str]:
    return {"userArn": f"arn:aws:sts::123456789012:assumed-role/{role}/{session}"}


def item(submitted_by: str | None) -> ExecutionItem:
    return ExecutionItem(
        execution_id="run-1",
        workflow="doc-review",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:doc-review:run-1",
        trace_id="1-6745a1b2-5e0c3d9a7b1f42e68c0d9a31",
        submitted_at="2026-11-23T12:00:00+00:00",
        request_sha256="0" * 64,
        submitted_by=submitted_by,
    )


def test_no_identity_is_401() -> None:
    for identity in (None, {}, {"sourceIp": "127.0.0.1"}):
        with pytest.raises(ProblemError) as refused:
            caller_from(identity, persona_roles=ROLES)
        assert refused.value.status == 401


def test_the_persona_is_the_roles_not_the_session_names() -> None:
    # A submitter who names its session "auditor" is still a submitter.
    spoofed = caller_from(assumed(SUBMITTER_ROLE, "auditor"), persona_roles=ROLES)
    auditor = caller_from(assumed(AUDITOR_ROLE, "alice"), persona_roles=ROLES)
    other_role = caller_from(assumed("someone-elses-role", "admin"), persona_roles=ROLES)
    user = caller_from({"userArn": "arn:aws:iam::123456789012:user/bob"}, persona_roles=ROLES)

    assert [c.persona for c in (spoofed, auditor, other_role, user)] == ["submitter", "auditor", None, None]


def test_a_submitter_reads_only_its_own_runs_and_readers_read_any() -> None:
    alice = Caller(f"arn:aws:sts::123456789012:assumed-role/{SUBMITTER_ROLE}/alice", "submitter")
    bob = Caller(f"arn:aws:sts::123456789012:assumed-role/{SUBMITTER_ROLE}/bob", "submitter")
    readers = [Caller(f"arn:aws:sts::123456789012:assumed-role/r/{p}", p) for p in ("approver", "auditor", "admin")]

    assert alice.may_read(item(alice.arn))
    assert not bob.may_read(item(alice.arn))
    assert not alice.may_read(item(None))  # a run from before RBAC: readers only
    assert all(reader.may_read(item(alice.arn)) and reader.may_read(item(None)) for reader in readers)


def test_a_restarted_plane_adopts_the_keys_its_state_dir_holds(auth: LocalAuth, tmp_path: Path) -> None:
    # GIVEN the keys a previous plane wrote, one of them for a persona the template no longer has
    previous = LocalAuth({name: persona(name) for name in ("submitter", "auditor")})
    path = tmp_path / "credentials.json"
    previous.write(path)
    saved = {**json.loads(path.read_text()), "root": {"access_key_id": "AKIAGONE", "secret_access_key": "x"}}
    replaced = auth.defaults["submitter"]

    adopted = auth.adopt(saved)

    # THEN the old keys sign requests again, the keys issued at start do not, and the gone persona is left out
    assert adopted == 2
    old = previous.defaults["submitter"]
    assert auth.defaults["submitter"].access_key_id == old.access_key_id
    assert auth.identify("POST", RUN, signed(old, "POST", RUN), b"")["userArn"].endswith("/submitter")
    with pytest.raises(AuthError):
        auth.identify("POST", RUN, signed(replaced, "POST", RUN), b"")
    assert "root" not in auth.defaults
