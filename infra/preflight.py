"""Preflight: what AWS would refuse, or make you regret, checked on a synthesized cloud assembly before a deploy.

Every check is pure: it reads the stack's template and the assets staged beside it (``aws:asset:path``
metadata), the same way the local plane reads them (:mod:`infra.local.template`), and the sample payloads in
``events/``. Nothing here calls AWS. ``agentplane preflight`` prints one line per finding.
"""

from __future__ import annotations

import ast
import json
import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any, Literal

from contracts.retention import retention as declared_retention
from infra import bytecode
from infra.bytecode import LAMBDA_PYTHON
from infra.conventions import ENVIRONMENT_METADATA, RETENTION_METADATA, WORKFLOW_METADATA
from infra.local.template import ACCOUNT_ID, REGION, Physical, Resolver, Template, TemplateError, dependents
from infra.paths import REPO_ROOT

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")

EVENTS_DIR = REPO_ROOT / "events"
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # a function's code and all its layers, unzipped
LAMBDA_DEFAULT_TIMEOUT_S = 3
API_GATEWAY_INTEGRATION_LIMIT_S = 29
STATES_PAYLOAD_LIMIT = 256 * 1024  # a state's input or output, and an execution's input
STACK_RESOURCE_LIMIT = 500
STACK_RESOURCE_WARNING = 400
SQS_DEFAULT_VISIBILITY_S = 30
# What Lambda's Python runtime provides beside the standard library (snapshot_restore_py: SnapStart's hooks).
LAMBDA_RUNTIME_MODULES = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six", "snapshot_restore_py"}
)
DEPENDENCY_GROUP_FIX = "add it to the `lambda` dependency group in pyproject.toml"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    resource: str  # a logical id, or the stack's name for stack-wide findings
    message: str  # one line, ending with the fix where there is one

    def line(self) -> str:
        return f"{self.severity:<7}  {self.resource}  {self.message}"

    def as_json(self) -> dict[str, str]:
        return asdict(self)


class PreflightError(ValueError):
    """The assembly cannot be checked (missing, or no such stack); one line."""


def stacks_in(assembly_dir: Path) -> list[str]:
    """The CloudFormation stacks a cloud assembly's manifest lists, in its order."""
    manifest = assembly_dir / "manifest.json"
    if not manifest.is_file():
        raise PreflightError(f"{assembly_dir}: not a cloud assembly (no manifest.json); run `agentplane synth`")
    artifacts: dict[str, Any] = json.loads(manifest.read_text()).get("artifacts", {})
    return [name for name, artifact in artifacts.items() if artifact.get("type") == "aws:cloudformation:stack"]


def preflight(
    assembly_dir: Path, stack: str | None = None, *, events_dir: Path | Sequence[Path] = EVENTS_DIR
) -> list[Finding]:
    """Every finding for ``stack`` (default: every stack of the assembly), errors first; sample payloads are read
    from ``events_dir`` (the projects' sample folders)."""
    names = stacks_in(assembly_dir)
    if stack is not None:
        if stack not in names:
            raise PreflightError(f"no stack {stack!r} in {assembly_dir} (stacks: {', '.join(names) or 'none'})")
        names = [stack]
    # A project's stack (the split layout) is checked inside its plane's, as the local plane stands them up.
    every = stacks_in(assembly_dir)
    planes = {name: dependents(assembly_dir, name) for name in every}
    joined = {project for projects in planes.values() for project in projects}
    names = list(dict.fromkeys(next((p for p in every if n in planes[p]), n) if n in joined else n for n in names))
    findings: list[Finding] = []
    for name in names:
        try:
            template = Template.load_plane(assembly_dir, name)
        except TemplateError as error:
            raise PreflightError(str(error)) from None
        findings.extend(StackCheck(template, events_dir).findings())
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))


# --- the template, as the checks see it --------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    logical_id: str
    directory: Path | None

    @property
    def python(self) -> Path | None:
        """What Lambda puts on sys.path from this layer (/opt/python)."""
        if self.directory is None or not (self.directory / "python").is_dir():
            return None
        return self.directory / "python"


@dataclass(frozen=True)
class Function:
    logical_id: str
    runtime: str
    handler: str
    timeout_s: int
    code_dir: Path | None
    layers: list[Layer]
    external_layers: list[str]  # layer ARNs from outside the stack: contents unknown here
    role: str | None


class _AnyAttribute(dict[str, str]):
    """Stand-in GetAtt attributes: any attribute of a resource resolves to a name that says whose it is."""

    def __init__(self, logical_id: str, **known: str) -> None:
        super().__init__(known)
        self.logical_id = logical_id

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> str:
        return f"{self.logical_id}.{key}"


LAMBDA_ARN_PREFIX = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:"


class StackCheck:
    def __init__(self, template: Template, events_dir: Path | Sequence[Path]) -> None:
        self.template = template
        self.resources = template.resources
        self.events_dirs = [events_dir] if isinstance(events_dir, Path) else list(events_dir)
        self.environment = template.body.get("Metadata", {}).get(ENVIRONMENT_METADATA)
        self.functions = {
            lid: self._function(lid, res)
            for lid, res in self.resources.items()
            if res["Type"] == "AWS::Lambda::Function"
        }
        self._definitions: dict[str, dict[str, Any]] = {}

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {lid: res for lid, res in self.resources.items() if res["Type"] == kind}

    def findings(self) -> Iterator[Finding]:
        yield from self.resource_count()
        for function in self.functions.values():
            yield from self.package_size(function)
            yield from self.import_closure(function)
        yield from self.largest_package()
        yield from self.bytecode()
        yield from self.queue_visibility()
        yield from self.task_timeouts()
        yield from self.synchronous_calls()
        yield from self.synchronous_invokes()
        yield from self.payloads()
        yield from self.object_lock()
        yield from self.account_wide()

    def _function(self, lid: str, res: dict[str, Any]) -> Function:
        props = res.get("Properties", {})
        layers, external = [], []
        for ref in props.get("Layers", []):
            target = ref.get("Ref") if isinstance(ref, dict) else None
            if target in self.resources:
                layers.append(Layer(target, self.template.asset_dir(target)))
            else:
                external.append(json.dumps(ref) if isinstance(ref, dict) else str(ref))
        role = props.get("Role")
        return Function(
            logical_id=lid,
            runtime=str(props.get("Runtime", "")),
            handler=str(props.get("Handler", "")),
            timeout_s=int(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S)),
            code_dir=self.template.asset_dir(lid),
            layers=layers,
            external_layers=external,
            role=role["Fn::GetAtt"][0] if isinstance(role, dict) and "Fn::GetAtt" in role else None,
        )

    # --- stack -------------------------------------------------------------------------------------------

    def resource_count(self) -> Iterator[Finding]:
        for stack, count in self.template.sizes.items():
            if count >= STACK_RESOURCE_LIMIT:
                yield Finding(
                    "error",
                    stack,
                    f"{count} resources, at CloudFormation's limit of {STACK_RESOURCE_LIMIT} per stack: the deploy "
                    "fails past it; give projects stacks of their own (--layout split)",
                )
            elif count >= STACK_RESOURCE_WARNING:
                yield Finding(
                    "warning",
                    stack,
                    f"{count} resources, near CloudFormation's {STACK_RESOURCE_LIMIT} per stack; "
                    "give projects stacks of their own (--layout split) before adding agents",
                )
            else:
                yield Finding("info", stack, f"{count} resources of CloudFormation's {STACK_RESOURCE_LIMIT} per stack")

    # --- packages ----------------------------------------------------------------------------------------

    def package_size(self, function: Function) -> Iterator[Finding]:
        lid = function.logical_id
        if function.code_dir is None:
            yield Finding(
                "warning",
                lid,
                "no staged asset (aws:asset:path metadata): its size is unchecked; "
                "synthesize with asset metadata (`agentplane synth` does)",
            )
            return
        total = self._package_bytes(function)
        share = (
            f"{_mb(total)} unzipped (code and {len(function.layers)} layers) of Lambda's {_mb(LAMBDA_UNZIPPED_LIMIT)}"
        )
        if total >= LAMBDA_UNZIPPED_LIMIT:
            yield Finding("error", lid, f"{share}: the deploy fails; move a large package out of its layers")
        elif total >= 0.8 * LAMBDA_UNZIPPED_LIMIT:
            yield Finding("warning", lid, f"{share}: little room for another dependency")
        if function.external_layers:
            yield Finding(
                "info",
                lid,
                f"{len(function.external_layers)} layer(s) from outside the stack are not counted in its size",
            )

    def bytecode(self) -> Iterator[Finding]:
        """Code shipped without Lambda's bytecode is compiled by every cold start (infra/bytecode.py)."""
        staged = [f for f in self.functions.values() if f.code_dir is not None]
        bare = [f.logical_id for f in staged if f.code_dir is not None and not bytecode.has_bytecode(f.code_dir)]
        if bare:
            yield Finding(
                "info",
                f"{len(bare)} of {len(staged)} functions",
                f"ship no bytecode for Python {LAMBDA_PYTHON}: each cold start compiles what it imports; "
                f"synthesize where a Python {LAMBDA_PYTHON} is found ({bytecode.ENV})",
            )

    def _package_bytes(self, function: Function) -> int:
        parts = [function.code_dir] + [layer.directory for layer in function.layers]
        return sum(_size(part) for part in parts if part is not None)

    def largest_package(self) -> Iterator[Finding]:
        staged = [f for f in self.functions.values() if f.code_dir is not None]
        if staged:
            largest = max(staged, key=self._package_bytes)
            size = self._package_bytes(largest)
            yield Finding(
                "info",
                largest.logical_id,
                f"the largest function: {_mb(size)} unzipped with its layers, of Lambda's {_mb(LAMBDA_UNZIPPED_LIMIT)}",
            )

    def import_closure(self, function: Function) -> Iterator[Finding]:
        if not function.runtime.startswith("python") or function.code_dir is None:
            return
        roots = [(function.code_dir, "its asset")] + [
            (layer.python, f"layer {layer.logical_id}") for layer in function.layers if layer.python is not None
        ]
        closure = ImportClosure(roots, _provided_by(function.layers))
        module = function.handler.rsplit(".", 1)[0]
        if closure.find(module) is None:
            yield Finding(
                "error",
                function.logical_id,
                f"handler {function.handler}: no module {module} in its "
                "asset or layers; point Handler at a module the asset stages",
            )
            return
        for missing in closure.missing(module):
            yield Finding("error", function.logical_id, missing.message())

    # --- timeouts ----------------------------------------------------------------------------------------

    def queue_visibility(self) -> Iterator[Finding]:
        """Lambda refuses an SQS event source whose visibility timeout is shorter than the function's timeout."""
        for lid, mapping in self.of_type("AWS::Lambda::EventSourceMapping").items():
            props = mapping["Properties"]
            source = props.get("EventSourceArn", {})
            queue = source.get("Fn::GetAtt", [None])[0] if isinstance(source, dict) else None
            if queue not in self.resources or self.resources[queue]["Type"] != "AWS::SQS::Queue":
                continue
            function = self._function_named(props.get("FunctionName"))
            if function is None:
                continue
            visibility = int(self.resources[queue]["Properties"].get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_S))
            if visibility < function.timeout_s:
                yield Finding(
                    "error",
                    lid,
                    f"queue {queue} hides a message for {visibility} s, less than "
                    f"{function.logical_id}'s {function.timeout_s} s timeout: the deploy fails; raise the "
                    "queue's VisibilityTimeout to at least the function's timeout",
                )

    def task_timeouts(self) -> Iterator[Finding]:
        for machine in self.of_type("AWS::StepFunctions::StateMachine"):
            for name, state in _all_states(self.definition(machine)):
                if state.get("Type") != "Task" or ".waitForTaskToken" in str(state.get("Resource")):
                    continue
                function = self._invoked_function(state)
                if function is None:
                    continue
                timeout = state.get("TimeoutSeconds")
                if timeout is None and "TimeoutSecondsPath" not in state:
                    yield Finding(
                        "warning",
                        machine,
                        f"state {name!r} invokes {function.logical_id} with no "
                        f"TimeoutSeconds: set it to the function's {function.timeout_s} s",
                    )
                elif timeout is not None and int(timeout) < function.timeout_s:
                    yield Finding(
                        "warning",
                        machine,
                        f"state {name!r} gives up after {timeout} s but "
                        f"{function.logical_id} may run {function.timeout_s} s: the invocation goes on "
                        "unobserved (a retry can run it twice); make the task timeout at least the "
                        "function's",
                    )

    def synchronous_calls(self) -> Iterator[Finding]:
        integrated = self._api_integrations()
        for function in self.functions.values():
            lid = function.logical_id
            api = lid in integrated
            if api and function.timeout_s > API_GATEWAY_INTEGRATION_LIMIT_S:
                yield Finding(
                    "warning",
                    lid,
                    f"timeout {function.timeout_s} s but API Gateway answers 504 after "
                    f"{API_GATEWAY_INTEGRATION_LIMIT_S} s: the client gets the 504 first; keep the API "
                    f"function's timeout at most {API_GATEWAY_INTEGRATION_LIMIT_S} s",
                )
            for machine in self._sync_targets(function):
                budget = self.workflow_budget_s(machine)
                if budget is None:
                    yield Finding(
                        "error",
                        lid,
                        f"waits on StartSyncExecution of {machine}, which has no bound "
                        "(no TimeoutSeconds on the machine or its tasks); set the workflow's TimeoutSeconds",
                    )
                    continue
                if api and budget > API_GATEWAY_INTEGRATION_LIMIT_S:
                    yield Finding(
                        "error",
                        lid,
                        f"answers API requests by waiting on {machine}, whose budget is "
                        f"{budget} s, past API Gateway's {API_GATEWAY_INTEGRATION_LIMIT_S} s: the client "
                        "gets 504 while the run goes on; shorten the Express workflow's TimeoutSeconds",
                    )
                if function.timeout_s < budget:
                    yield Finding(
                        "error",
                        lid,
                        f"timeout {function.timeout_s} s is shorter than the {budget} s "
                        f"budget of {machine}, which it waits on (StartSyncExecution): the function times "
                        "out while the run goes on; raise its timeout or shorten the workflow's",
                    )

    def synchronous_invokes(self) -> Iterator[Finding]:
        for function in self.functions.values():
            for callee in self._invoked_by(function):
                if function.timeout_s < callee.timeout_s:
                    yield Finding(
                        "warning",
                        function.logical_id,
                        f"may invoke {callee.logical_id} (lambda:InvokeFunction), which runs up to "
                        f"{callee.timeout_s} s, with a timeout of {function.timeout_s} s: waiting for its result "
                        "it times out first; raise its timeout to at least the callee's",
                    )

    def workflow_budget_s(self, machine: str) -> int | None:
        """The longest a run of ``machine`` can take: its TimeoutSeconds, or the slowest path through its tasks."""
        definition = self.definition(machine)
        ceiling = definition.get("TimeoutSeconds")
        path = self._path_budget(definition)
        bounds = [b for b in (ceiling, path) if b is not None]
        return int(min(bounds)) if bounds else None

    def _path_budget(self, definition: dict[str, Any]) -> float | None:
        states: dict[str, dict[str, Any]] = definition.get("States", {})
        memo: dict[str, float | None] = {}
        visiting: set[str] = set()

        def longest(name: str) -> float | None:
            if name in memo:
                return memo[name]
            if name in visiting:  # a loop: only the machine's own timeout bounds it
                return None
            visiting.add(name)
            state = states[name]
            own = self._state_budget(state)
            successors = [state.get("Next"), state.get("Default")]
            successors += [choice.get("Next") for choice in state.get("Choices", [])]
            successors += [catch.get("Next") for catch in state.get("Catch", [])]
            after: list[float | None] = [longest(s) for s in successors if s in states]
            visiting.discard(name)
            result = None if own is None or None in after else own + max([0.0, *(a for a in after if a is not None)])
            memo[name] = result
            return result

        return longest(definition["StartAt"]) if definition.get("StartAt") in states else None

    def _state_budget(self, state: dict[str, Any]) -> float | None:
        kind = state.get("Type")
        if kind == "Wait":
            return float(state["Seconds"]) if "Seconds" in state else None
        if kind == "Parallel":
            branches = [self._path_budget(branch) for branch in state.get("Branches", [])]
            return None if None in branches else max([0.0, *(b for b in branches if b is not None)])
        if kind == "Map":  # one iteration: the items' count is the input's
            inner = state.get("ItemProcessor") or state.get("Iterator")
            return self._path_budget(inner) if inner else 0.0
        if kind != "Task":
            return 0.0
        timeout = state.get("TimeoutSeconds")
        if timeout is None:
            function = self._invoked_function(state)
            if function is None or ".waitForTaskToken" in str(state.get("Resource")):
                return None
            timeout = function.timeout_s
        attempts, waits = 1, 0.0
        for retrier in state.get("Retry", []):
            tries = int(retrier.get("MaxAttempts", 3))
            interval = float(retrier.get("IntervalSeconds", 1))
            rate = float(retrier.get("BackoffRate", 2.0))
            cap = float(retrier.get("MaxDelaySeconds", math.inf))
            attempts += tries
            waits += sum(min(cap, interval * rate**i) for i in range(tries))
        return float(timeout) * attempts + waits

    def definition(self, machine: str) -> dict[str, Any]:
        """A state machine's ASL with every reference resolved to a stand-in: a Lambda ARN names its function's
        logical id, qualified by the alias or version it goes through."""
        if machine not in self._definitions:
            self._definitions[machine] = self._resolve_definition(machine)
        return self._definitions[machine]

    def _resolve_definition(self, machine: str) -> dict[str, Any]:
        props = self.resources[machine]["Properties"]
        resolver = Resolver(self.template.stack_name, self._stand_ins())
        if "Definition" in props:
            definition: dict[str, Any] = resolver.resolve(props["Definition"])
            return definition
        text = str(resolver.resolve(props["DefinitionString"]))
        for name, value in resolver.resolve(props.get("DefinitionSubstitutions", {})).items():
            text = text.replace("${" + name + "}", str(value))
        parsed: dict[str, Any] = json.loads(text)
        return parsed

    def _stand_ins(self) -> dict[str, Physical]:
        physical: dict[str, Physical] = {}
        for lid, res in self.resources.items():
            arn = f"{LAMBDA_ARN_PREFIX}{lid}"
            if res["Type"] in ("AWS::Lambda::Alias", "AWS::Lambda::Version"):
                function = res["Properties"].get("FunctionName", {})
                target = function.get("Ref") if isinstance(function, dict) else None
                arn = f"{LAMBDA_ARN_PREFIX}{target}:{res['Properties'].get('Name', 'version')}"
            physical[lid] = Physical(ref=arn, attributes=_AnyAttribute(lid, Arn=arn, AliasArn=arn))
        return physical

    def _invoked_function(self, state: dict[str, Any]) -> Function | None:
        resource = str(state.get("Resource", ""))
        target = resource if resource.startswith(LAMBDA_ARN_PREFIX) else None
        if resource.startswith("arn:aws:states:::lambda:invoke"):
            target = str(state.get("Parameters", state.get("Arguments", {})).get("FunctionName", ""))
        if target is None or not target.startswith(LAMBDA_ARN_PREFIX):
            return None
        return self.functions.get(target.removeprefix(LAMBDA_ARN_PREFIX).split(":")[0])

    def _function_named(self, name: Any) -> Function | None:
        """The function an event source mapping's FunctionName (a Ref, or CDK's ``name:alias`` join) names."""
        for lid in _referenced(name):
            if lid in self.functions:
                return self.functions[lid]
            res = self.resources.get(lid, {})
            if res.get("Type") == "AWS::Lambda::Alias":
                return self.functions.get(res["Properties"]["FunctionName"].get("Ref", ""))
        return None

    def _api_integrations(self) -> set[str]:
        """Functions an API Gateway method integrates with (answering inside the client's request)."""
        found: set[str] = set()
        for method in self.of_type("AWS::ApiGateway::Method").values():
            uri = method["Properties"].get("Integration", {}).get("Uri")
            found |= _referenced(uri) & self.functions.keys()
        return found

    def _role_statements(self, role: str) -> Iterator[dict[str, Any]]:
        for policy in self.resources.get(role, {}).get("Properties", {}).get("Policies", []):
            yield from policy["PolicyDocument"]["Statement"]
        for policy in self.of_type("AWS::IAM::Policy").values():
            if {"Ref": role} in policy["Properties"].get("Roles", []):
                yield from policy["Properties"]["PolicyDocument"]["Statement"]

    def _granted(self, function: Function, action: str) -> set[str]:
        """Logical ids the function's role allows ``action`` on (named by Ref or Fn::GetAtt)."""
        found: set[str] = set()
        if function.role is None:
            return found
        for statement in self._role_statements(function.role):
            actions = statement.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            if statement.get("Effect") == "Allow" and action in actions:
                found |= _referenced(statement.get("Resource"))
        return found

    def _sync_targets(self, function: Function) -> list[str]:
        """The state machines a function may start synchronously (its role allows states:StartSyncExecution)."""
        granted = self._granted(function, "states:StartSyncExecution")
        return sorted(set().union(*(self._machine_of(lid) for lid in granted)))

    def _invoked_by(self, function: Function) -> list[Function]:
        """The functions its role may invoke (lambda:InvokeFunction), by their own logical id or an alias."""
        callees = []
        for lid in sorted(self._granted(function, "lambda:InvokeFunction")):
            callee = self._function_named({"Ref": lid})
            if callee is not None and callee.logical_id != function.logical_id and callee not in callees:
                callees.append(callee)
        return callees

    def _machine_of(self, lid: str) -> set[str]:
        res = self.resources.get(lid, {})
        kind = res.get("Type")
        if kind == "AWS::StepFunctions::StateMachine":
            return {lid}
        if kind == "AWS::StepFunctions::StateMachineAlias":
            preference = res["Properties"].get("DeploymentPreference", {})
            return set().union(*(self._machine_of(v) for v in _referenced(preference)))
        if kind == "AWS::StepFunctions::StateMachineVersion":
            return set().union(*(self._machine_of(v) for v in _referenced(res["Properties"])))
        return set()

    # --- payloads ----------------------------------------------------------------------------------------

    def payloads(self) -> Iterator[Finding]:
        for machine, res in self.of_type("AWS::StepFunctions::StateMachine").items():
            workflow = res.get("Metadata", {}).get(WORKFLOW_METADATA)
            if workflow is None:
                continue
            samples = [p for d in self.events_dirs if d.is_dir() for p in sorted(d.glob(f"{workflow}*.json"))]
            folder = self.events_dirs[0].name if self.events_dirs else "events"
            sized = [(size, path) for path in samples if (size := _json_size(path)) is not None]
            if not sized:
                yield Finding(
                    "info",
                    machine,
                    f"no sample input for {workflow} in {folder}/: its "
                    f"payload size is unchecked; add {folder}/{workflow}-request.json",
                )
                continue
            size, path = max(sized)
            growing = sum(1 for _, state in _all_states(self.definition(machine)) if _adds_output(state))
            share = (
                f"largest sample {path.parent.name}/{path.name} is {_kb(size)} of the {_kb(STATES_PAYLOAD_LIMIT)} "
                f"state limit ({_kb(STATES_PAYLOAD_LIMIT - size)} headroom; states adding output to it: {growing})"
            )
            if size > STATES_PAYLOAD_LIMIT:
                yield Finding(
                    "error",
                    machine,
                    f"{share}: runs of this size fail with States.DataLimitExceeded; "
                    "pass large documents by S3 reference",
                )
            elif size > STATES_PAYLOAD_LIMIT // 2:
                yield Finding(
                    "warning", machine, f"{share}: step outputs can push it over; pass large documents by S3 reference"
                )
            else:
                yield Finding("info", machine, share)

    # --- data retention and account-wide settings --------------------------------------------------------

    def object_lock(self) -> Iterator[Finding]:
        environment = self.environment
        for lid, res in self.of_type("AWS::S3::Bucket").items():
            props = res.get("Properties", {})
            if not props.get("ObjectLockEnabled"):
                continue
            retention = props.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention", {})
            mode = retention.get("Mode")
            days = int(retention.get("Days", 0)) + 365 * int(retention.get("Years", 0))
            kind = res.get("Metadata", {}).get(RETENTION_METADATA)
            wanted = declared_retention(kind).locked_days if kind else None
            lock = f"Object Lock {mode} for {days} days"
            if mode is None:
                yield Finding(
                    "warning",
                    lid,
                    "Object Lock is on with no default retention: objects are "
                    "deletable until each is locked; set a default retention",
                )
            elif environment == "prod":
                if mode != "COMPLIANCE":
                    yield Finding(
                        "error",
                        lid,
                        f"{lock} in prod: anyone allowed s3:BypassGovernanceRetention can "
                        "delete the evidence; prod needs COMPLIANCE (-c agentplane:environment=prod sets it)",
                    )
                elif wanted is not None and days < wanted:
                    yield Finding(
                        "error",
                        lid,
                        f"{lock} in prod, less than the {wanted} days retention "
                        f"{kind!r} declares; lock it for the declared period",
                    )
                else:
                    yield Finding(
                        "info", lid, f"{lock}: nobody, the root user included, can delete a digest before then (prod)"
                    )
            elif mode == "COMPLIANCE":
                yield Finding(
                    "warning",
                    lid,
                    f"{lock} in {environment or 'an unnamed environment'}: its objects, "
                    "and so the bucket, cannot be deleted by anyone until then; a sandbox uses "
                    "GOVERNANCE (-c agentplane:environment=sandbox)",
                )
            else:
                yield Finding(
                    "info",
                    lid,
                    f"{lock} ({environment or 'no environment named'}): deletable only "
                    "with s3:BypassGovernanceRetention; prod uses COMPLIANCE",
                )

    def account_wide(self) -> Iterator[Finding]:
        """Resources that change settings of the whole account and region, beyond this stack."""
        for lid, res in self.of_type("AWS::ApiGateway::Account").items():
            role = _referenced(res.get("Properties", {}).get("CloudWatchRoleArn"))
            yield Finding(
                "warning",
                lid,
                "sets the account's API Gateway CloudWatch Logs role "
                f"({', '.join(sorted(role)) or 'a role'}) for every API in this region: another stack that "
                "sets it replaces it, and deleting this one breaks their logging; deploy it from one "
                "stack per account (agentplane:account-settings=true)",
            )
        for lid, res in self.of_type("AWS::XRay::SamplingRule").items():
            rule = res.get("Properties", {}).get("SamplingRule", {})
            matches = [rule.get(key) for key in ("ServiceName", "Host", "URLPath")]
            scope = "every traced request" if all(m == "*" for m in matches) else f"path {rule.get('URLPath')}"
            if rule.get("ServiceName") == "*":
                yield Finding(
                    "warning",
                    lid,
                    f"X-Ray sampling rule {rule.get('RuleName')!r} (priority "
                    f"{rule.get('Priority')}) matches {scope} of every service in the account and region, "
                    "not only this stack's; keep it to one stack (agentplane:account-settings=true)",
                )
        for lid, res in self.resources.items():
            if res["Type"] in ACCOUNT_SCOPED:
                yield Finding("warning", lid, f"{res['Type']} {ACCOUNT_SCOPED[res['Type']]}")
        for lid, res in self.of_type("AWS::ApiGateway::Stage").items():
            props = res.get("Properties", {})
            logging = props.get("AccessLogSetting") or any(
                setting.get("LoggingLevel", "OFF") != "OFF" for setting in props.get("MethodSettings", [])
            )
            if logging and not self.of_type("AWS::ApiGateway::Account"):
                yield Finding(
                    "warning",
                    lid,
                    "the stage's access and execution logging need the account's API Gateway CloudWatch Logs role, "
                    "which this stack does not set: the deploy fails in an account without one; set it "
                    "once per account and region (API Gateway settings) or deploy with "
                    "-c agentplane:account-settings=true",
                )


# Other resource types whose effect is the whole account's (and region's), not one stack's.
ACCOUNT_SCOPED = {
    "AWS::IAM::ServiceLinkedRole": "is shared by every stack of the account: deleting this stack can delete it",
    "AWS::Logs::AccountPolicy": "applies to every log group in the account",
    "AWS::Logs::ResourcePolicy": "uses one of the region's 10 CloudWatch Logs resource policies",
    "AWS::GuardDuty::Detector": "is one per account and region: a second stack's fails",
    "AWS::SecurityHub::Hub": "is one per account and region: a second stack's fails",
    "AWS::Config::ConfigurationRecorder": "is one per account and region: a second stack's fails",
    "AWS::XRay::ResourcePolicy": "applies to X-Ray in the whole account",
}


# --- import closure ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MissingImport:
    module: str  # what is imported (dotted)
    importer: str  # file, relative to the root it was found in, and line
    where: str  # "its asset" or "layer <logical id>"
    project: bool  # a module of ours (its top-level package is staged) that is not staged
    suggestion: str | None = None  # the distribution that provides it in this development environment

    def message(self) -> str:
        at = f"imported by {self.importer} ({self.where})"
        if self.project:
            return (
                f"module {self.module} ({at}) is not in its asset or layers: Lambda fails on import; stage it in "
                "the asset or the runtime layer"
            )
        name = self.module.split(".")[0]
        package = f" (`{self.suggestion}`)" if self.suggestion and self.suggestion != name else ""
        return (
            f"module {name}{package} ({at}) is in none of its layers, the Lambda runtime or the standard library: "
            f"Lambda fails on import; {DEPENDENCY_GROUP_FIX}"
        )


@dataclass
class ImportClosure:
    """The modules a handler imports, found as Lambda would find them: its asset, then its layers' python/."""

    roots: list[tuple[Path, str]]  # (sys.path entry, what it is)
    provided: dict[str, str]  # top-level module -> the distribution a layer installs it from
    _seen: set[Path] = field(default_factory=set)

    def find(self, module: str) -> tuple[Path, Path, str] | None:
        """(file or package dir, root, root description) of a project module, or None."""
        parts = module.split(".")
        for root, where in self.roots:
            base = root.joinpath(*parts)
            for candidate in (base.with_suffix(".py"), base / "__init__.py", base):
                if candidate.exists() and (candidate.is_file() or candidate == base):
                    return candidate, root, where
        return None

    def missing(self, module: str) -> list[MissingImport]:
        found: dict[str, MissingImport] = {}
        queue = [module]
        while queue:
            name = queue.pop()
            for package in _parents(name):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
                located = self.find(package)
                if located is None or not located[0].is_file() or located[0] in self._seen:
                    continue
                path, root, where = located
                self._seen.add(path)
                for imported, line, required in _imports(path, package, path.name == "__init__.py"):
                    top = imported.split(".")[0]
                    if top in sys.stdlib_module_names or top in self.provided or top in LAMBDA_RUNTIME_MODULES:
                        continue
                    if self.find(imported) is not None:
                        queue.append(imported)
                    elif not required:  # ``from package import name``: name is defined in the package
                        continue
                    elif self.find(top) is not None:
                        found.setdefault(imported, self._missing(imported, path, root, where, line, project=True))
                    else:
                        found.setdefault(top, self._missing(imported, path, root, where, line, project=False))
        return sorted(found.values(), key=lambda m: m.module)

    def _missing(self, module: str, path: Path, root: Path, where: str, line: int, *, project: bool) -> MissingImport:
        importer = f"{path.relative_to(root).as_posix()}:{line}"
        suggestion = None if project else _host_distribution(module.split(".")[0])
        return MissingImport(module, importer, where, project, suggestion)


def parse_source(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse``, again when CPython 3.11 reports its spurious "AST constructor recursion depth mismatch":
    its AST converter keeps one recursion counter per interpreter, so a parse that races another thread's
    (a traceback being formatted elsewhere parses source too) fails although the tree is sound. Fixed in 3.12."""
    for _ in range(4):
        try:
            return ast.parse(source, filename=filename)
        except SystemError as error:
            if "recursion depth mismatch" not in str(error):
                raise
    return ast.parse(source, filename=filename)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _imports(path: Path, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(dotted module, line, required) for every import the file runs: not those under ``if TYPE_CHECKING``, nor
    those inside a ``try`` that handles ImportError (optional imports). ``from x import y`` gives ``x`` (required)
    and ``x.y`` (not required: y may be a submodule, or a name x defines)."""
    tree = parse_source(path.read_text(encoding="utf-8"), str(path))
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Try) and _handles_import_error(node):
            for part in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(part)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno, True) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            if base == "__future__":
                return
            if base:
                found.append((base, node.lineno, True))
            found.extend(
                (f"{base}.{alias.name}" if base else alias.name, node.lineno, not base)
                for alias in node.names
                if alias.name != "*"
            )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".") if package else []
    base = parts[: len(parts) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _handles_import_error(node: ast.Try) -> bool:
    names: list[str] = []
    for handler in node.handlers:
        caught = handler.type
        elements = caught.elts if isinstance(caught, ast.Tuple) else [caught] if caught is not None else []
        names += [e.id for e in elements if isinstance(e, ast.Name)]
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


def _provided_by(layers: Iterable[Layer]) -> dict[str, str]:
    """Top-level module -> distribution, for every package installed in a layer (its *.dist-info)."""
    provided: dict[str, str] = {}
    for layer in layers:
        if layer.python is not None:
            provided.update(_installed(layer.python))
    return provided


@cache
def _installed(site: Path) -> dict[str, str]:
    provided: dict[str, str] = {}
    for info in sorted(site.glob("*.dist-info")):
        distribution = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        for name in _top_level(info):
            provided.setdefault(name, distribution)
    return provided


def _top_level(info: Path) -> set[str]:
    """What a distribution installs at the top of site-packages: top_level.txt when it ships one, else the
    first component of every path its RECORD lists."""
    top_level = info / "top_level.txt"
    if top_level.is_file():
        return {line.strip() for line in top_level.read_text().splitlines() if line.strip()}
    record = info / "RECORD"
    if not record.is_file():
        return set()
    names = set()
    for line in record.read_text().splitlines():
        first = line.split(",", 1)[0].split("/", 1)[0]
        if not first or first.startswith("..") or first.endswith((".dist-info", ".data")) or first == "__pycache__":
            continue
        if "/" in line.split(",", 1)[0] or first.endswith(".py"):
            names.add(first.removesuffix(".py"))
        elif first.endswith((".so", ".pyd")):
            names.add(first.split(".", 1)[0])
    return names


@cache
def _host_distribution(module: str) -> str | None:
    """The distribution this development environment installs ``module`` from: the name to add to the group."""
    distributions = packages_distributions().get(module)
    return distributions[0] if distributions else None


# --- helpers -----------------------------------------------------------------------------------------------


def _all_states(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in definition.get("States", {}).items():
        yield name, state
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                yield from _all_states(inner)


def _adds_output(state: dict[str, Any]) -> bool:
    """A state that puts its result beside its input (ResultPath other than null or the whole state)."""
    if state.get("Type") not in ("Task", "Map", "Parallel"):
        return False
    path = state.get("ResultPath", "$")
    return path is not None and path != "$"


def _referenced(node: Any) -> set[str]:
    """Logical ids a template value names through Ref or Fn::GetAtt."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("Ref"), str):
            found.add(node["Ref"])
        target = node.get("Fn::GetAtt")
        if target is not None:
            found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
        for value in node.values():
            found |= _referenced(value)
    elif isinstance(node, list):
        for item in node:
            found |= _referenced(item)
    return found


@cache
def _size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def _json_size(path: Path) -> int | None:
    """Bytes of a sample as Step Functions holds it (compact JSON); None for a file that is not JSON."""
    try:
        return len(json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode())
    except (ValueError, OSError):
        return None


def _mb(size: float) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _kb(size: float) -> str:
    return f"{size / 1024:.1f} KB"
