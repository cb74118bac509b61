"""The standard LLM serving images (vLLM, LMI, TGI Deep Learning Containers), resolved per region by the
SageMaker Python SDK and pinned in ``infra/llm-images.json`` like a lockfile.

Synth reads the lock: for a contract's ``runtime.serving`` (``<image>:<version>``) it takes the URI for the
stack's region, or, for an environment-agnostic stack, a CloudFormation mapping over every region the SDK knows.
``python -m infra.llm_images [IMAGE:VERSION ...]`` (``make llm-images``) refreshes the lock with the SDK run in an
isolated environment of its own (``uv run --isolated``): the SDK pulls pandas, scipy and paramiko and pins
protobuf below the plane's, so it never joins the plane's environment, and synth stays offline and quick.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from contracts.capability import SERVING_IMAGES, LlmServing
from infra.paths import REPO_ROOT

SDK = "sagemaker-core==2.27.0"
LOCK = Path(__file__).parent / "llm-images.json"
# The SDK picks GPU images by instance type; every serving image is a GPU image, so any GPU type resolves it.
GPU_INSTANCE = "ml.g6.2xlarge"
# Runs inside the SDK's isolated environment: stdlib and the SDK only.
RESOLVER = """
import json, sys
from sagemaker.core import image_uris
found = {}
for framework, version, key in json.loads(sys.argv[1]):
    config = image_uris.config_for_framework(framework)
    scoped = config.get("inference", config)
    pinned = scoped.get("version_aliases", {}).get(version, version)
    # an unknown version: one region, so that retrieve says which versions there are
    regions = sorted(scoped["versions"].get(pinned, {}).get("registries", {})) or ["us-east-1"]
    found[key] = {
        region: image_uris.retrieve(
            framework, region=region, version=version, instance_type="GPU", image_scope="inference"
        )
        for region in regions
    }
print(json.dumps(found))
""".replace('"GPU"', repr(GPU_INSTANCE))

Resolve = Callable[[list[tuple[str, str, str]]], dict[str, dict[str, str]]]


class ImageLockError(ValueError):
    """The lock lacks an image a contract names, or cannot be refreshed; the message says what to run."""


def key(serving: LlmServing) -> str:
    return f"{serving.image}:{serving.version}"


def load(path: Path = LOCK) -> dict[str, dict[str, str]]:
    """``<image>:<version>`` -> region -> image URI."""
    if not path.is_file():
        return {}
    images: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))["images"]
    return images


def regions(serving: LlmServing, lock: Mapping[str, Mapping[str, str]]) -> Mapping[str, str]:
    found = lock.get(key(serving))
    if not found:
        raise ImageLockError(
            f"runtime.serving: {key(serving)} is not in infra/llm-images.json: "
            f"run `python -m infra.llm_images {key(serving)}` (make llm-images) to resolve it with the SageMaker SDK"
        )
    return found


def uri_for(serving: LlmServing, region: str, lock: Mapping[str, Mapping[str, str]]) -> str:
    found = regions(serving, lock)
    if region not in found:
        raise ImageLockError(f"runtime.serving: {key(serving)} has no image in {region} (AWS publishes none there)")
    return found[region]


def repository_arn(uri: str) -> str:
    """The ECR repository an image URI names (what the endpoint's role may pull from)."""
    registry, _, path = uri.partition("/")
    account, _, rest = registry.partition(".dkr.ecr.")
    region, _, domain = rest.partition(".")
    partition = "aws-cn" if domain.endswith(".cn") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    repository = path.rsplit(":", 1)[0]
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"


def sdk_resolve(requests: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    """Each (SDK framework, version, key) resolved for every region, by the SDK in its own environment."""
    uv = shutil.which("uv") or str(REPO_ROOT / ".cache" / "uv" / "bin" / "uv")
    if not Path(uv).is_file():
        raise ImageLockError("uv is not installed: run `make setup` first")
    command = [uv, "run", "--isolated", "--no-project", "--quiet", "--with", SDK, "python", "-c", RESOLVER]
    done = subprocess.run(  # noqa: S603 - our own fixed command line
        [*command, json.dumps(requests)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ImageLockError(f"the SageMaker SDK could not resolve the images: {last}")
    resolved: dict[str, dict[str, str]] = json.loads(done.stdout)
    return resolved


def refresh(keys: Iterable[str], *, path: Path = LOCK, resolve: Resolve = sdk_resolve) -> dict[str, dict[str, str]]:
    """Resolve ``keys`` (and every key already locked) again, and write the lock."""
    wanted = sorted(set(keys) | set(load(path)))
    requests = []
    for entry in wanted:
        image, _, version = entry.partition(":")
        if image not in SERVING_IMAGES or not version:
            raise ImageLockError(f"{entry!r}: expected IMAGE:VERSION with IMAGE one of {', '.join(SERVING_IMAGES)}")
        requests.append((SERVING_IMAGES[image], version, entry))
    resolved = resolve(requests) if requests else {}
    images = {entry: dict(sorted(resolved[entry].items())) for entry in wanted}
    document = {"resolved_by": SDK, "images": images}
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return images


def named_by_contracts(folder: Path) -> set[str]:
    from contracts.capability import SageMakerRuntime
    from contracts.loader import load_contracts

    return {
        key(contract.runtime.serving)
        for contract in load_contracts(folder).values()
        if isinstance(contract.runtime, SageMakerRuntime) and contract.runtime.serving is not None
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.llm_images", description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", metavar="IMAGE:VERSION", help="e.g. djl-lmi:0.33.0, vllm:0.30.0")
    parser.add_argument("--contracts", type=Path, default=REPO_ROOT / "contracts" / "agents")
    args = parser.parse_args(argv)
    try:
        images = refresh([*args.images, *named_by_contracts(args.contracts)])
    except ImageLockError as error:
        sys.stderr.write(f"llm-images: {error}\n")
        return 1
    sys.stdout.write(f"llm-images: {len(images)} image(s) in {LOCK.name}: {', '.join(images) or 'none'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
