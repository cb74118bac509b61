"""The layers functions share: our runtime (envelope, decisions, contracts), its dependencies, the knowledge base."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnResource
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.agent_pool import LAMBDA_RUNTIME
from infra.components.staging import stage
from infra.conventions import LAYER_KIND_METADATA
from infra.paths import CONTRACTS_DIR, FUNCTIONS_DIR, LAMBDA_DEPS_DIR


class MissingLambdaDependencies(RuntimeError):
    pass


class RuntimeLayers(Construct):
    knowledge_base_path = "/opt/knowledge_base/passages.jsonl"

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        if not (LAMBDA_DEPS_DIR / "python").is_dir():
            raise MissingLambdaDependencies(
                f"{LAMBDA_DEPS_DIR / 'python'} is missing: run `make lambda-deps` "
                "(it builds the arm64 layer from uv.lock)"
            )
        self.runtime = self._layer(
            "Runtime",
            stage(
                "layer-runtime",
                [(FUNCTIONS_DIR / "runtime", "python/functions/runtime"), (CONTRACTS_DIR, "python/contracts")],
            ),
            kind="runtime",
            description="agentplane runtime: envelope, decision records, contracts",
        )
        self.dependencies = self._layer(
            "Dependencies",
            LAMBDA_DEPS_DIR,
            kind="dependencies",
            description="agentplane runtime dependencies (arm64, pinned by uv.lock)",
        )
        self.knowledge_base = self._layer(
            "KnowledgeBase",
            stage("layer-knowledge-base", [(FUNCTIONS_DIR / "knowledge_base", "knowledge_base")]),
            kind="data",
            description="agentplane knowledge base (read:kb), mounted at /opt/knowledge_base",
        )

    def _layer(self, construct_id: str, directory: Path, *, kind: str, description: str) -> lambda_.LayerVersion:
        layer = lambda_.LayerVersion(
            self,
            construct_id,
            code=lambda_.Code.from_asset(str(directory)),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description=description,
        )
        resource = layer.node.default_child
        assert isinstance(resource, CfnResource)
        resource.add_metadata(LAYER_KIND_METADATA, kind)
        return layer

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.runtime]
