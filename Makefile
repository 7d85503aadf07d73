# blockvault.vsphere — build, lab, tests, demo and benchmarks.
#
# `make demo` and `make test` work from a fresh clone on a new Debian 12 machine as root: they install the apt
# packages they need (skipped when present), create .venv with the pinned requirements, build the lab (the Go
# vCenter simulator and the C VDDK stand-in) and run.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
BUILD := $(ROOT)/build
# ansible-test and ansible-playbook need the collection under ansible_collections/NAMESPACE/NAME.
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/blockvault/vsphere
SANITY_COPY := $(BUILD)/sanity/ansible_collections/blockvault/vsphere
LAB_DIR := $(ROOT)/.lab
SIMULATOR := $(BUILD)/vcsim/blockvault-vcsim
VDDK_STANDIN := $(BUILD)/vddk/lib64/libvixDiskLib.so.8
PYTHON_SYSTEM ?= python3
PYTEST_WORKERS ?= 2

APT_PACKAGES := golang-go golang-github-vmware-govmomi-dev gcc make libssl-dev openssl ca-certificates git
BENCH_APT_PACKAGES := restic borgbackup qemu-utils

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help
help:
	@echo "make demo      - install, start the lab, back up / incrementally back up / restore / validate, print outcome"
	@echo "make test      - install and run every test (sanity, lint, units, lab, functional, integration, molecule)"
	@echo "make lab       - start the lab in the background and write .lab/env;  make lab-stop stops it"
	@echo "make bench     - run the benchmarks and write bench/results/ (figures for docs/performance.md)"
	@echo "make fuzz      - fuzz the repository object parsers with FUZZ_EXAMPLES random cases (default 50000; seed printed)"

# -- installation ---------------------------------------------------------------------------------------------

# apt packages: installed once, skipped when dpkg already has them all.
$(BUILD)/.apt-stamp:
	@mkdir -p $(BUILD)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing apt packages: $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi
	@touch $@

.PHONY: apt-bench
apt-bench:
	@missing=$$(for p in $(BENCH_APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(VENV)/.stamp: requirements-dev.txt requirements.txt
	@test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@touch $@

$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	ln -sfn $(ROOT) $@

# ansible-test bootstraps each sanity venv with a get-pip script from a host we cannot reach: put ours in its cache.
.PHONY: ansible-test-bootstrap
ansible-test-bootstrap: $(VENV)/.stamp
	@version=$$($(PY) -c "import re, ansible_test, pathlib; \
	  p = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'; \
	  print(re.search(r\"pip='([0-9.]+)'\", p.read_text()).group(1))"); \
	cache=$$HOME/.ansible/test/cache/get_pip_$${version//./_}.py; \
	mkdir -p $$(dirname $$cache); cp hacking/get_pip_bootstrap.py $$cache

.PHONY: install
install: $(BUILD)/.apt-stamp $(VENV)/.stamp $(COLLECTION_LINK)

# -- the lab --------------------------------------------------------------------------------------------------

$(SIMULATOR): $(BUILD)/.apt-stamp $(wildcard tests/lab/vcsim/*.go) tests/lab/vcsim/build.sh
	tests/lab/vcsim/build.sh $@

$(VDDK_STANDIN): $(BUILD)/.apt-stamp $(wildcard tests/lab/vddk/*.c tests/lab/vddk/*.h) tests/lab/vddk/build.sh
	tests/lab/vddk/build.sh $(BUILD)

.PHONY: build-lab
build-lab: $(SIMULATOR) $(VDDK_STANDIN)

.PHONY: lab
lab: install build-lab
	$(PY) tests/lab/labkit start --dir $(LAB_DIR)
	@echo "Lab ready: source $(LAB_DIR)/env"

.PHONY: lab-stop
lab-stop:
	@if [ -x $(PY) ] && [ -f $(LAB_DIR)/lab.json ]; then $(PY) tests/lab/labkit stop --dir $(LAB_DIR); fi

# -- tests ----------------------------------------------------------------------------------------------------

.PHONY: test
test: install build-lab sanity lint units lab-tests functional integration molecule
	@echo "make test: all suites passed"

.PHONY: sanity
# ansible-test resolves the physical working directory, so it runs in a copy of the files git would commit.
sanity: install ansible-test-bootstrap
	rm -rf $(SANITY_COPY) && mkdir -p $(SANITY_COPY)
	git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' \
	  | tar -cf - -T - | tar -xf - -C $(SANITY_COPY)
	# a repository of its own, or ansible-test would list files through the checkout's git, which ignores build/
	cd $(SANITY_COPY) && git init -q && git add -A && ansible-test sanity --python 3.11 --color no $(SANITY_ARGS)

.PHONY: units
units: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests/unit

.PHONY: lab-tests
lab-tests: install build-lab
	$(PY) -m pytest -q tests/lab/tests

# The fuzz campaign of the repository object parsers (make units runs the same tests with 4,000 fixed cases): random
# cases from a seed printed first, so `make fuzz FUZZ_SEED=<seed> FUZZ_EXAMPLES=<n>` replays a failure.
FUZZ_EXAMPLES ?= 50000
ifndef FUZZ_SEED
FUZZ_SEED := $(shell od -An -N4 -tu4 /dev/urandom | tr -d ' ')
endif

.PHONY: fuzz
fuzz: install
	@echo "fuzz: $(FUZZ_EXAMPLES) cases, seed $(FUZZ_SEED) (replay: make fuzz FUZZ_SEED=$(FUZZ_SEED) FUZZ_EXAMPLES=$(FUZZ_EXAMPLES))"
	BLOCKVAULT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -p no:xdist --hypothesis-seed=$(FUZZ_SEED) \
	  --hypothesis-show-statistics tests/unit/plugins/module_utils/repo/test_fuzz_parsers.py

.PHONY: functional
functional: install build-lab
	$(PY) -m pytest -q tests/functional tests/real

# -- benchmarks (not part of make test: speed and memory are measured here, never asserted in tests) -------------

.PHONY: bench bench-quick
bench: install build-lab apt-bench
	mkdir -p bench/results
	$(PY) bench/repo_bench.py
	$(PY) bench/e2e_bench.py

bench-quick: install build-lab apt-bench
	$(PY) bench/e2e_bench.py --quick

.PHONY: lint
lint: install
	ansible-lint --offline --profile production roles playbooks

.PHONY: integration
integration: install build-lab
	$(PY) -m pytest -q tests/integration

# Molecule scenarios (delegated driver) of every role, against a lab of their own that this target starts and stops.
MOLECULE_LAB := $(BUILD)/molecule-lab
ROLES := vm_backup vm_restore backup_validate

.PHONY: molecule
molecule: install build-lab
	$(PY) tests/lab/labkit start --dir $(MOLECULE_LAB) --vm1-disk0 64MiB --vm1-disk1 16MiB --vm2-disk0 16MiB
	status=0; . $(MOLECULE_LAB)/env; \
	for role in $(ROLES); do \
	  (cd roles/$$role && molecule test -s default) || { echo "molecule: role $$role failed"; status=1; }; \
	done; \
	$(PY) tests/lab/labkit stop --dir $(MOLECULE_LAB); exit $$status

.PHONY: clean
clean: lab-stop
	rm -rf $(BUILD) tests/output

# -- demo -----------------------------------------------------------------------------------------------------

.PHONY: demo
demo: install build-lab
	@if [ ! -f playbooks/backup.yml ]; then \
	  echo "make demo: the backup/restore playbooks are not built yet (issue 'The Ansible interface')."; \
	  echo "What exists today is exercised by 'make test' and 'make lab'."; exit 1; fi
	$(PY) hacking/demo.py
