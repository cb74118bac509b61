"""IAM as deployed: each function calls AWS with its own role's credentials, and moto evaluates its role's policies.

The plane creates every template role and its inline policies in moto's IAM, assumes each function's role, and
hands the function those temporary credentials. moto finds the session a request's access key belongs to and
evaluates the role's policies with its own evaluator (``moto.iam.access_control``), but for most services it
evaluates every action against the resource ``*``, which never matches a policy scoped to one table or bus. The
gate below names the resource each request acts on, as IAM does (the table, index, function qualifier, state
machine, bus, key, endpoint), and the condition keys the template uses (``states:StateMachineQualifier``);
moto's evaluator decides.

Only the functions' own requests are evaluated: the plane's provisioning and moto's internal calls (a state
machine invoking its tasks, event rules delivering to targets) carry no function credentials. What is not
evaluated is listed in docs/architecture.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import unquote

from moto.iam.access_control import IAMPolicy, IAMRequest, PermissionResult
from werkzeug.exceptions import HTTPException

from infra.local import moto_seam
from infra.local.template import ACCOUNT_ID, REGION

# The IAM action of an API operation where the two names differ.
_IAM_ACTIONS = {"lambda:Invoke": "lambda:InvokeFunction"}
# DynamoDB transactions are authorised item by item, as the items' own actions.
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
# Services whose requests name their resources below; any other service a function calls is not evaluated.
EVALUATED_SERVICES = ("dynamodb", "events", "kms", "lambda", "s3", "sagemaker", "sqs", "states")


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{resource}"


@dataclass(frozen=True)
class Check:
    action: str
    resource: str
    conditions: dict[str, str] | None = None


class AccessDenied(HTTPException):
    """What AWS answers a call its caller's policies do not allow, in the JSON protocols' error shape."""

    def __init__(self, caller: str, check: Check, status: int) -> None:
        super().__init__()
        self.code = status
        self.description = json.dumps(
            {
                "__type": "AccessDeniedException",
                "message": f"User: {caller} is not authorized to perform: {check.action} on resource: "
                f"{check.resource} because no identity-based policy allows the {check.action} action",
            }
        )


class RoleCredentials:
    """The plane's IAM: template roles and their inline policies, and one session per function."""

    def __init__(self, client: Callable[[str], Any]) -> None:
        self.client = client
        self._sessions: dict[str, str] = {}  # access key id -> the function it was issued to
        self._lock = threading.Lock()

    def put_policy(self, role_name: str, policy_name: str, document: dict[str, Any]) -> None:
        self.client("iam").put_role_policy(
            RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
        )

    def issue(self, role_arn: str, function_name: str) -> dict[str, str]:
        """Temporary credentials of ``role_arn`` for one function, as Lambda hands its execution role's."""
        credentials = self.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=function_name[:64])[
            "Credentials"
        ]
        with self._lock:
            self._sessions[credentials["AccessKeyId"]] = function_name
        return {
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
        }

    def is_function_session(self, access_key_id: str) -> bool:
        with self._lock:
            return access_key_id in self._sessions


class IamEnforcement:
    """Routes moto's authorisation step through :func:`checks_for` for requests signed by a function's session."""

    def __init__(self, credentials: RoleCredentials, log: IO[str] | None = None) -> None:
        self.credentials = credentials
        self.denied: list[tuple[str, Check]] = []  # (caller, what was refused): what tests and the plane report
        self.log = log  # one line per refusal, for whoever wonders why a function got AccessDenied
        # Told of every request a function makes that its role allows: (service, IAM action name, request body).
        self.observers: list[Callable[[str, str, dict[str, Any]], None]] = []
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        enforcement = self

        def authorize(response: Any, iam_request_cls: type, resource: str = "*") -> None:
            key = _access_key(response.headers.get("Authorization", ""))
            if key is None or not enforcement.credentials.is_function_session(key):
                return None  # the plane's own calls and moto's internal ones are not a function's
            enforcement.authorize(response, iam_request_cls, resource)
            return None

        self._patches.apply("iam.authorize", authorize)

    def uninstall(self) -> None:
        self._patches.restore()

    def authorize(self, response: Any, iam_request_cls: type, resource: str) -> None:
        request = iam_request_cls(
            account_id=response.current_account,
            method=response.method,
            path=response.raw_path,
            data=response.data,
            body=response.raw_body,
            headers=response.headers,
            action=response._get_action(),
        )
        # moto found the session the access key belongs to. Signatures are not re-checked: moto recomputes them
        # from the request as its server received it, which differs from what botocore signed for some paths
        # (an ARN in a Lambda path, some S3 queries).
        service, _, operation = request._action.partition(":")
        if iam_request_cls is not IAMRequest:  # S3 names its own resource (bucket and key) and its own error
            try:
                request.check_action_permitted(resource)
            except Exception:
                self._refused(request._access_key.arn, Check(request._action, resource))
                raise
        elif service in EVALUATED_SERVICES:
            policies = request._access_key.collect_policies()
            caller = request._access_key.arn
            for check in checks_for(service, operation, response, resource):
                if not _permitted(policies, check):
                    self._refused(caller, check)
                    raise AccessDenied(caller, check, 403 if service in ("lambda", "sagemaker") else 400)
        if self.observers:
            body = {} if service == "s3" else _body(response)
            for observer in self.observers:
                observer(service, operation, body)

    def _refused(self, caller: str, check: Check) -> None:
        self.denied.append((caller, check))
        if self.log is not None:
            self.log.write(f"AccessDenied {caller} {check.action} {check.resource} {check.conditions or ''}\n")


def _permitted(policies: list[Any], check: Check) -> bool:
    permitted = False
    for policy in policies:
        result = IAMPolicy(policy).is_action_permitted(
            check.action, check.resource, incoming_condition_values=check.conditions
        )
        if result == PermissionResult.DENIED:
            return False
        permitted = permitted or result == PermissionResult.PERMITTED
    return permitted


def _access_key(authorization: str) -> str | None:
    _, found, rest = authorization.partition("Credential=")
    return rest.split("/", 1)[0] if found else None


def _body(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.raw_body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def checks_for(service: str, operation: str, response: Any, resource: str) -> Iterator[Check]:
    """What IAM checks for one request: (action, resource, conditions), one per resource it touches."""
    action = _IAM_ACTIONS.get(f"{service}:{operation}", f"{service}:{operation}")
    if service == "dynamodb":
        yield from _dynamodb(operation, _body(response))
    elif service == "lambda":
        params = response.uri_match or {}  # the operation's URI parameters, by their API names
        name = unquote(params.get("FunctionName", "*"))
        qualifier = params.get("Name") if operation == "GetAlias" else None
        qualifier = qualifier or (response.querystring.get("Qualifier") or [None])[0]
        yield Check(action, _function_arn(name, qualifier))
    elif service == "states":
        yield from _states(action, _body(response))
    elif service == "events":
        buses = {entry.get("EventBusName") or "default" for entry in _body(response).get("Entries", [])}
        for bus in sorted(buses):
            yield Check(action, bus if bus.startswith("arn:") else _arn("events", f"event-bus/{bus}"))
    elif service == "kms":
        key = str(_body(response).get("KeyId", "*"))
        yield Check(action, key if key.startswith("arn:") else _arn("kms", f"key/{key}"))
    elif service == "sagemaker":
        endpoint = unquote((response.uri_match or {}).get("EndpointName", "*"))
        yield Check(action, _arn("sagemaker", f"endpoint/{endpoint.lower()}"))
    else:  # sqs: moto names the queue itself
        yield Check(action, resource)


def _dynamodb(operation: str, body: dict[str, Any]) -> Iterator[Check]:
    def table(name: str, index: str | None = None) -> str:
        arn = name if name.startswith("arn:") else _arn("dynamodb", f"table/{name}")
        return f"{arn}/index/{index}" if index else arn

    if operation in ("TransactWriteItems", "TransactGetItems"):
        for item in body.get("TransactItems", []):
            for kind, request in item.items():
                yield Check(f"dynamodb:{_TRANSACT_ACTIONS.get(kind, 'GetItem')}", table(request["TableName"]))
    elif operation in ("BatchGetItem", "BatchWriteItem"):
        for name in body.get("RequestItems", {}):
            yield Check(f"dynamodb:{operation}", table(name))
    else:
        yield Check(f"dynamodb:{operation}", table(str(body.get("TableName", "*")), body.get("IndexName")))


def _function_arn(name: str, qualifier: str | None) -> str:
    if name.startswith("arn:"):
        return f"{name}:{qualifier}" if qualifier and name.count(":") == 6 else name
    base, _, named_qualifier = name.partition(":")
    qualifier = qualifier or named_qualifier or None
    return _arn("lambda", f"function:{base}" + (f":{qualifier}" if qualifier else ""))


def _states(action: str, body: dict[str, Any]) -> Iterator[Check]:
    machine = body.get("stateMachineArn") or body.get("stateMachineAliasArn") or body.get("stateMachineVersionArn")
    if isinstance(machine, str):
        # A call through an alias or version names the machine ARN with a qualifier: IAM sees the qualifier.
        parts = machine.split(":")
        qualifier = parts[7] if len(parts) > 7 else None
        conditions = {"states:StateMachineQualifier": qualifier} if qualifier else None
        yield Check(action, machine, conditions)
        return
    execution = body.get("executionArn")
    if isinstance(execution, str):
        yield Check(action, execution)
        return
    token = body.get("taskToken")
    if isinstance(token, str):
        yield Check(action, _machine_waiting_on(token))
        return
    yield Check(action, "*")


def _machine_waiting_on(token: str) -> str:
    """A task token's state machine: what ``grantTaskResponse`` names, and IAM checks for SendTask*."""
    from moto.stepfunctions.responses import get_backend

    backend = get_backend(ACCOUNT_ID, REGION)
    for machine in backend.state_machines:
        for execution in machine.executions:
            worker = getattr(execution, "exec_worker", None)
            if worker is not None and worker.env.callback_pool_manager.get(token) is not None:
                return str(machine.arn)
    return "*"
