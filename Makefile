# Tollgate developer entry points. `make test` is what CI runs (through .ci/run).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Two source roots: the operator (shipped) and the test kit (control plane, Prometheus, simulator, demo;
# never shipped in the wheel or image).
export PYTHONPATH := $(CURDIR)/operator:$(CURDIR)/testkit
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
PY_DIRS := $(wildcard operator testkit tests e2e bench hack)

.PHONY: help venv lint fmt unit integration e2e e2e-node test crds crds-check testenv-build node-build gateway-build images testenv-up testenv-down demo bench flagger-build clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed ## create the virtualenv with runtime and dev dependencies

lint: venv ## ruff, mypy (strict on api and engine), import-linter layer contracts
	$(VENV)/bin/ruff check $(PY_DIRS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: venv
	$(VENV)/bin/ruff check --fix $(PY_DIRS)

unit: venv ## pure tests: api, engine, generators (no cluster)
	$(PY) hack/pytest_run.py tests/unit

integration: venv testenv-build ## against the real local control plane and Prometheus
	$(PY) hack/pytest_run.py tests/integration

e2e: venv testenv-build ## whole scenarios: operator + Prometheus + traffic simulator
	$(PY) hack/pytest_run.py e2e

e2e-node: venv testenv-build node-build gateway-build images ## the real node (root): tests/node, then the scenarios with real pods and the chart-installed operator
	$(PY) hack/pytest_run.py tests/node
	E2E_BACKEND=node $(PY) hack/pytest_run.py e2e/test_real_node.py e2e/test_gateway_node.py

# e2e-node needs root and this host's kernel features; it fails (not skips) with what is missing, since CI runs it
test: lint unit integration e2e e2e-node ## everything CI runs

crds: venv ## regenerate crds/ from the pydantic models, and the chart's copy
	$(PY) -m tollgate.api.crdgen --out crds
	cp crds/*.yaml charts/tollgate/crds/

testenv-build: ## build (or reuse from ~/.cache/tollgate) the control-plane binaries and Prometheus with Kubernetes discovery
	bash hack/controlplane/build.sh >/dev/null
	bash hack/prometheus/build.sh >/dev/null
	bash hack/s3/build.sh >/dev/null
	bash hack/storage-initializer/venv.sh >/dev/null

node-build: ## build (or reuse from ~/.cache/tollgate/node) kubelet, kube-proxy, containerd, kube-router, CoreDNS
	bash hack/node/build.sh >/dev/null

gateway-build: ## build (or reuse from ~/.cache/tollgate/gateway) Traefik, the test environment's Gateway API data plane
	bash hack/gateway/build.sh >/dev/null

images: ## build the operator (from the Dockerfile), model-server and load-generator images without Docker
	bash hack/images/build.sh >/dev/null

# REAL_NODE=1 adds the machine's one real node (root; see testkit/tollgate_testkit/node.py)
testenv-up: venv testenv-build $(if $(filter 1,$(REAL_NODE)),node-build) ## start etcd, apiserver, controllers, scheduler, kwok (REAL_NODE=1: + a real node); writes .testenv/kubeconfig
	$(PY) -m tollgate_testkit.controlplane up --dir .testenv

testenv-down: ## stop every process testenv-up started and remove its data
	$(PY) -m tollgate_testkit.controlplane down --dir .testenv

# REAL_NODE=1: the same story with real pods and requests, the operator installed by its chart (root)
demo: venv testenv-build $(if $(filter 1,$(REAL_NODE)),node-build gateway-build images) ## the main job: a live rollout on the local control plane
	$(PY) -m tollgate_testkit.demo

bench: venv testenv-build flagger-build ## benchmarks; figures in bench/results/*.json
	$(PY) bench/run.py

flagger-build: ## build (or reuse from ~/.cache/tollgate/flagger) Flagger v1.41.0, the peer of bench/flagger_peer.py
	bash hack/flagger/build.sh >/dev/null

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .hypothesis
