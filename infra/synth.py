"""Synthesizing the CDK app: for `agentplane synth` and preflight, and for whoever starts a local plane.

The local plane emulates AWS and knows nothing of the app: it is handed the cloud assembly made here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The local plane and preflight read the code and layers staged beside the template.
ASSET_METADATA = {"aws:cdk:enable-asset-metadata": "true"}


class SynthError(Exception):
    """The app does not synthesize (a contract, the context, a missing layer, cdk-nag): one line."""


def synthesize(out: Path, context: dict[str, str] | None = None) -> Any:
    """The CDK app synthesized into ``out`` (cdk-nag runs): the cloud assembly."""
    from contracts.loader import ContractError
    from infra.app import ContextError, build_app
    from infra.components.errors import ContractInfraError
    from infra.components.layers import MissingLambdaDependencies

    try:
        return build_app(out, context=context).synth()
    except (MissingLambdaDependencies, ContractError, ContextError, ContractInfraError) as error:
        raise SynthError(str(error)) from None
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        report = out / "validation-report.json"
        raise SynthError(f"synth failed: {first}" + (f" (see {report})" if report.exists() else "")) from None


def plane_assembly(state_dir: Path, stack_name: str | None = None, context: dict[str, str] | None = None) -> Path:
    """The app synthesized for a local plane into ``<state dir>/cdk.out`` (rebuilt on every call); its directory.

    ``stack_name`` names the stack (default: the app's); ``context`` is more CDK context (the projects to build).
    """
    out = state_dir.resolve() / "cdk.out"
    named = {"agentplane:stack-name": stack_name} if stack_name else {}
    synthesize(out, {**ASSET_METADATA, **named, **(context or {})})
    return out
