"""Where the app finds what it packages."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO_ROOT / "functions"
CONTRACTS_DIR = REPO_ROOT / "contracts"
CONTAINERS_DIR = REPO_ROOT / "containers"
BUILD_DIR = REPO_ROOT / "build"
# Third-party packages for the Lambda layer, built for arm64 by `make lambda-deps` from the lockfile.
LAMBDA_DEPS_DIR = BUILD_DIR / "lambda-deps"
STAGING_DIR = BUILD_DIR / "staging"
