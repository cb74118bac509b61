"""Traces for people: a waterfall of one trace's spans, from the local receiver or from X-Ray, and the
incident view that joins it with the ledger's lineage of the same trace.

A span here is a plain dict (as :mod:`infra.local.otlp` stores it): ``trace_id`` (X-Ray form),
``span_id``, ``parent_id``, ``name``, ``service``, ``start_ns``, ``end_ns``, ``status`` ("ok" or
"error") and ``attributes``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

STEP = "agentplane.step"
AGENT = "agentplane.agent"


@dataclass(frozen=True)
class Hop:
    """One row of the waterfall."""

    span_id: str
    parent_id: str | None
    depth: int
    hop: str | None  # "api", "invoke" (Lambda's own segment), "agent"
    name: str
    service: str
    step: str | None
    agent: str | None
    capability: str | None
    version: str | None
    offset_ms: float
    duration_ms: float
    status: str
    outcome: str | None
    attempt: int  # 1 for the first try of a step, 2 for its first retry...
    retried: bool  # a later attempt of the same step exists
    fallback: bool
    error_type: str | None


def waterfall(spans: Iterable[Mapping[str, Any]]) -> list[Hop]:
    """Spans in causal order (parents before children, siblings by start time) with depth and retry counts."""
    spans = sorted(spans, key=lambda s: (s["start_ns"], s["span_id"]))
    if not spans:
        return []
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    for span in spans:
        parent = span.get("parent_id")
        children.setdefault(parent if parent in by_id else None, []).append(span)
    origin = spans[0]["start_ns"]
    tries = Counter(_step_key(s) for s in spans if _step_key(s) is not None)
    seen: Counter[tuple[str, str, str] | None] = Counter()
    hops: list[Hop] = []

    def visit(span: Mapping[str, Any], depth: int) -> None:
        attributes = span.get("attributes") or {}
        key = _step_key(span)
        seen[key] += 1
        hops.append(
            Hop(
                span_id=span["span_id"],
                parent_id=span.get("parent_id"),
                depth=depth,
                hop=attributes.get("agentplane.hop"),
                name=span["name"],
                service=span.get("service", ""),
                step=attributes.get(STEP),
                agent=attributes.get(AGENT),
                capability=attributes.get("agentplane.capability"),
                version=attributes.get("agentplane.version"),
                offset_ms=(span["start_ns"] - origin) / 1e6,
                duration_ms=max(0.0, (span["end_ns"] - span["start_ns"]) / 1e6),
                status=span.get("status", "ok"),
                outcome=attributes.get("agentplane.outcome"),
                attempt=seen[key] if key is not None else 1,
                retried=key is not None and seen[key] < tries[key],
                fallback=bool(attributes.get("agentplane.fallback")),
                error_type=attributes.get("agentplane.error_type"),
            )
        )
        for child in children.get(span["span_id"], []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return hops


def _step_key(span: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """Tries of one step: its Lambda invocations and its agent runs are counted apart."""
    attributes = span.get("attributes") or {}
    step, agent = attributes.get(STEP), attributes.get(AGENT)
    return (str(attributes.get("agentplane.hop", "")), str(step), str(agent)) if step and agent else None


def render_waterfall(trace_id: str, hops: list[Hop]) -> str:
    if not hops:
        return f"trace {trace_id}: no spans"
    total = max(h.offset_ms + h.duration_ms for h in hops)
    errors = sum(1 for h in hops if h.status == "error")
    retries = sum(1 for h in hops if h.attempt > 1)
    lines = [
        f"trace {trace_id}  {len(hops)} spans  {total:.1f} ms  {errors} error(s)  {retries} retry(ies)",
        "",
        f"  {'start ms':>9} {'ms':>8}  {'status':<6} hop",
    ]
    for hop in hops:
        notes = []
        if hop.agent:
            notes.append(f"{hop.agent} {hop.version or ''}".strip())
        if hop.attempt > 1:
            notes.append(f"attempt {hop.attempt}")
        if hop.retried:
            notes.append("retried")
        if hop.fallback:
            notes.append("fallback")
        if hop.outcome and hop.outcome not in {"succeeded"}:
            notes.append(hop.outcome)
        if hop.error_type:
            notes.append(hop.error_type)
        label = hop.step or hop.name
        lines.append(
            f"  {hop.offset_ms:>9.1f} {hop.duration_ms:>8.1f}  {hop.status:<6} {'  ' * hop.depth}{label}"
            + (f"  ({', '.join(notes)})" if notes else "")
        )
    return "\n".join(lines)


def as_json(trace_id: str, hops: list[Hop]) -> str:
    return json.dumps({"trace_id": trace_id, "hops": [asdict(h) for h in hops]}, indent=2)


# --- X-Ray ----------------------------------------------------------------------------------------


def spans_from_xray(traces: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``batch_get_traces`` -> spans: every segment and subsegment, annotations as attributes."""
    spans: list[dict[str, Any]] = []
    for found in traces:
        for segment in found.get("Segments", []):
            document = json.loads(segment["Document"])
            _walk(document, document.get("trace_id", found.get("Id", "")), document.get("parent_id"), spans)
    return spans


def _walk(document: Mapping[str, Any], trace_id: str, parent_id: str | None, out: list[dict[str, Any]]) -> None:
    start = float(document.get("start_time", 0))
    end = float(document.get("end_time", start))
    annotations = document.get("annotations") or {}
    # X-Ray keeps our span attributes as annotations with "." turned into "_".
    attributes = {key.replace("agentplane_", "agentplane.", 1): value for key, value in annotations.items()}
    out.append(
        {
            "trace_id": trace_id,
            "span_id": document["id"],
            "parent_id": parent_id,
            "name": document.get("name", "?"),
            "service": document.get("origin", document.get("name", "")),
            "start_ns": int(start * 1e9),
            "end_ns": int(end * 1e9),
            "status": "error" if document.get("error") or document.get("fault") else "ok",
            "attributes": attributes,
        }
    )
    for sub in document.get("subsegments", []):
        _walk(sub, trace_id, document["id"], out)


# --- the incident view ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplainedStep:
    step: str
    actor: str | None
    agent: str | None
    agent_version: str | None
    status: str | None
    input_sha256: str | None
    output_sha256: str | None
    ledger_ms: float | None
    span_ms: float | None
    attempts: int
    verification: str


def explain(hops: list[Hop], lineage: Mapping[str, Any]) -> list[ExplainedStep]:
    """Each recorded decision beside the span(s) that produced it: who decided, on what, how long, verified?"""
    spans_by_step: dict[tuple[str, str], list[Hop]] = {}
    for hop in hops:
        if hop.step and hop.agent and hop.hop == "agent":
            spans_by_step.setdefault((hop.step, hop.agent), []).append(hop)
    explained = []
    for entry in lineage.get("steps", []):
        matched = spans_by_step.get((str(entry.get("step")), str(entry.get("agent"))), [])
        last = matched[-1] if matched else None
        explained.append(
            ExplainedStep(
                step=str(entry.get("step")),
                actor=entry.get("actor"),
                agent=entry.get("agent"),
                agent_version=entry.get("agent_version"),
                status=entry.get("status"),
                input_sha256=entry.get("input_sha256"),
                output_sha256=entry.get("output_sha256"),
                ledger_ms=None if entry.get("duration_ms") is None else float(entry["duration_ms"]),
                span_ms=None if last is None else last.duration_ms,
                attempts=len(matched),
                verification=str(entry.get("verification")),
            )
        )
    return explained


def render_explained(trace_id: str, verified: bool, steps: list[ExplainedStep], untraced: int) -> str:
    lines = [
        f"trace {trace_id}: {len(steps)} recorded decision(s); ledger {'verified' if verified else 'NOT verified'}",
        "",
        f"  {'step':<18} {'decided by':<26} {'status':<10} {'ledger ms':>9} {'span ms':>8} {'tries':>5}  "
        f"{'input':<12} {'output':<12} record",
    ]
    for s in steps:
        span_ms = "-" if s.span_ms is None else f"{s.span_ms:.1f}"
        ledger_ms = "-" if s.ledger_ms is None else f"{s.ledger_ms:.1f}"
        lines.append(
            f"  {s.step:<18} {(s.actor or '-'):<26} {(s.status or '-'):<10} {ledger_ms:>9} {span_ms:>8} "
            f"{s.attempts:>5}  {(s.input_sha256 or '-')[:12]:<12} {(s.output_sha256 or '-')[:12]:<12} {s.verification}"
        )
    if untraced:
        lines += ["", f"{untraced} decision(s) have no span in this trace (sampled out, or made outside a traced step)"]
    return "\n".join(lines)
