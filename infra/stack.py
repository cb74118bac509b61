"""The plane's stacks: the whole plane in one, or the core in one and each agent project in its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnElement, Stack
from constructs import Construct

from contracts.project import Project
from infra.components.nag import unique_id
from infra.conventions import ENVIRONMENT_METADATA
from infra.plane import AgentPlane, AgentProject, PlaneProps


class _OneConstructStack(Stack):
    """A stack holding one top-level construct, whose id its resources' logical ids leave out: the ids stay what
    they were before the construct held them, so a stack moved between layouts keeps its resources."""

    wrapper = ""

    def _allocate_logical_id(self, cfn_element: CfnElement) -> str:
        # The CDK asks again each time a reference to the element resolves, and every question about a construct
        # is a round trip to the jsii process: each element's id is worked out once, from its path (ids hold no
        # "/"), and kept by element (jsii hands back the same object for the same construct).
        known: dict[CfnElement, str] = self.__dict__.setdefault("_logical_ids", {})
        found = known.get(cfn_element)
        if found is None:
            depth = self.__dict__.get("_depth")
            if depth is None:
                depth = self.__dict__["_depth"] = len(self.node.path.split("/"))
            path = cfn_element.node.path.split("/")[depth:]
            found = known[cfn_element] = unique_id(path[1:] if len(path) > 1 and path[0] == self.wrapper else path)
        return found


class AgentPlaneStack(_OneConstructStack):
    """The plane's core; with ``projects``, their agents and workflows too (the single-stack layout)."""

    wrapper = "Plane"

    def __init__(
        self,
        scope: Construct,
        stack_id: str,
        *,
        projects: Sequence[Project] = (),
        props: PlaneProps | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, stack_id, **kwargs)
        self.plane = AgentPlane(self, self.wrapper, projects=projects, props=props)
        # Preflight holds the template to its environment (Object Lock mode, removal policies).
        self.template_options.metadata = {ENVIRONMENT_METADATA: self.plane.settings.name}
        plane = self.plane  # its parts, as the stack's own attributes too
        self.settings, self.data, self.mesh, self.layers, self.ledger = (
            plane.settings,
            plane.data,
            plane.mesh,
            plane.layers,
            plane.ledger,
        )
        self.agents, self.endpoints, self.steps, self.workflows = (
            plane.agents,
            plane.endpoints,
            plane.steps,
            plane.workflows,
        )
        self.registry, self.approvals, self.catalog, self.api = (
            plane.registry,
            plane.approvals,
            plane.catalog,
            plane.api,
        )
        self.observability, self.rollouts = plane.observability, plane.rollouts


class ProjectStack(_OneConstructStack):
    """One agent project, joined to the plane's core stack (the split layout)."""

    wrapper = "Project"

    def __init__(self, scope: Construct, stack_id: str, *, plane: AgentPlane, project: Project, **kwargs: Any) -> None:
        super().__init__(scope, stack_id, **kwargs)
        self.project = AgentProject(self, self.wrapper, plane=plane, project=project)
        self.template_options.metadata = {ENVIRONMENT_METADATA: plane.settings.name}
