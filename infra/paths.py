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
# The same `lambda` group built for this machine's interpreter, and the libraries Lambda's Python runtime ships
# (boto3, botocore...): what the local plane's function instances import instead of the development virtualenv.
LOCAL_LAMBDA_DEPS_DIR = BUILD_DIR / "lambda-deps-local"
LOCAL_LAMBDA_RUNTIME_DIR = BUILD_DIR / "lambda-runtime-local"
