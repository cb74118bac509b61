"""The two layers every function shares: our runtime (envelope, decisions, contracts) and its dependencies."""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.components.agent_pool import LAMBDA_RUNTIME
from infra.components.staging import stage
from infra.conventions import LAYER_KIND_METADATA
from infra.paths import CONTRACTS_DIR, FUNCTIONS_DIR, LAMBDA_DEPS_DIR


class MissingLambdaDependencies(RuntimeError):
    pass


class RuntimeLayers(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        runtime_dir = stage(
            "layer-runtime",
            [(FUNCTIONS_DIR / "runtime", "python/functions/runtime"), (CONTRACTS_DIR, "python/contracts")],
        )
        self.runtime = lambda_.LayerVersion(
            self,
            "Runtime",
            code=lambda_.Code.from_asset(str(runtime_dir)),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="agentplane runtime: envelope, decision records, contracts",
        )
        self.runtime.node.default_child.add_metadata(LAYER_KIND_METADATA, "runtime")  # type: ignore[union-attr]
        if not (LAMBDA_DEPS_DIR / "python").is_dir():
            raise MissingLambdaDependencies(
                f"{LAMBDA_DEPS_DIR / 'python'} is missing: run `make lambda-deps` "
                "(it builds the arm64 layer from uv.lock)"
            )
        self.dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            code=lambda_.Code.from_asset(str(LAMBDA_DEPS_DIR)),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="agentplane runtime dependencies (arm64, pinned by uv.lock)",
        )
        self.dependencies.node.default_child.add_metadata(LAYER_KIND_METADATA, "dependencies")  # type: ignore[union-attr]

        kb_dir = stage("layer-knowledge-base", [(FUNCTIONS_DIR / "knowledge_base", "knowledge_base")])
        self.knowledge_base = lambda_.LayerVersion(
            self,
            "KnowledgeBase",
            code=lambda_.Code.from_asset(str(kb_dir)),
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="agentplane knowledge base (read:kb), mounted at /opt/knowledge_base",
        )
        self.knowledge_base.node.default_child.add_metadata(LAYER_KIND_METADATA, "data")  # type: ignore[union-attr]

    knowledge_base_path = "/opt/knowledge_base/passages.jsonl"

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.runtime]
