"""What every command group shares: one-line errors, the parser, the options of client and plane commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from infra.client import (
    DEFAULT_PORT,
    Endpoint,
    ambient_endpoint,
    local_endpoint,
    plane_url,
    served_endpoint,
)
from infra.local.auth import served_at

DEFAULT_STATE_DIR = Path(".agentplane")


class CliError(Exception):
    """A failure to report as one line."""


class UsageError(CliError):
    """Bad arguments: exit status 2, as argparse would."""


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The innermost command's parser sets it last: "agentplane local serve", for messages about the command.
        self.set_defaults(command_line=self.prog)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


Commands: TypeAlias = "argparse._SubParsersAction[Parser]"  # where each group registers its commands


PROJECT_CONTEXT = "agentplane:project"
LAYOUT_CONTEXT = "agentplane:layout"


def project_option(p: argparse.ArgumentParser) -> None:
    """``--project DIR`` (repeatable): the agent projects the plane builds (default: this repository's own), and
    ``--layout``: in one stack, or the core and a stack per project."""
    p.add_argument(
        "--project",
        action="append",
        metavar="DIR",
        help="an agent project folder (holding agentplane.yaml) to build; repeat for several",
    )
    p.add_argument(
        "--layout",
        choices=["single", "split"],
        help="single: the whole plane in one stack (default); split: the core, and one stack per project",
    )


def project_context(args: argparse.Namespace) -> dict[str, str]:
    """The CDK context naming ``--project`` folders (absolute: the app may run elsewhere); none when not given."""
    folders = getattr(args, "project", None) or []
    for folder in folders:
        if not (Path(folder) / "agentplane.yaml").is_file():
            raise CliError(
                f"--project {folder}: not a project (no agentplane.yaml; `agentplane new project` makes one)"
            )
    context = {PROJECT_CONTEXT: ",".join(str(Path(f).resolve()) for f in folders)} if folders else {}
    layout = getattr(args, "layout", None)
    return {**context, LAYOUT_CONTEXT: layout} if layout else context


def plane_options(p: argparse.ArgumentParser, port: int) -> None:
    """The options of a command that starts a local plane."""
    project_option(p)
    p.add_argument("--port", type=int, default=port, help=f"port on 127.0.0.1 (default {port}; 0 picks one)")
    p.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="state, logs, synthesized app")
    p.add_argument("--fault", action="append", metavar="AGENT=ERROR[:RATE]", help="inject a failure into an agent")
    p.add_argument(
        "--fresh", action="store_true", help="wipe what a previous plane left in the state dir (else: resume it)"
    )


def client_options(p: argparse.ArgumentParser, persona: str) -> None:
    """The options of a command that talks to a plane, as ``persona`` by default."""
    p.add_argument(
        "--api-url", help="a deployed API (signed with your AWS credentials) or a plane (default: the local one)"
    )
    p.add_argument(
        "--state-dir", default=str(DEFAULT_STATE_DIR), help="where `local serve` wrote plane.json, credentials.json"
    )
    p.add_argument("--persona", help=f"local plane: sign with this persona's local key (default {persona})")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    p.set_defaults(default_persona=persona)


def client_command(
    group: Commands, name: str, help: str, handler: Callable[[argparse.Namespace], int], persona: str
) -> argparse.ArgumentParser:
    """A sub-command that talks to a plane, as ``persona`` by default; the caller adds its own arguments."""
    command = group.add_parser(name, help=help)
    client_options(command, persona)
    command.set_defaults(handler=handler)
    return command


def api_url(args: argparse.Namespace) -> str:
    if getattr(args, "api_url", None):
        url = str(args.api_url).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--api-url must be http(s), not {args.api_url!r}")
        return url
    return plane_url(Path(args.state_dir)) or f"http://127.0.0.1:{DEFAULT_PORT}"


def is_deployed(args: argparse.Namespace) -> bool:
    """Whether the command talks to a deployed API: not a plane this process serves, nor the state dir's."""
    url = api_url(args)
    return served_at(url) is None and bool(args.api_url) and plane_url(Path(args.state_dir)) != url


def connect(args: argparse.Namespace, *, persona: str | None = None) -> Endpoint:
    """The plane to talk to, with the key of ``persona`` (else ``--persona``, else the command's persona) when it
    is a local one."""
    url = api_url(args)
    persona = persona or args.persona or args.default_persona
    served = served_endpoint(url, persona)
    if served is not None:  # a plane this process serves (the demo; tests)
        return served
    state_dir = Path(args.state_dir)
    if not args.api_url or plane_url(state_dir) == url:
        return local_endpoint(url, state_dir, persona)
    return ambient_endpoint(url)


def read_json_file(path: str) -> bytes:
    try:
        raw = Path(path).read_bytes()
        json.loads(raw)
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise CliError(f"{path} is not JSON: {error.msg} at line {error.lineno}") from None
    return raw


def warn(message: str) -> None:
    print(f"agentplane: warning: {message}", file=sys.stderr)
