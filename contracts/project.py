"""Agent projects: a team's agents and workflows, in a repository of their own, built onto a plane.

A project is a folder holding ``agentplane.yaml`` (validated by :class:`ProjectManifest`): its name, owners, the
plane it joins, and where its contracts, workflow specs, handler packages and sample payloads are. The plane's own
reference agents and doc-review are one such project (this repository's ``agentplane.yaml``); nothing else is
special about them. The plane adds its own agents (``contracts/core/``) to every project set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from contracts.capability import KEBAB_PATTERN, CapabilityContract, _Strict
from contracts.loader import CORE_DIR, DOCUMENT, ContractError, Roots, load_contracts, validate_file
from contracts.workflow import WorkflowSpec, load_workflows

MANIFEST = "agentplane.yaml"
CORE_PROJECT = "agentplane-core"


class ProjectManifest(_Strict):
    """``agentplane.yaml``: who owns the project and where its parts are (folders relative to it)."""

    name: str = Field(pattern=KEBAB_PATTERN, max_length=40, description="Names the project's stack and resources.")
    description: str = Field(default="", max_length=300)
    owners: list[str] = Field(min_length=1, description="Who answers for the project's agents (team, address).")
    plane: str = Field(default="agentplane", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$", description="The plane's stack.")
    agents: str = Field(default="agents", description="The capability contracts, one file per agent.")
    workflows: str = Field(default="workflows", description="The workflow specs, one file per workflow.")
    source: str = Field(default=".", description="The import root of the handler packages and payload models.")
    events: str = Field(default="events", description="Sample payloads: <contract>.json per agent.")

    @field_validator("agents", "workflows", "source", "events")
    @classmethod
    def _relative(cls, folder: str) -> str:
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ValueError(f"{folder!r} must be a folder inside the project")
        return folder


@dataclass(frozen=True)
class Project:
    """A loaded project: its manifest, contracts and workflows, and where its code is."""

    root: Path
    manifest: ProjectManifest
    contracts: Mapping[str, CapabilityContract]
    workflows: Mapping[str, WorkflowSpec]

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def source_root(self) -> Path:
        return (self.root / self.manifest.source).resolve()

    @property
    def events_dir(self) -> Path:
        return self.root / self.manifest.events

    @property
    def roots(self) -> Roots:
        return Roots(self.root, self.source_root)


def load_project(root: Path) -> Project:
    """The project in ``root``; any problem is a :class:`ContractError` (file, field, reason)."""
    root = root.resolve()
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise ContractError(str(root), DOCUMENT, f"not a project: no {MANIFEST} (agentplane new project DIR makes one)")
    manifest = validate_file(manifest_path, ProjectManifest)
    roots = Roots(root, (root / manifest.source).resolve())
    agents = root / manifest.agents
    if not agents.is_dir():
        raise ContractError(str(manifest_path), "agents", f"no folder {agents}")
    contracts = load_contracts(agents, roots=roots, core=False)
    workflows = load_workflows(root / manifest.workflows, roots)
    return Project(root, manifest, contracts, workflows)


def core_project() -> Project:
    """The plane's own agents: part of every plane; their handlers are the plane's (``functions/``)."""
    # The root the plane's packages import from (their handler strings start there): the checkout, or, for the
    # installed `agentplane.contracts`, site-packages.
    plane_root = Path(__file__).resolve().parents[__name__.count(".")]
    manifest = ProjectManifest(
        name=CORE_PROJECT, owners=["agentplane"], agents=CORE_DIR.relative_to(plane_root).as_posix()
    )
    return Project(plane_root, manifest, load_contracts(CORE_DIR, core=False), {})


@dataclass(frozen=True)
class PlaneSet:
    """What one plane runs: its own agents and every project's, and the projects' workflows, each by name."""

    projects: Sequence[Project]

    @property
    def contracts(self) -> dict[str, CapabilityContract]:
        return {name: c for p in self.projects for name, c in sorted(p.contracts.items())}

    @property
    def workflows(self) -> dict[str, WorkflowSpec]:
        return {name: w for p in self.projects for name, w in sorted(p.workflows.items())}

    def owner(self, agent: str) -> Project:
        """The project an agent (or workflow) comes from."""
        for project in self.projects:
            if agent in project.contracts or agent in project.workflows:
                return project
        raise KeyError(agent)


def plane_set(projects: Sequence[Project]) -> PlaneSet:
    """The core and ``projects`` together; an agent or workflow name two of them define is refused."""
    every = [core_project(), *projects]
    seen: dict[str, str] = {}
    for project in every:
        if project.name in {p.name for p in every if p is not project}:
            raise ContractError(str(project.root / MANIFEST), "name", f"two projects are named {project.name!r}")
        for kind, names in (("agent", project.contracts), ("workflow", project.workflows)):
            for name in names:
                key = f"{kind}:{name}"
                if key in seen:
                    raise ContractError(
                        str(project.root / MANIFEST),
                        kind + "s",
                        f"{kind} {name!r} is defined by both {seen[key]} and {project.name}",
                    )
                seen[key] = project.name
    return PlaneSet(every)
