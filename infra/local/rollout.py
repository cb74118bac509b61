"""Canary rollouts on the local plane: what CodeDeploy does to an agent's ``live`` alias, done by the plane.

On AWS a deployment moves the alias from its current version to a new one in the steps of the deployment
group's config (canary, linear, all at once) and rolls back when one of the group's alarms fires. Locally:

- the groups, their configs, alarms and the alias each one shifts are read from the template;
- a rollout publishes the function's code and settings as a new version, records a CodeDeploy deployment
  (moto), and moves the alias's ``RoutingConfig`` weights on the plane's clock, where a deployment minute
  lasts ``minute_s`` seconds;
- the group's alarms are evaluated over what they measure on AWS since the deployment began: the new
  version alone for the canary alarm (``ExecutedVersion``), both versions for the SLO alarms on the
  function (``infra.local.alarms``);
- invocations through an alias are split by its weights, exactly (``ExactSplit``), so a 10 %
  canary sends every tenth invocation to the new version.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from moto.awslambda.models import LambdaFunction, LambdaStorage
from moto.codedeploy.models import codedeploy_backends

from infra.local import moto_seam
from infra.local.alarms import AlarmState, LocalAlarm
from infra.local.faults import Fault, FaultPlan
from infra.local.lambdas import LocalLambdas, VersionStats
from infra.local.template import ACCOUNT_ID, REGION

Strategy = Literal["canary", "linear", "all-at-once"]
Status = Literal["InProgress", "Succeeded", "Stopped"]
_PREDEFINED = re.compile(
    r"^CodeDeployDefault\.Lambda(?:(?P<canary>Canary)(?P<cp>\d+)Percent(?P<ci>\d+)Minutes?"
    r"|(?P<linear>Linear)(?P<lp>\d+)PercentEvery(?P<li>\d+)Minutes?|(?P<all>AllAtOnce))$"
)


class RolloutError(ValueError):
    """A rollout that cannot start or be found; ``status`` is the HTTP status the plane answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TrafficRouting:
    """How a deployment config moves traffic: the new version's weight after ``minutes`` of the deployment."""

    strategy: Strategy
    percent: int = 100
    interval_minutes: int = 0

    @classmethod
    def named(cls, name: str, custom: Mapping[str, TrafficRouting]) -> TrafficRouting:
        if name in custom:
            return custom[name]
        match = _PREDEFINED.match(name)
        if match is None:
            raise RolloutError(500, f"deployment config {name!r} is neither predefined for Lambda nor in the template")
        if match["canary"]:
            return cls("canary", int(match["cp"]), int(match["ci"]))
        if match["linear"]:
            return cls("linear", int(match["lp"]), int(match["li"]))
        return cls("all-at-once")

    @classmethod
    def from_properties(cls, props: Mapping[str, Any]) -> TrafficRouting:
        """An ``AWS::CodeDeploy::DeploymentConfig`` of the Lambda compute platform."""
        routing = props.get("TrafficRoutingConfig", {})
        kind = routing.get("Type")
        if kind == "TimeBasedCanary":
            canary = routing["TimeBasedCanary"]
            return cls("canary", int(canary["CanaryPercentage"]), int(canary["CanaryInterval"]))
        if kind == "TimeBasedLinear":
            linear = routing["TimeBasedLinear"]
            return cls("linear", int(linear["LinearPercentage"]), int(linear["LinearInterval"]))
        return cls("all-at-once")

    def weight(self, minutes: float) -> float:
        """The new version's share of traffic ``minutes`` into the deployment (1.0: the shift is complete)."""
        if self.strategy == "all-at-once":
            return 1.0
        if self.strategy == "canary":
            return 1.0 if minutes >= self.interval_minutes else self.percent / 100
        steps = 1 + int(minutes // self.interval_minutes)
        return min(1.0, steps * self.percent / 100)

    def describe(self) -> str:
        if self.strategy == "canary":
            return f"canary {self.percent}% for {self.interval_minutes} min, then all"
        if self.strategy == "linear":
            return f"linear {self.percent}% every {self.interval_minutes} min"
        return "all at once"


@dataclass(frozen=True)
class DeploymentGroup:
    """A CodeDeploy deployment group and the alias it shifts (the alias's ``CodeDeployLambdaAliasUpdate``)."""

    application: str
    name: str
    routing: TrafficRouting
    alarms: tuple[LocalAlarm, ...]
    rollback_on_alarm: bool
    function_name: str
    alias: str
    agent: str


@dataclass
class Deployment:
    id: str
    group: DeploymentGroup
    from_version: str
    to_version: str
    started: float
    status: Status = "InProgress"
    weight: float = 0.0
    baseline: int = 0  # the old version's invocations before the deployment began
    message: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment_id": self.id,
            "agent": self.group.agent,
            "deployment_group": self.group.name,
            "config": self.group.routing.describe(),
            "from_version": self.from_version,
            "to_version": self.to_version,
            "status": self.status,
            "weight": self.weight,
            "message": self.message,
            "history": list(self.history),
        }


class ExactSplit:
    """Where the next request through a weighted alias goes, exactly by the weights: each additional version
    earns its weight per request and takes the request its credit reaches one; the rest go to the primary.
    At 10 %, every tenth request goes to the new version."""

    def __init__(self) -> None:
        self._credit: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def pick(self, key: str, primary: str, additional: Mapping[str, float]) -> str:
        with self._lock:
            for version, weight in additional.items():
                credit = self._credit.get((key, version), 0.0) + weight
                if credit >= 1.0 - 1e-9:
                    self._credit[(key, version)] = credit - 1.0
                    return version
                self._credit[(key, version)] = credit
        return primary


class WeightedAliases:
    """Invocations through an alias with ``AdditionalVersionWeights`` go to each version in proportion, as on
    Lambda; moto always resolves an alias to its primary version. The split is exact, not random."""

    def __init__(self) -> None:
        self._split = ExactSplit()
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        original = moto_seam.original("lambda.alias_routing")
        router = self

        def routed(storage: LambdaStorage, name: str, qualifier: str | None = None) -> LambdaFunction:
            if ":" in name:
                name, qualifier = name.split(":", 1)
            if qualifier and name in storage._functions and not qualifier.isdigit() and qualifier != "$LATEST":
                alias = storage._aliases.get(storage._functions[name]["latest"].function_arn, {}).get(qualifier)
                if alias is not None and alias.routing_config:
                    qualifier = router.pick(name, qualifier, alias.function_version, alias.routing_config)
            found: LambdaFunction = original(storage, name, qualifier)
            return found

        self._patches.apply("lambda.alias_routing", routed)

    def uninstall(self) -> None:
        self._patches.restore()

    def pick(self, function: str, alias: str, primary: str, routing: Any) -> str:
        """The version this invocation runs; ``routing`` is the alias's RoutingConfig as the API took it."""
        additional = routing.get("AdditionalVersionWeights") if isinstance(routing, Mapping) else None
        weights = {str(v): float(w) for v, w in (additional or {}).items()}
        return self._split.pick(f"{function}:{alias}", primary, weights)


class LocalDeployments:
    """Starts rollouts, moves their weights on its clock and rolls them back when an alarm fires."""

    def __init__(
        self,
        client: Callable[[str], Any],
        lambdas: LocalLambdas,
        faults: FaultPlan,
        groups: Mapping[str, DeploymentGroup],
        *,
        clock: Callable[[], float] = time.monotonic,
        minute_s: float = 1.0,
        published: Callable[[str, str], None] | None = None,
    ) -> None:
        self.client = client
        self.lambdas = lambdas
        self.faults = faults
        self.groups = dict(groups)
        self.clock = clock
        self.minute_s = minute_s
        # Told (agent, version) when a rollout publishes a version: what the deploy's registry write does on AWS.
        self.published = published
        self.deployments: dict[str, Deployment] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # --- starting ------------------------------------------------------------------------------------

    def group_for(self, agent: str) -> DeploymentGroup:
        found = [g for g in self.groups.values() if agent in (g.agent, g.name)]
        if not found:
            known = ", ".join(sorted(g.agent for g in self.groups.values())) or "none"
            raise RolloutError(404, f"no deployment group for {agent!r} (agents with one: {known})")
        return found[0]

    def start(self, agent: str, fault: Fault | None = None) -> Deployment:
        """Publish the agent's function as a new version and begin shifting its alias to it.

        ``fault`` is injected into the new version only: the way to see a bad release roll itself back.
        """
        group = self.group_for(agent)
        with self._lock:
            running = [d for d in self.deployments.values() if d.group == group and d.status == "InProgress"]
            if running:
                raise RolloutError(409, f"{group.agent}: deployment {running[0].id} is still in progress")
            lam = self.client("lambda")
            current = str(lam.get_alias(FunctionName=group.function_name, Name=group.alias)["FunctionVersion"])
            deployment_id = f"d-{uuid.uuid4().hex[:9].upper()}"
            # A new version needs a change: the description names the deployment that published it.
            lam.update_function_configuration(FunctionName=group.function_name, Description=f"rollout {deployment_id}")
            target = str(lam.publish_version(FunctionName=group.function_name)["Version"])
            if fault is not None:
                self.faults.add(f"{group.agent}@{target}", fault)
            if self.published is not None:
                self.published(group.agent, target)
            self._record(group, deployment_id, current, target)
            spec = self.lambdas.functions[group.function_name]
            before = spec.versions.get(current, VersionStats()).invocations
            deployment = Deployment(deployment_id, group, current, target, started=self.clock(), baseline=before)
            self.deployments[deployment_id] = deployment
            self._note(
                deployment,
                f"published version {target}; shifting {group.alias} from {current}: {group.routing.describe()}",
            )
            self._advance(deployment)
            return deployment

    def _record(self, group: DeploymentGroup, deployment_id: str, current: str, target: str) -> None:
        """The CodeDeploy deployment (moto) that ``GET /v1/rollouts`` reads, with the AppSpec CodeDeploy uses."""
        appspec = {
            "version": 0.0,
            "Resources": [
                {
                    group.agent: {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": group.function_name,
                            "Alias": group.alias,
                            "CurrentVersion": current,
                            "TargetVersion": target,
                        },
                    }
                }
            ],
        }
        created = self.client("codedeploy").create_deployment(
            applicationName=group.application,
            deploymentGroupName=group.name,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}},
            description=f"local rollout of {group.agent} version {target}",
        )
        record = self._moto_deployment(created["deploymentId"])
        # The plane's id and CodeDeploy's are the same deployment: keep CodeDeploy's shape for both.
        record.deployment_id = deployment_id
        backend = codedeploy_backends[ACCOUNT_ID][REGION]
        backend.deployments[deployment_id] = backend.deployments.pop(created["deploymentId"])
        record.status = "InProgress"
        record.start_time = datetime.now(UTC)

    @staticmethod
    def _moto_deployment(deployment_id: str) -> Any:
        return codedeploy_backends[ACCOUNT_ID][REGION].deployments[deployment_id]

    # --- moving ----------------------------------------------------------------------------------------

    def tick(self) -> list[Deployment]:
        """Evaluate every deployment in progress: roll back on alarm, else move to the weight its config says."""
        with self._lock:
            moving = [d for d in self.deployments.values() if d.status == "InProgress"]
            for deployment in moving:
                self._advance(deployment)
            return moving

    def _advance(self, deployment: Deployment) -> None:
        group = deployment.group
        firing = [state for state in self.alarm_states(deployment) if state.firing]
        if firing and group.rollback_on_alarm:
            self._finish(deployment, "Stopped", deployment.from_version, f"rolled back: {firing[0].reason()}")
            return
        minutes = (self.clock() - deployment.started) / self.minute_s
        weight = group.routing.weight(minutes)
        if weight >= 1.0:
            self._finish(deployment, "Succeeded", deployment.to_version, f"version {deployment.to_version} takes all")
            return
        if weight != deployment.weight:
            self.client("lambda").update_alias(
                FunctionName=group.function_name,
                Name=group.alias,
                FunctionVersion=deployment.from_version,
                RoutingConfig={"AdditionalVersionWeights": {deployment.to_version: weight}},
            )
            deployment.weight = weight
            self._note(deployment, f"{round(weight * 100)}% to version {deployment.to_version}")

    def alarm_states(self, deployment: Deployment) -> list[AlarmState]:
        """The group's alarms over what they measure on AWS since the deployment began: the new version alone
        for an alarm on ``ExecutedVersion``, else the function's invocations, old and new version alike."""
        versions = self.lambdas.functions[deployment.group.function_name].versions
        new = versions.get(deployment.to_version, VersionStats())
        old = versions.get(deployment.from_version, VersionStats()).samples[deployment.baseline :]
        whole = VersionStats([*old, *new.samples])
        return [alarm.evaluate(new if alarm.per_version else whole) for alarm in deployment.group.alarms]

    def _finish(self, deployment: Deployment, status: Status, version: str, message: str) -> None:
        group = deployment.group
        self.client("lambda").update_alias(
            FunctionName=group.function_name, Name=group.alias, FunctionVersion=version, RoutingConfig={}
        )
        deployment.status = status
        deployment.weight = 1.0 if status == "Succeeded" else 0.0
        deployment.message = message
        self._note(deployment, message)
        record = self._moto_deployment(deployment.id)
        record.status = status
        record.complete_time = datetime.now(UTC)
        record.deployment_status_messages = [message]

    def _note(self, deployment: Deployment, text: str) -> None:
        minutes = (self.clock() - deployment.started) / self.minute_s
        deployment.history.append({"minute": round(minutes, 2), "weight": deployment.weight, "event": text})

    # --- the plane's clock -----------------------------------------------------------------------------

    def start_ticking(self, interval_s: float) -> None:
        def run() -> None:
            while not self._stop.wait(interval_s):
                self.tick()

        self._ticker = threading.Thread(target=run, name="agentplane-rollouts", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
            self._ticker = None


def deployment_groups(
    resources: Mapping[str, Mapping[str, Any]],
    resolve: Callable[[Any], Any],
    physical: Callable[[str], str],
    alarms: Mapping[str, Mapping[str, Any]],
    function_agents: Mapping[str, str],
) -> dict[str, DeploymentGroup]:
    """The template's Lambda deployment groups, each with the alias whose update policy names it.

    ``resolve`` resolves intrinsic functions, ``physical`` gives a logical id's physical name, ``alarms`` holds
    the alarm definitions by name and ``function_agents`` each function's agent name.
    """
    custom = {
        physical(lid): TrafficRouting.from_properties(resolve(res.get("Properties", {})))
        for lid, res in resources.items()
        if res["Type"] == "AWS::CodeDeploy::DeploymentConfig"
    }
    shifted: dict[str, tuple[str, str]] = {}  # group name -> (function name, alias name)
    for res in resources.values():
        policy = res.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate")
        if res["Type"] == "AWS::Lambda::Alias" and policy:
            props = resolve(res["Properties"])
            shifted[str(resolve(policy["DeploymentGroupName"]))] = (str(props["FunctionName"]), str(props["Name"]))
    groups: dict[str, DeploymentGroup] = {}
    for lid, res in resources.items():
        if res["Type"] != "AWS::CodeDeploy::DeploymentGroup":
            continue
        name = physical(lid)
        props = resolve(res["Properties"])
        if name not in shifted:
            continue  # a group no alias names: nothing to shift locally
        function_name, alias = shifted[name]
        configured = props.get("AlarmConfiguration", {})
        alarm_names = [str(a["Name"]) for a in configured.get("Alarms", [])] if configured.get("Enabled") else []
        rollback = props.get("AutoRollbackConfiguration", {})
        groups[name] = DeploymentGroup(
            application=str(props["ApplicationName"]),
            name=name,
            routing=TrafficRouting.named(str(props.get("DeploymentConfigName", "")), custom),
            alarms=tuple(LocalAlarm.from_properties(a, alarms[a]) for a in alarm_names),
            rollback_on_alarm=bool(rollback.get("Enabled"))
            and "DEPLOYMENT_STOP_ON_ALARM" in rollback.get("Events", []),
            function_name=function_name,
            alias=alias,
            agent=function_agents.get(function_name, function_name),
        )
    return groups
