"""Offline eval scores: what the registry ranks implementations of a capability by, beside their health.

``events/evals/<capability>.jsonl`` holds labelled cases; ``events/evals/scores.json`` the score each
implementation got on them (``python -m infra.evals`` measures and writes it). A template test keeps the shipped
score equal to a fresh measurement, so the number the registry ranks by is the one the set gives.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from contracts.models import Claim, ClaimCheck, Verdict
from infra.components.eval_scores import EVALS_DIR, SCORES_FILE
from infra.paths import REPO_ROOT

FACT_CHECK_SET = EVALS_DIR / "fact-check.jsonl"


def fact_check_cases(path: Path = FACT_CHECK_SET) -> list[tuple[ClaimCheck, str]]:
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            row = json.loads(line)
            claim = Claim(claim_id=f"c-{number:03d}", text=row["claim"], sentence_index=0)
            cases.append((ClaimCheck(claim=claim), str(row["label"])))
    return cases


def accuracy(check: Callable[[ClaimCheck], Verdict], cases: Iterable[tuple[ClaimCheck, str]]) -> tuple[float, int]:
    """The share of cases whose label the implementation gets right, and how many cases there were."""
    results = [check(case).label == label for case, label in cases]
    return (round(sum(results) / len(results), 4) if results else 0.0), len(results)


def heuristic_check() -> Callable[[ClaimCheck], Verdict]:
    from functions.evidence_verifier.service import DEFAULT_KB_PATH, KnowledgeBase, verify

    knowledge_base = KnowledgeBase.load(DEFAULT_KB_PATH)
    return lambda case: verify(case, knowledge_base)


def llm_check(name: str = "fact-checker-llm") -> Callable[[ClaimCheck], Verdict]:
    """The llm agent's loop in-process: the local plane's stand-in model, tools answered by the heuristic."""
    from contracts.loader import load_contracts
    from functions.llm_agent.loop import AgentConfig, run_loop
    from infra.components.llm_agent import PRICING_REGION, loop_config
    from infra.local.bedrock import LocalBedrock

    contracts = load_contracts()
    config = AgentConfig.model_validate(loop_config(contracts[name], contracts, region=PRICING_REGION))
    model = LocalBedrock()
    heuristic = heuristic_check()

    def check(case: ClaimCheck) -> Verdict:
        answer, _usage = run_loop(
            config,
            Verdict,
            case.model_dump(mode="json"),
            converse=model.converse,
            call_tool=lambda _spec, arguments, _id: heuristic(ClaimCheck.model_validate(arguments)).model_dump(
                mode="json"
            ),
            record_turn=lambda _turn: None,
            approve=lambda _spec, _call: None,
        )
        assert isinstance(answer, Verdict)
        return answer

    return check


def measure() -> dict[str, Any]:
    cases = fact_check_cases()
    score, count = accuracy(heuristic_check(), cases)
    implementations: dict[str, Any] = {
        "evidence-verifier": {"score": score, "cases": count, "measured_with": "evidence-verifier's service"},
    }
    try:
        check = llm_check()
    except ImportError:  # no local stand-in model in this checkout: the llm agent stays unscored
        check = None
    if check is not None:
        score, count = accuracy(check, cases)
        implementations["fact-checker-llm"] = {
            "score": score,
            "cases": count,
            "measured_with": "the local plane's stand-in model (not a real model): re-measure against the deployed one",
        }
    return {
        "eval_set": str(FACT_CHECK_SET.relative_to(REPO_ROOT)),
        "metric": "label accuracy",
        "implementations": implementations,
    }


def main() -> int:
    SCORES_FILE.write_text(json.dumps(measure(), indent=2) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {SCORES_FILE.relative_to(REPO_ROOT)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
