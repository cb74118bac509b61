# agentplane: `make demo` and `make test` do all set-up themselves; everything else is optional.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.8
NODE_VERSION := 22.23.3
LAMBDA_PYTHON := 3.14
CACHE := .cache
UV := $(CACHE)/uv/bin/uv
NODE_BIN := $(abspath $(CACHE)/node/bin)
VENV_BIN := $(abspath .venv/bin)

export PATH := $(NODE_BIN):$(VENV_BIN):$(PATH)
export UV_PYTHON_DOWNLOADS := never
export CDK_DISABLE_CLI_TELEMETRY := true
export CDK_DISABLE_VERSION_CHECK := 1
CDK := npx --no-install cdk --no-notices

.PHONY: help setup demo serve test lint format synth deploy bench bench-check loadtest chaos lambda-deps llm-images clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

setup: .venv/.installed $(CACHE)/node/.installed node_modules/.installed build/lambda-deps/.installed \
  build/lambda-deps-local/.installed build/lambda-runtime-local/.installed ## everything the other targets need

demo: setup ## run doc-review end to end on the local plane and print its steps and decision
	agentplane demo --fresh

serve: setup ## serve the local plane on 127.0.0.1:4577 until Ctrl-C
	agentplane local serve

test: setup ## lint, type-check, then every test tier
	$(MAKE) --no-print-directory lint
	pytest -n 2 --dist loadfile -q

lint: .venv/.installed ## ruff, ruff format --check, mypy
	ruff check .
	ruff format --check .
	mypy

format: .venv/.installed ## apply ruff's fixes and formatting
	ruff check --fix .
	ruff format .

bench: setup ## benchmarks (JSON reports in bench/results/); never a pass/fail gate
	python bench/runtime.py
	python bench/ledger.py
	python bench/local_plane.py
	python bench/summarizer.py
	python bench/llm_loop.py
	python bench/llm.py

bench-check: .venv/.installed ## compare the newest bench reports with their targets; says what misses
	python bench/check.py

loadtest: setup ## Locust against a local plane (steady, a surge, a burst of 200 submissions); conservation; JSON in bench/results/
	python bench/loadtest.py
	python bench/loadtest.py --surge
	python bench/loadtest.py --burst

chaos: setup ## every chaos/scenarios/*.yaml on a local plane; a report in bench/results/; fails if a check does
	python bench/chaos.py

synth: setup ## synthesize with the pinned CDK CLI (offline; cdk-nag runs)
	$(CDK) synth -q

deploy: setup ## deploy to the AWS account in your environment
	$(CDK) deploy

# --- set-up ----------------------------------------------------------------------------------------

$(UV):
	$(PYTHON) -m venv $(CACHE)/uv
	$(CACHE)/uv/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

# With its bytecode: every process that synthesizes imports aws-cdk-lib's 2 MB modules, which an environment
# that writes no bytecode (PYTHONDONTWRITEBYTECODE) would compile again each time.
.venv/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra local --compile-bytecode --python $(PYTHON)
	touch $@

# Node >= 22 for jsii and the CDK CLI: the machine's if new enough, else the pinned build from npm.
$(CACHE)/node/.installed:
	mkdir -p $(CACHE)/node/bin
	if command -v node >/dev/null && [ "$$(node -p 'process.versions.node.split(".")[0]')" -ge 22 ] \
	   && [ "$$(command -v node)" != "$(NODE_BIN)/node" ]; then \
	  ln -sf "$$(command -v node)" $(CACHE)/node/bin/node; \
	else \
	  case "$$(uname -m)" in x86_64) arch=x64 ;; aarch64|arm64) arch=arm64 ;; *) echo "unsupported CPU $$(uname -m)"; exit 1 ;; esac; \
	  command -v npm >/dev/null || { echo "npm is needed to fetch Node $(NODE_VERSION) (apt-get install npm)"; exit 1; }; \
	  npm install --no-save --no-audit --no-fund --silent --prefix $(CACHE)/node/pkg "node-linux-$$arch@$(NODE_VERSION)"; \
	  ln -sf "$$PWD/$(CACHE)/node/pkg/node_modules/node-linux-$$arch/bin/node" $(CACHE)/node/bin/node; \
	fi
	$(CACHE)/node/bin/node --version
	touch $@

node_modules/.installed: package.json package-lock.json $(CACHE)/node/.installed
	npm ci --no-audit --no-fund --silent
	touch $@

# The Lambda dependencies layer: the lockfile's `lambda` group, as arm64 wheels for the Lambda runtime, with
# their bytecode when a Python of Lambda's version is here (infra/bytecode.py).
build/lambda-deps/.installed: uv.lock .venv/.installed | $(UV)
	rm -rf build/lambda-deps && mkdir -p build
	$(UV) export --frozen --only-group lambda --no-hashes --no-emit-project --quiet -o build/lambda-requirements.txt
	$(UV) pip install --quiet --target build/lambda-deps/python --python-platform aarch64-manylinux_2_28 \
	  --python-version $(LAMBDA_PYTHON) --only-binary :all: -r build/lambda-requirements.txt
	.venv/bin/python -m infra.bytecode build/lambda-deps/python
	touch $@

# The local plane's twin of that layer: the same group for this machine's interpreter, which function instances
# import instead of the virtualenv; and the libraries Lambda's Python runtime ships (boto3 and its own needs).
build/lambda-deps-local/.installed: uv.lock .venv/.installed | $(UV)
	rm -rf build/lambda-deps-local && mkdir -p build
	$(UV) export --frozen --only-group lambda --no-hashes --no-emit-project --quiet -o build/lambda-requirements.txt
	$(UV) pip install --quiet --compile-bytecode --target build/lambda-deps-local/python --python .venv/bin/python \
	  -r build/lambda-requirements.txt
	touch $@

build/lambda-runtime-local/.installed: uv.lock .venv/.installed | $(UV)
	rm -rf build/lambda-runtime-local && mkdir -p build
	$(UV) export --frozen --no-default-groups --extra local --no-hashes --no-emit-project --quiet \
	  | grep -E '^(boto3|botocore|s3transfer|jmespath|python-dateutil|six|urllib3|snapshot-restore-py)==' > build/lambda-runtime-requirements.txt
	$(UV) pip install --quiet --compile-bytecode --no-deps --target build/lambda-runtime-local --python .venv/bin/python \
	  -r build/lambda-runtime-requirements.txt
	touch $@

lambda-deps: build/lambda-deps/.installed ## build the arm64 dependencies layer from uv.lock

llm-images: .venv/.installed | $(UV) ## re-resolve the LLM serving images per region (SageMaker SDK, isolated) into infra/llm-images.json
	PATH=$(abspath $(CACHE)/uv/bin):$$PATH python -m infra.llm_images $(IMAGES)

clean: ## remove build output and local state (keeps the installed toolchain)
	rm -rf build cdk.out .agentplane .pytest_cache .mypy_cache .ruff_cache
