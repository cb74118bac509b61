"""``GET /v1/rollouts``: what is live where, and what is shifting.

Each agent's ``live`` alias (its versions and their traffic weights) with the latest deployment of its
CodeDeploy group, and each workflow's ``live`` alias. The aliases are read when asked, never copied: the
weights are CodeDeploy's and Step Functions' (or the local plane's) to move, so the answer cannot go stale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import yaml

from contracts.arns import split_alias
from contracts.registry import Implementation


@dataclass(frozen=True)
class LiveVersion:
    version: str
    weight: float


@dataclass(frozen=True)
class DeploymentView:
    deployment_id: str
    status: str
    from_version: str | None
    to_version: str | None
    created_at: str | None
    completed_at: str | None
    message: str


class RolloutReader(Protocol):
    def agent_alias(self, function_name: str, alias: str) -> Mapping[str, Any]:
        """Lambda's GetAlias answer."""
        ...

    def workflow_alias(self, alias_arn: str) -> Mapping[str, Any]:
        """Step Functions' DescribeStateMachineAlias answer."""
        ...

    def latest_deployment(self, application: str, group: str) -> Mapping[str, Any] | None:
        """CodeDeploy's deploymentInfo of the group's newest deployment, or None if it has none."""
        ...


def lambda_versions(alias: Mapping[str, Any]) -> list[LiveVersion]:
    """The alias's primary version takes what its additional versions do not."""
    weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    extra = {str(v): float(w) for v, w in weights.items()}
    versions = [LiveVersion(str(alias["FunctionVersion"]), round(1.0 - sum(extra.values()), 6))]
    versions += [LiveVersion(v, w) for v, w in extra.items()]
    return sorted(versions, key=lambda v: -v.weight)


def workflow_versions(alias: Mapping[str, Any]) -> list[LiveVersion]:
    versions = [
        LiveVersion(str(route["stateMachineVersionArn"]).rsplit(":", 1)[-1], int(route["weight"]) / 100)
        for route in alias.get("routingConfiguration", [])
    ]
    return sorted(versions, key=lambda v: -v.weight)


def _when(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if value else None


def _appspec_versions(revision: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """CurrentVersion and TargetVersion from a Lambda AppSpec (JSON or YAML content)."""
    content = (revision.get("appSpecContent") or {}).get("content")
    if not content:
        return None, None
    try:
        spec = json.loads(content)
    except ValueError:
        spec = yaml.safe_load(content)
    for resource in (spec or {}).get("Resources", []):
        for body in resource.values():
            props = body.get("Properties", {})
            return _version(props.get("CurrentVersion")), _version(props.get("TargetVersion"))
    return None, None


def _version(value: Any) -> str | None:
    return None if value is None else str(value)


def deployment_view(info: Mapping[str, Any]) -> DeploymentView:
    current, target = _appspec_versions(info.get("revision") or {})
    error = (info.get("errorInformation") or {}).get("message")
    messages = info.get("deploymentStatusMessages") or []
    rollback = (info.get("rollbackInfo") or {}).get("rollbackMessage")
    return DeploymentView(
        deployment_id=str(info["deploymentId"]),
        status=str(info["status"]),
        from_version=current,
        to_version=target,
        created_at=_when(info.get("createTime")),
        completed_at=_when(info.get("completeTime")),
        message=str(error or rollback or (messages[-1] if messages else "")),
    )


def rollouts(
    implementations: Sequence[Implementation],
    workflows: Mapping[str, str],
    reader: RolloutReader,
    *,
    application: str,
) -> dict[str, Any]:
    """Agents (Lambda implementations invoked through an alias) and workflows (started through one).

    One alias that cannot be read is reported with its error; the others are still answered.
    """
    agents: list[dict[str, Any]] = []
    for implementation in sorted(implementations, key=lambda i: i.name):
        qualified = split_alias(implementation.target) if implementation.runtime == "lambda" else None
        if qualified is None:
            continue
        function, alias = qualified
        entry: dict[str, Any] = {
            "agent": implementation.name,
            "contract_version": implementation.contract_version,
            "alias": implementation.target,
            "published_version": implementation.published_version or None,
            "deployment_group": implementation.deployment_group or None,
        }
        try:
            versions = lambda_versions(reader.agent_alias(function.rsplit(":", 1)[-1], alias))
            deployment = (
                reader.latest_deployment(application, implementation.deployment_group)
                if implementation.deployment_group and application
                else None
            )
        except Exception as error:  # one unreadable alias must not hide the rest
            agents.append({**entry, "error": f"{type(error).__name__}: {error}"})
            continue
        agents.append(
            {
                **entry,
                "versions": [asdict(v) for v in versions],
                "shifting": len(versions) > 1,
                "deployment": asdict(deployment_view(deployment)) if deployment else None,
            }
        )
    flows: list[dict[str, Any]] = []
    for name, arn in sorted(workflows.items()):
        if split_alias(arn) is None:
            flows.append({"workflow": name, "alias": None, "versions": [], "shifting": False})
            continue
        try:
            versions = workflow_versions(reader.workflow_alias(arn))
        except Exception as error:  # as above
            flows.append({"workflow": name, "alias": arn, "error": f"{type(error).__name__}: {error}"})
            continue
        flows.append(
            {"workflow": name, "alias": arn, "versions": [asdict(v) for v in versions], "shifting": len(versions) > 1}
        )
    return {"agents": agents, "workflows": flows}
