"""CDK entry point (`cdk.json` runs `python -m infra.app`): wires the stack, validates context, adds cdk-nag."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import RemovalPolicy
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from contracts.loader import CONTRACTS_DIR, load_contracts
from contracts.project import Project, ProjectManifest, load_project, plane_set
from contracts.workflow import WORKFLOWS_DIR, load_workflows
from infra.context import ContextError as ContextError  # re-exported: callers catch it from here
from infra.context import Environment, flag
from infra.paths import FUNCTIONS_DIR, INSTALLED, REPO_ROOT
from infra.plane import PlaneProps
from infra.stack import AgentPlaneStack, ProjectStack

DEFAULT_STACK_NAME = "agentplane"
LAYOUTS = ("single", "split")
LAYER_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[A-Za-z0-9_-]+:\d+$")
# CDK feature flags, set here so `cdk synth` and in-process synth (tests, the local plane) agree.
FEATURE_FLAGS = {
    # Grant S3 log delivery with a bucket policy, not the legacy LogDeliveryWrite ACL (cfn-lint W3045).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def project_dirs(value: Any) -> list[Path]:
    """Context ``agentplane:project``: one project folder, or several separated by commas (or a JSON list)."""
    parts = [str(v) for v in value] if isinstance(value, list) else [p.strip() for p in str(value).split(",")]
    dirs = [Path(part).expanduser() for part in parts if part]
    if not dirs:
        raise ContextError(f"context agentplane:project must name a project folder, not {value!r}")
    return dirs


def plane_projects(
    projects: list[Path] | None, contracts_dir: Path, workflows_dir: Path, functions_dir: Path
) -> list[Project]:
    """The projects the plane builds: those named, else the folders given (one project made of them), else this
    repository's reference project. Names two of them share are refused here, before anything is built."""
    if projects:
        loaded = [load_project(folder) for folder in projects]
    elif (contracts_dir, workflows_dir, functions_dir) == (CONTRACTS_DIR, WORKFLOWS_DIR, FUNCTIONS_DIR):
        if INSTALLED:  # the reference project is the checkout's; an installed plane builds the teams' projects
            raise ContextError(
                "no project to build: name one with --project DIR (context agentplane:project); "
                "`agentplane new project DIR` makes one"
            )
        loaded = [load_project(REPO_ROOT)]
    else:
        manifest = ProjectManifest(name="reference", owners=["agentplane"])
        loaded = [
            Project(
                functions_dir.parent,
                manifest,
                load_contracts(contracts_dir, core=False),
                load_workflows(workflows_dir),
            )
        ]
    plane_set(loaded)
    return loaded


def layout_of(value: Any) -> str:
    """Context ``agentplane:layout``: ``single`` (one stack) or ``split`` (the core, and a stack per project)."""
    layout = str(value or "single")
    if layout not in LAYOUTS:
        raise ContextError(f"context agentplane:layout must be one of {', '.join(LAYOUTS)}, not {value!r}")
    return layout


def build_app(
    outdir: str | Path | None = None,
    *,
    contracts_dir: Path = CONTRACTS_DIR,
    workflows_dir: Path = WORKFLOWS_DIR,
    context: dict[str, Any] | None = None,
    functions_dir: Path = FUNCTIONS_DIR,
    projects: list[Path] | None = None,
) -> cdk.App:
    """The plane's app. ``projects`` (or context ``agentplane:project``) names the agent projects it builds."""
    app = cdk.App(outdir=str(outdir) if outdir else None, context={**FEATURE_FLAGS, **(context or {})})
    named = app.node.try_get_context("agentplane:project")
    loaded = plane_projects(
        projects or (project_dirs(named) if named else None), contracts_dir, workflows_dir, functions_dir
    )
    split = layout_of(app.node.try_get_context("agentplane:layout")) == "split"
    stack_name = app.node.try_get_context("agentplane:stack-name") or DEFAULT_STACK_NAME
    pipeline = str(app.node.try_get_context("agentplane:pipeline")).lower() == "true"
    # A pipeline deploys a prod stage: its default environment is prod (both stages retain and lock for good).
    environment = Environment.from_context(app.node.try_get_context, default="prod" if pipeline else "sandbox")
    fault_injection = flag(app.node.try_get_context, "agentplane:fault-injection")
    collector = app.node.try_get_context("agentplane:otel-collector-layer-arn")
    if collector is not None and not LAYER_ARN.match(str(collector)):
        raise ContextError(
            f"context agentplane:otel-collector-layer-arn must be a Lambda layer version ARN, not {collector!r}"
        )

    props = PlaneProps(
        removal_policy=RemovalPolicy.RETAIN if environment.removal_policy == "retain" else RemovalPolicy.DESTROY,
        environment=environment,
        fault_injection=fault_injection,
        otel_collector_layer_arn=str(collector) if collector else None,
        functions_dir=functions_dir,
    )

    def plane(scope: Construct, stack_id: str, description: str) -> AgentPlaneStack:
        """The plane's stacks; the pipeline's stages build theirs here too, so they deploy what `cdk deploy` does.
        Split, the core is ``stack_id`` and each project ``<stack_id>-<project>``, deployed after it."""
        core = AgentPlaneStack(
            scope,
            stack_id,
            projects=[] if split else loaded,
            props=props,
            description=description,
        )
        for project in loaded if split else []:
            ProjectStack(
                scope,
                f"{stack_id}-{project.name}",
                plane=core.plane,
                project=project,
                description=f"agentplane project {project.name}: {project.manifest.description or 'agents'}",
            )
        return core

    if pipeline:
        from infra.pipeline import PipelineStack  # imported only here: the default synth never loads CDK Pipelines

        PipelineStack.from_context(app, plane_stack_name=stack_name, plane=plane)
    else:
        plane(app, stack_name, "agentplane: orchestration plane for AI agents")
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks())
    return app


def main() -> None:
    try:
        app = build_app()
    except ContextError as error:
        raise SystemExit(f"agentplane: {error}") from None
    app.synth()


if __name__ == "__main__":
    main()
