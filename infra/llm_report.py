"""What a run's llm agents did, from their turn records: turns, tool calls, tokens and cost, for people."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentTurns:
    agent: str
    steps: set[str] = field(default_factory=set)
    turns: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    models: set[str] = field(default_factory=set)
    served_by: set[str] = field(default_factory=set)


def turns(records: Iterable[Mapping[str, Any]]) -> Iterator[tuple[Mapping[str, Any], dict[str, Any]]]:
    """The turn records among decision records (``step_key``, ``actor``, ``output_json``), each with its turn."""
    for record in records:
        if str(record.get("actor", "")).startswith("model:") and "/turn/" in str(record.get("step_key", "")):
            yield record, json.loads(str(record["output_json"]))


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, AgentTurns]:
    """Per llm agent, from decision records (``agent``, ``step_key``, ``actor``, ``output_json``) of one run."""
    found: dict[str, AgentTurns] = defaultdict(lambda: AgentTurns(""))
    for record, turn in turns(records):
        agent = found[str(record["agent"])]
        agent.agent = str(record["agent"])
        agent.steps.add(str(record["step_key"]).rsplit("/turn/", 1)[0])
        agent.turns += 1
        agent.tool_calls += sum(1 for call in turn["tool_calls"] if call["name"] != "final_answer")
        usage = turn["usage"]
        agent.input_tokens += sum(
            int(usage.get(k, 0)) for k in ("input_tokens", "cache_read_tokens", "cache_write_tokens")
        )
        agent.output_tokens += int(usage["output_tokens"])
        agent.cost_usd += float(turn["cost_usd"])
        agent.models.add(str(turn["model_id"]))
        if turn.get("served_by"):
            agent.served_by.add(str(turn["served_by"]))
    return dict(found)


def lines(summary: Mapping[str, AgentTurns]) -> list[str]:
    out = []
    for agent in sorted(summary.values(), key=lambda a: a.agent):
        served = f"; answered by the {', '.join(sorted(agent.served_by))}" if agent.served_by else ""
        out.append(
            f"llm: {agent.agent} ({', '.join(sorted(agent.models))}): {len(agent.steps)} step(s), {agent.turns} turns, "
            f"{agent.tool_calls} tool calls, {agent.input_tokens:,} input + {agent.output_tokens:,} output tokens, "
            f"${agent.cost_usd:.4f}{served}"
        )
    return out


def from_dynamodb(client: Any, table: str, execution_id: str) -> list[str]:
    """The lines for one run, read from the decisions table (a local plane's, or a deployed one's)."""
    return lines(summarize(records_of(client, table, execution_id))) or ["llm: no llm agent took part in this run"]


def records_of(client: Any, table: str, execution_id: str) -> list[dict[str, Any]]:
    """One run's decision records in the decisions table, their string attributes as read."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "correlation_id = :c",
        "ExpressionAttributeValues": {":c": {"S": execution_id}},
    }
    while True:
        page = client.query(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return [{key: value.get("S") for key, value in item.items()} for item in items]
