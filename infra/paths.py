"""Where the app finds what it packages.

In a checkout the plane's packages import as ``infra``, ``functions``, ``contracts`` and ``containers``; the wheel
moves them under one ``agentplane`` namespace (``agentplane.functions``...). Staged code is laid out at its import
path and handler strings name that path, so everything that stages or names the plane's modules goes through
:func:`package_folder` and the ``*_PACKAGE`` names here, never a literal ``functions/``.
"""

import os
from pathlib import Path

# "" in a checkout, "agentplane." from the installed wheel.
_PREFIX = __name__.rpartition(".")[0].removesuffix("infra")
INSTALLED = bool(_PREFIX)
REPO_ROOT = Path(__file__).resolve().parents[1]  # a checkout's root; the installed package's `agentplane/`
FUNCTIONS_DIR = REPO_ROOT / "functions"
CONTRACTS_DIR = REPO_ROOT / "contracts"
CONTAINERS_DIR = REPO_ROOT / "containers"
FUNCTIONS_PACKAGE = _PREFIX + "functions"
CONTRACTS_PACKAGE = _PREFIX + "contracts"
CONTAINERS_PACKAGE = _PREFIX + "containers"
# A checkout builds into build/ (`make setup`); an installed package never writes into site-packages, it builds
# into a cache (AGENTPLANE_CACHE_DIR, else $XDG_CACHE_HOME/agentplane).
CACHE_ENV = "AGENTPLANE_CACHE_DIR"
BUILD_DIR = (
    Path(os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentplane")
    if INSTALLED
    else REPO_ROOT / "build"
)
# Third-party packages for the Lambda layer, built for arm64: by `make lambda-deps` from the lockfile in a checkout,
# from the shipped pins on first synth when installed (infra.lambda_deps).
LAMBDA_DEPS_DIR = BUILD_DIR / "lambda-deps"
STAGING_DIR = BUILD_DIR / "staging"
# The same `lambda` group built for this machine's interpreter, and the libraries Lambda's Python runtime ships
# (boto3, botocore...): what the local plane's function instances import instead of the development virtualenv.
LOCAL_LAMBDA_DEPS_DIR = BUILD_DIR / "lambda-deps-local"
LOCAL_LAMBDA_RUNTIME_DIR = BUILD_DIR / "lambda-runtime-local"


def package_folder(package: str) -> str:
    """A package's folder in staged code, at its import path (``agentplane.functions``: ``agentplane/functions``)."""
    return package.replace(".", "/")


def plane_handler(folder: str) -> str:
    """The handler of the plane's function in ``functions/<folder>/handler.py``, as Lambda imports it."""
    return f"{FUNCTIONS_PACKAGE}.{folder}.handler.lambda_handler"
