"""The plane's rollback alarms, evaluated locally over a function's recorded invocations.

A deployment group names CloudWatch alarms; on AWS, CloudWatch evaluates them and CodeDeploy rolls back
when one is in ALARM. Locally there is no CloudWatch, so the plane evaluates the alarm definitions the
template holds, over the invocations it recorded per version (what CloudWatch's ``ExecutedVersion`` holds).
It knows the two shapes the plane's SLO alarms use (``infra.components.observability``): an error ratio
(``Errors`` / ``Invocations``) and a slow ratio (``Duration`` at ``PR(:p95)``). Any other alarm is refused
when the plane starts, naming it, rather than silently never firing.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from infra.local.lambdas import VersionStats

_PERCENTILE_RANK = re.compile(r"^PR\(:(?P<limit>[0-9.]+)\)$")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}


class UnsupportedAlarm(ValueError):
    """An alarm the local plane cannot evaluate; the message names it and says what it can evaluate."""


@dataclass(frozen=True)
class AlarmState:
    name: str
    firing: bool
    value: float
    threshold: float
    what: str

    def reason(self) -> str:
        return f"alarm {self.name}: {self.what} {self.value:.3g} over its threshold {self.threshold:g}"


@dataclass(frozen=True)
class LocalAlarm:
    """One alarm as the template declares it, reduced to the ratio it watches."""

    name: str
    kind: Literal["errors", "slow"]
    threshold: float
    compare: Callable[[float, float], bool]
    limit_ms: float = 0.0  # the slow ratio's latency limit
    # Its metrics name one version (``ExecutedVersion``): the version a deploy published, i.e. the one being
    # rolled out; otherwise they cover the whole function.
    per_version: bool = False

    @classmethod
    def from_properties(cls, name: str, props: Mapping[str, Any]) -> LocalAlarm:
        compare = _COMPARE.get(str(props.get("ComparisonOperator")))
        if compare is None or "Threshold" not in props:
            raise UnsupportedAlarm(f"alarm {name}: the local plane evaluates threshold alarms only")
        queried = [query["MetricStat"] for query in props.get("Metrics", []) if "MetricStat" in query]
        stats = {stat["Metric"]["MetricName"]: str(stat["Stat"]) for stat in queried}
        per_version = any(
            d.get("Name") == "ExecutedVersion" for stat in queried for d in stat["Metric"].get("Dimensions", [])
        )
        threshold = float(props["Threshold"])
        if stats.keys() == {"Errors", "Invocations"}:
            return cls(name, "errors", threshold, compare, per_version=per_version)
        if stats.keys() == {"Duration"} and (rank := _PERCENTILE_RANK.match(stats["Duration"])) is not None:
            return cls(name, "slow", threshold, compare, limit_ms=float(rank["limit"]), per_version=per_version)
        raise UnsupportedAlarm(
            f"alarm {name}: the local plane evaluates Lambda error-ratio and slow-ratio alarms "
            f"(Errors/Invocations, Duration PR(:ms)), not {sorted(stats) or 'this expression'}"
        )

    def evaluate(self, stats: VersionStats) -> AlarmState:
        """Missing data is not breaching, as the plane's alarms declare: no invocations, no alarm."""
        if self.kind == "errors":
            value = stats.errors / stats.invocations if stats.invocations else 0.0
            what = "error ratio"
        else:
            value = (100.0 - stats.share_within(self.limit_ms)) / 100.0
            what = f"share over {self.limit_ms:g} ms"
        firing = stats.invocations > 0 and self.compare(value, self.threshold)
        return AlarmState(self.name, firing, value, self.threshold, what)
