"""moto's Step Functions interpreter, made to cost the same on every run of the same workflow.

moto parses a state machine's definition with ANTLR at the start of every execution (doc-review's takes ~0.3 s
of CPU) and builds a new JSONPath parser for every path it evaluates (~1 ms each, dozens per state). The local
plane runs the same few definitions and paths over and over, so both are memoized by their text. The parsed
program is shared by the executions of one definition: its components hold only what the definition says (and
a lazily made heap key), while everything an execution changes lives in the ``Environment`` each execution
makes (checked against moto 5.2.5).

One fix rides with them: a Map iteration that fails with a reserved name (``States.Timeout`` from a step inside
it) fails the Map with that name, as Step Functions does, instead of moto's ``States.Runtime``.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

from infra.local import moto_seam

PROGRAMS = 64  # distinct definitions kept parsed (each workflow version is one)
PATHS = 4096  # distinct JSONPath expressions kept compiled


@functools.lru_cache(maxsize=PROGRAMS)
def _program(definition: str) -> Any:
    return AmazonStateLanguageParser.parse(definition)[0]


class _IterationErrorName(ErrorName):
    """An iteration's error name as it was raised, a reserved ``States.`` one included."""


class InterpreterCaches:
    def __init__(self) -> None:
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        def entrypoint(worker: ExecutionWorker) -> Any:
            return _program(worker._evaluation_details.state_machine_details.definition)

        self._patches.apply("stepfunctions.parse_definition", entrypoint)
        for name in ("stepfunctions.json_path_parse", "stepfunctions.result_path_parse"):
            self._patches.apply(name, functools.lru_cache(maxsize=PATHS)(moto_seam.original(name)))
        self._patches.apply("stepfunctions.map_iteration_error", _IterationErrorName)

    def uninstall(self) -> None:
        self._patches.restore()
