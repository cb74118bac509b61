"""Reading a synthesized template: resource order, asset locations, and the intrinsic functions CDK emits."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


class TemplateError(ValueError):
    pass


@dataclass
class Physical:
    """What a provisioned resource answers to: its Ref and its GetAtt attributes."""

    ref: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    stack_name: str
    body: dict[str, Any]
    assembly_dir: Path
    # Resources per stack the template was joined from (load_plane); empty: this one stack.
    stack_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, int]:
        return self.stack_sizes or {self.stack_name: len(self.resources)}

    @classmethod
    def load(cls, assembly_dir: Path, stack_name: str) -> Template:
        path = assembly_dir / f"{stack_name}.template.json"
        if not path.is_file():
            raise TemplateError(f"no template for stack {stack_name!r} in {assembly_dir}")
        return cls(stack_name=stack_name, body=json.loads(path.read_text()), assembly_dir=assembly_dir)

    @classmethod
    def load_plane(cls, assembly_dir: Path, stack_name: str) -> Template:
        """The plane's stack and every stack of the assembly that depends on it (the split layout: one per agent
        project) as one template: each ``Fn::ImportValue`` of the plane's exports becomes the exported value, and a
        project's logical id the plane already uses (CDK's per-stack singletons, a project's own alarms) is renamed."""
        plane = cls.load(assembly_dir, stack_name)
        body = copy.deepcopy(plane.body)
        sizes = {stack_name: len(plane.resources)}
        exports = {
            output["Export"]["Name"]: output["Value"]
            for output in body.get("Outputs", {}).values()
            if isinstance(output.get("Export", {}).get("Name"), str)
        }
        for dependent in dependents(assembly_dir, stack_name):
            project = cls.load(assembly_dir, dependent).body
            sizes[dependent] = len(project.get("Resources", {}))
            prefix = _NOT_ALPHANUMERIC.sub("", dependent.title())
            taken = set(body.get("Resources", {})) | set(body.get("Outputs", {}))
            ids = [*project.get("Resources", {}), *project.get("Outputs", {})]
            renames = {lid: prefix + lid for lid in ids if lid in taken}
            project = _imported(_renamed(project, renames), exports, dependent)
            for section in ("Resources", "Outputs", "Mappings"):
                body.setdefault(section, {}).update(project.get(section, {}))
        return cls(stack_name=stack_name, body=body, assembly_dir=assembly_dir, stack_sizes=sizes)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        resources: dict[str, dict[str, Any]] = self.body.get("Resources", {})
        return resources

    def asset_dir(self, logical_id: str) -> Path | None:
        """Where a resource's file asset was staged (``aws:asset:path`` metadata)."""
        metadata = self.resources[logical_id].get("Metadata", {})
        path = metadata.get("aws:asset:path")
        return None if path is None else (self.assembly_dir / path)

    def creation_order(self) -> list[str]:
        """Resources ordered so each comes after everything it references or depends on."""
        deps = {lid: _references(res) & self.resources.keys() for lid, res in self.resources.items()}
        for lid, res in self.resources.items():
            depends = res.get("DependsOn", [])
            deps[lid] |= set([depends] if isinstance(depends, str) else depends)
        ordered: list[str] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(lid: str) -> None:
            if lid in done:
                return
            if lid in visiting:
                raise TemplateError(f"circular reference through {lid}")
            visiting.add(lid)
            for dep in sorted(deps[lid]):
                visit(dep)
            visiting.discard(lid)
            done.add(lid)
            ordered.append(lid)

        for lid in sorted(self.resources):
            visit(lid)
        return ordered


def dependents(assembly_dir: Path, stack_name: str) -> list[str]:
    """The stacks of the assembly that depend on ``stack_name``, in the manifest's order."""
    manifest_file = assembly_dir / "manifest.json"
    if not manifest_file.is_file():
        return []
    artifacts: dict[str, Any] = json.loads(manifest_file.read_text()).get("artifacts", {})
    return [
        name
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack" and stack_name in artifact.get("dependencies", [])
    ]


def _renamed(node: Any, renames: dict[str, str]) -> Any:
    """``node`` with every logical id in ``renames`` (as a key, a Ref, a GetAtt, a DependsOn, a Sub name) renamed."""
    if not renames:
        return node
    if isinstance(node, list):
        return [_renamed(item, renames) for item in node]
    if isinstance(node, str):
        return node
    if not isinstance(node, dict):
        return node
    found: dict[str, Any] = {}
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found[key] = renames.get(value, value)
        elif key == "Fn::GetAtt":
            logical, attribute = value if isinstance(value, list) else value.split(".", 1)
            found[key] = [renames.get(logical, logical), attribute]
        elif key == "DependsOn":
            found[key] = renames.get(value, value) if isinstance(value, str) else [renames.get(v, v) for v in value]
        elif key == "Fn::Sub":
            text, variables = (value, None) if isinstance(value, str) else (value[0], value[1])
            for name in _sub_names(text):
                logical, dot, attribute = name.partition(".")
                if logical in renames and (variables is None or name not in variables):
                    text = text.replace("${" + name + "}", "${" + renames[logical] + dot + attribute + "}")
            found[key] = text if variables is None else [text, _renamed(variables, renames)]
        elif key in ("Resources", "Outputs") and isinstance(value, dict):
            found[key] = {renames.get(lid, lid): _renamed(item, renames) for lid, item in value.items()}
        else:
            found[key] = _renamed(value, renames)
    return found


def _imported(node: Any, exports: dict[str, Any], stack_name: str) -> Any:
    """``node`` with each ``Fn::ImportValue`` replaced by the value the plane's stack exports under that name."""
    if isinstance(node, list):
        return [_imported(item, exports, stack_name) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1 and "Fn::ImportValue" in node:
        name = node["Fn::ImportValue"]
        if not isinstance(name, str) or name not in exports:
            raise TemplateError(f"stack {stack_name} imports {name!r}, which the plane's stack does not export")
        return copy.deepcopy(exports[name])
    return {key: _imported(value, exports, stack_name) for key, value in node.items()}


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if "Ref" in node and isinstance(node["Ref"], str):
            found.add(node["Ref"])
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else target.split(".")[0])
        if "Fn::Sub" in node:
            text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
            found |= {name.split(".")[0] for name in _sub_names(text)}
        for key, value in node.items():
            if key != "Metadata":
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def _sub_names(text: str) -> list[str]:
    names = []
    start = text.find("${")
    while start != -1:
        end = text.find("}", start)
        if end == -1:
            break
        name = text[start + 2 : end]
        if not name.startswith("!"):
            names.append(name)
        start = text.find("${", end)
    return names


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select, Fn::Split, Fn::FindInMap and pseudo parameters."""

    def __init__(self, stack_name: str, physical: dict[str, Physical], mappings: dict[str, Any] | None = None) -> None:
        self.physical = physical
        self.mappings = mappings or {}
        self.pseudo = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": PARTITION,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{stack_name}/local",
            "AWS::NoValue": None,
        }

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node if item != {"Ref": "AWS::NoValue"}]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self._ref(value)
            if key == "Fn::GetAtt":
                logical, attribute = value if isinstance(value, list) else value.split(".", 1)
                return self._get_att(logical, attribute)
            if key == "Fn::Join":
                separator, parts = value
                return separator.join(str(self.resolve(p)) for p in self.resolve(parts))
            if key == "Fn::Sub":
                return self._sub(value)
            if key == "Fn::Select":
                index, items = value
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                separator, text = value
                return str(self.resolve(text)).split(separator)
            if key == "Fn::FindInMap":
                name, top, second = (self.resolve(part) for part in value)
                try:
                    return self.mappings[name][top][second]
                except KeyError:
                    raise TemplateError(f"Fn::FindInMap {name}.{top}.{second}: no such entry") from None
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported by the local plane")
        return {k: self.resolve(v) for k, v in node.items()}

    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.physical:
            raise TemplateError(f"Ref to {name}, which is not provisioned")
        return self.physical[name].ref

    def _get_att(self, logical: str, attribute: str) -> Any:
        if logical not in self.physical:
            raise TemplateError(f"Fn::GetAtt on {logical}, which is not provisioned")
        attributes = self.physical[logical].attributes
        if attribute not in attributes:
            raise TemplateError(f"Fn::GetAtt {logical}.{attribute}: the local plane has no such attribute")
        return attributes[attribute]

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], self.resolve(value[1]))
        for name in _sub_names(text):
            if name in variables:
                replacement = variables[name]
            elif "." in name:
                logical, attribute = name.split(".", 1)
                replacement = self._get_att(logical, attribute)
            else:
                replacement = self._ref(name)
            text = text.replace("${" + name + "}", str(replacement))
        return text.replace("${!", "${")
