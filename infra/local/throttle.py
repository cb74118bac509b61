"""Usage plans on the local plane: the template's API keys, each throttled by its plan's token bucket.

API Gateway admits a request on a method that requires a key only with a known ``x-api-key``, then takes a
token from the bucket of that key's usage plan (``rateLimit`` tokens a second, ``burstLimit`` at most). The
local plane does the same, from the same template, and answers the wait in ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.local.auth import PERSONA_METADATA
from infra.local.provision import ApiDefinition
from infra.local.template import Template

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    rate: float  # tokens added per second
    burst: int  # the most tokens it holds
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)
        self.updated = self.clock()

    def take(self) -> float:
        """0.0 when a token was taken; otherwise the seconds until one will be there."""
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return math.inf if self.rate <= 0 else (1 - self.tokens) / self.rate


class KeyRefused(Exception):
    """The request names no API key, or one the template does not have (API Gateway: 403)."""


@dataclass(frozen=True)
class Admission:
    admitted: bool
    retry_after_s: int = 0  # whole seconds, as Retry-After wants them


class UsagePlans:
    """Token buckets per API key, from the template's usage plans; ``scale`` multiplies every rate and burst."""

    def __init__(self, api: ApiDefinition, *, clock: Clock = time.monotonic, scale: float = 1.0) -> None:
        self._values = {value: key_id for key_id, value in api.api_keys.items()}
        self._buckets: dict[str, TokenBucket | None] = {}
        for key_id in api.api_keys:
            plan = api.usage_plans.get(api.plan_of_key.get(key_id, ""))
            throttle = (plan or {}).get("Throttle")
            self._buckets[key_id] = (
                TokenBucket(
                    rate=float(throttle.get("RateLimit", 0)) * scale,
                    burst=max(1, math.ceil(int(throttle.get("BurstLimit", 0)) * scale)),
                    clock=clock,
                )
                if throttle
                else None  # a key on no plan, or on a plan without throttle: unlimited
            )
        self._lock = threading.Lock()

    def admit(self, api_key: str | None) -> Admission:
        key_id = self._values.get(api_key or "")
        if key_id is None:
            raise KeyRefused("missing or unknown API key (send the persona's key as x-api-key)")
        bucket = self._buckets[key_id]
        if bucket is None:
            return Admission(True)
        with self._lock:
            wait = bucket.take()
        if wait == 0:
            return Admission(True)
        return Admission(False, retry_after_s=max(1, math.ceil(wait)) if math.isfinite(wait) else 60)


def persona_api_keys(template: Template, api: ApiDefinition) -> dict[str, str]:
    """Each persona's API key value: the key on the usage plan that carries the persona's metadata."""
    plan_persona = {
        plan_id: template.resources[plan["logical_id"]].get("Metadata", {}).get(PERSONA_METADATA)
        for plan_id, plan in api.usage_plans.items()
    }
    found: dict[str, str] = {}
    for key_id, plan_id in api.plan_of_key.items():
        persona = plan_persona.get(plan_id)
        if persona is not None and key_id in api.api_keys:
            found[persona] = api.api_keys[key_id]
    return found
