"""`agentplane synth` and `preflight`: the CDK app synthesized, and checked for what only AWS would refuse."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from infra.cli.base import DEFAULT_STATE_DIR, CliError, Commands, UsageError, project_context, project_option
from infra.paths import INSTALLED, REPO_ROOT
from infra.synth import ASSET_METADATA, synthesize


def cmd_synth(args: argparse.Namespace) -> int:
    out = Path(args.out)
    assembly = synthesize(out, project_context(args))
    for stack in assembly.stacks:
        print(f"{stack.stack_name}: {out / stack.template_file}  (cdk-nag AwsSolutions: clean)")
    return 0


def cmd_preflight(args: argparse.Namespace) -> int:
    from contracts.project import load_project
    from infra.preflight import EVENTS_DIR, PreflightError, preflight

    if args.assembly:
        assembly = Path(args.assembly)
        if args.context:
            raise UsageError("agentplane preflight: --context applies when synthesizing, not to --assembly")
        if not assembly.is_dir():
            raise UsageError(f"agentplane preflight: --assembly {assembly}: no such cloud assembly directory")
    else:
        assembly = Path(args.state_dir) / "preflight"
        context = {**ASSET_METADATA, **project_context(args)}  # preflight reads the staged assets
        for setting in args.context or []:
            key, equals, value = setting.partition("=")
            if not equals or not key:
                raise UsageError(f"agentplane preflight: --context {setting!r}: expected KEY=VALUE")
            context[key] = value
        synthesize(assembly, context)
    # The sample payloads of the projects named (their `events` folders), else this repository's.
    events = [load_project(Path(folder)).events_dir for folder in args.project or []] or [EVENTS_DIR]
    try:
        findings = preflight(assembly, args.stack, events_dir=events)
    except PreflightError as error:
        raise UsageError(f"agentplane preflight: {error}") from None
    if args.json:
        print(json.dumps([finding.as_json() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding.line())
    return 1 if any(finding.severity == "error" for finding in findings) else 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """``cdk deploy`` of the app with the projects named (the CDK CLI and your AWS credentials do the rest)."""
    import shutil
    import subprocess
    import sys

    npx = shutil.which("npx")
    if npx is None:
        raise CliError("agentplane deploy needs the CDK CLI (Node.js and npx): `make setup` installs both")
    context = [f"-c{key}={value}" for key, value in project_context(args).items()]
    app = f"{sys.executable} -m infra.app"
    extra = args.cdk_args[1:] if args.cdk_args[:1] == ["--"] else args.cdk_args
    if args.layout == "split" and not any(a == "--all" or not a.startswith("-") for a in extra):
        # The core and every project's stack (CDK deploys the core first); name stacks after -- to deploy fewer.
        extra = ["--all", *extra]
    command = [npx, "--no-install", "cdk", "deploy", "--app", app, *context, *extra]
    # A checkout deploys with its pinned CLI (node_modules) and cdk.json; an installed package from where it is run.
    cwd = None if INSTALLED else REPO_ROOT
    return subprocess.run(command, cwd=cwd, check=False).returncode  # noqa: S603 (the user's own deploy)


def register(commands: Commands) -> None:
    synth = commands.add_parser("synth", help="synthesize the CDK app (cdk-nag runs)")
    synth.add_argument("--out", default="cdk.out")
    project_option(synth)
    synth.set_defaults(handler=cmd_synth)

    deploy = commands.add_parser("deploy", help="deploy the app (cdk deploy) with the projects named")
    project_option(deploy)
    deploy.add_argument("cdk_args", nargs=argparse.REMAINDER, help="more cdk deploy arguments, after --")
    deploy.set_defaults(handler=cmd_deploy)

    check = commands.add_parser("preflight", help="check a synthesized app for what only AWS would refuse")
    check.add_argument("--assembly", help="a synthesized cloud assembly (default: synthesize the app now)")
    check.add_argument("--stack", help="check this stack only (default: every stack of the assembly)")
    check.add_argument(
        "-c", "--context", action="append", metavar="KEY=VALUE", help="CDK context for the synth, as `cdk -c`"
    )
    check.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where the synthesized app is written")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    project_option(check)
    check.set_defaults(handler=cmd_preflight)
