# Entry points for people and CI. `make test` sets up everything it needs on
# a fresh Debian/Ubuntu machine (as root) and runs every check; `make sandbox`
# deploys the whole stack onto local systemd containers.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON ?= python3
PYTHON_VERSION ?= 3.11
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# Release artifacts built by the checks (the test releases of the stack and
# cluster scenarios too) are kept here by source hash and shared between
# scenarios; each build checks that its artifact installs offline.
export PROCUREMENT_ARTIFACT_CACHE ?= $(CURDIR)/.cache/artifacts
export PROCUREMENT_REQUIRE_INSTALL_CHECK ?= 1
# The Pythons of the test hosts (Debian 12, Debian 13), whose artifacts
# `make test` builds once before the scenarios start.
ARTIFACT_PYTHONS ?= 3.11 3.13

# One scenario per role, then the whole stack (with its alerts), the cluster
# and the database tier's failover (Patroni).
ROLE_SCENARIOS ?= base postgresql firewall nginx redis
STACK_SCENARIOS ?= stack cluster failover
SCENARIOS ?= $(STACK_SCENARIOS) $(ROLE_SCENARIOS)
# Four at a time: the three stack scenarios, and the role scenarios one
# after another (the longest first) in a fourth lane beside them. Much of a
# scenario's time is waiting (packages, services, traffic under deploys), and
# the role scenarios, started after the stack scenarios, were the run's tail.
MOLECULE_JOBS ?= 4
# Topology of make sandbox: aio (one host) or cluster (six).
SANDBOX ?= aio
SYSTEM_PACKAGES := docker.io debootstrap python3-venv postgresql pgbouncer redis-server nginx wrk pigz git rsync openssh-client chromium chromium-driver prometheus sslscan pgbackrest python3-psycopg2 lynis testssl.sh shellcheck

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## Install the system packages the harness needs (root, apt)
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# The Debian packages start their own servers where systemd runs; the
	@# tests start private instances, so the system-wide ones must not hold ports.
	@true

$(VENV)/.installed: requirements/controller.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements/controller.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed ## Create the controller virtualenv

.PHONY: collections
collections: venv ## Satisfy requirements.yml: the ansible package's collections, else Galaxy into ./collections
	@if timeout 60 $(BIN)/ansible-galaxy collection install -r requirements.yml -p collections >.cache-galaxy.log 2>&1; then \
	  echo "collections: requirements.yml satisfied"; \
	else \
	  echo "collections: Galaxy did not answer; using the collections shipped with the ansible package"; \
	fi; rm -f .cache-galaxy.log
	@$(BIN)/ansible-galaxy collection list 2>/dev/null | grep -E '^(ansible\.posix|community\.(general|postgresql|crypto|docker)) ' | sort -u

.PHONY: docker
docker: ## Start the Docker engine if none answers
	scripts/docker-up.sh

.PHONY: images
images: docker ## Build (or reuse) the Debian 12/13 systemd base images
	scripts/build-images.sh

.PHONY: tools
tools: deps venv collections docker ## The controller's tools and the Docker engine (setup without the images)

.PHONY: setup
setup: tools images ## Everything the checks need

.PHONY: lock
lock: ## Re-pin the controller tooling from requirements/controller.in
	rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q -r requirements/controller.in
	{ sed -n '1,2p' requirements/controller.txt; .cache/lock-venv/bin/pip freeze; } > requirements/controller.txt.new
	mv requirements/controller.txt.new requirements/controller.txt

.PHONY: lint
lint: venv ## yamllint, ansible-lint (production profile), ansible-test sanity, ruff
	yamllint -s .
	ANSIBLE_VAULT_PASSWORD_FILE=inventory/sandbox/vault-password.txt ansible-lint --offline -q
	python scripts/check_role_specs.py
	python scripts/role_docs.py --check
	python scripts/check_doc_paths.py
	python scripts/release.py --check >/dev/null
	scripts/sanity.sh
	ruff check molecule scripts tests plugins compliance ansible_collections
	ruff format --check molecule scripts tests plugins compliance ansible_collections
	$(MAKE) -C app lint

.PHONY: test-app
test-app: ## The procurement app's own tests (real PostgreSQL and Redis)
	$(MAKE) -C app test

.PHONY: test-repo
test-repo: venv ## Repository checks: inventory precedence, role rendering for Ubuntu/EL from recorded facts
	pytest -q -p no:cacheprovider tests

.PHONY: audit-deps
audit-deps: venv ## pip-audit over app/requirements.lock: fails on a known vulnerability with a fix, or a pin left unaudited
	python scripts/audit_deps.py

.PHONY: audit
audit: venv ## Measure the deployed sandbox's security baseline (AUDIT_ARGS="--host ..." for another target)
	python scripts/audit.py $(AUDIT_ARGS)

.PHONY: app-dist
app-dist: ## Build the release artifact (app wheel + wheelhouse): make app-dist PYTHON_VERSION=3.11
	$(MAKE) -C app dist PYTHON_VERSION=$(PYTHON_VERSION)

.PHONY: dist
dist: artifacts ## The release in dist/: the collection tarball (procurement.ops), the app's artifacts, SHA256SUMS
	scripts/dist.sh dist

.PHONY: release
release: venv ## Bump the collection and the app to one new version and release the changelog fragments: make release VERSION=1.1.0
	python scripts/release.py $(VERSION)

.PHONY: ee
ee: venv docker images ## Build the execution environment procurement-ee:<version> with ansible-builder (execution-environment.yml)
	scripts/build-ee.sh

.PHONY: ee-run
ee-run: venv ## site.yml with ansible-navigator in the execution environment, against the sandbox (make ee, make dist and make sandbox first)
	scripts/ee-run.sh

.PHONY: artifacts
artifacts: ## Build the release artifact for each test host's Python once, before the scenarios share it
	@$(MAKE) -s -C app venv
	@pids=""; for v in $(ARTIFACT_PYTHONS); do $(MAKE) -s -C app dist PYTHON_VERSION=$$v & pids="$$pids $$!"; done; \
	rc=0; for pid in $$pids; do wait $$pid || rc=1; done; exit $$rc

.PHONY: molecule
molecule: venv docker images artifacts ## Run every Molecule scenario (SCENARIOS="a b" to choose, MOLECULE_JOBS=4 at a time)
	scripts/molecule-all.sh -j $(MOLECULE_JOBS) $(SCENARIOS)

molecule-%: venv docker images artifacts ## Run one Molecule scenario, e.g. make molecule-postgresql
	molecule test -s $*

.PHONY: test
test: ## Set up and run every check, timed (scenarios beside the other checks; table in .cache/test-timing.txt)
	MAKE="$(MAKE)" scripts/make-test.sh

.PHONY: clean
clean: ## Remove caches (keeps the venv and images)
	rm -rf .cache/ansible-facts .pytest_cache

.PHONY: sandbox
sandbox: deps venv ## Deploy the whole stack onto local systemd containers and print where to reach it (SANDBOX=cluster: six hosts)
	SANDBOX=$(SANDBOX) scripts/sandbox.sh up

.PHONY: sandbox-destroy
sandbox-destroy: ## Remove the sandbox containers (SANDBOX=cluster for the cluster's)
	SANDBOX=$(SANDBOX) scripts/sandbox.sh destroy

.PHONY: bench-converge
bench-converge: deps venv ## Time the first converge, no-op re-runs (tuned, Ansible defaults, Mitogen) and the floor on the sandbox (SANDBOX=cluster: six hosts)
	SANDBOX=$(SANDBOX) scripts/bench-converge.sh

.PHONY: bench-app
bench-app: ## Load-test the service (gunicorn, PostgreSQL, Redis on loopback; wrk) and print RESULT lines
	$(MAKE) -C app bench

.PHONY: bench-backup
bench-backup: deps ## Time the backup script against a bare pg_dump -Fc, and a restore, on 1,000,000 order lines
	$(MAKE) -C app bench-backup

.PHONY: bench-pitr
bench-pitr: deps ## PITR with pgBackRest on 1,000,000 order lines: RPO after a host loss, restore to a time, against the logical restore
	$(MAKE) -C app bench-pitr

.PHONY: bench-failover
bench-failover: venv docker images artifacts ## Patroni failover on three containers: a killed leader and a switchover under ~20 writes/s (RESULT lines)
	rm -f .cache/results/failover.txt
	molecule test -s failover
	cat .cache/results/failover.txt
