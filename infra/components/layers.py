"""The layers functions share: our runtime (envelope, decisions, contracts), its dependencies, the knowledge base."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnResource
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.agent_pool import LAMBDA_RUNTIME
from infra.components.staging import stage
from infra.conventions import LAYER_KIND_METADATA
from infra.lambda_deps import CONTEXT, layer_dir
from infra.lambda_deps import MissingLambdaDependencies as MissingLambdaDependencies  # re-exported: synth catches it
from infra.paths import CONTRACTS_DIR, CONTRACTS_PACKAGE, FUNCTIONS_DIR, FUNCTIONS_PACKAGE, package_folder


class RuntimeLayers(Construct):
    knowledge_base_path = "/opt/knowledge_base/passages.jsonl"

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        prebuilt = self.node.try_get_context(CONTEXT)
        dependencies = layer_dir(str(prebuilt) if prebuilt else None)
        self.runtime = self._layer(
            "Runtime",
            stage(
                "layer-runtime",
                [
                    (FUNCTIONS_DIR / "runtime", f"python/{package_folder(FUNCTIONS_PACKAGE)}/runtime"),
                    (CONTRACTS_DIR, f"python/{package_folder(CONTRACTS_PACKAGE)}"),
                ],
            ),
            kind="runtime",
            description="agentplane runtime: envelope, decision records, contracts",
        )
        self.dependencies = self._layer(
            "Dependencies",
            dependencies,
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
