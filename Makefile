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
LAB_DIR := $(ROOT)/.lab
SIMULATOR := $(BUILD)/vcsim/blockvault-vcsim
VDDK_STANDIN := $(BUILD)/vddk/lib64/libvixDiskLib.so.8
PYTHON_SYSTEM ?= python3
PYTEST_WORKERS ?= 2

APT_PACKAGES := golang-go golang-github-vmware-govmomi-dev gcc make libssl-dev openssl ca-certificates git
# instant access (plugins/module_utils/export: nbdkit with its Python plugin; nbdinfo/nbdcopy of libnbd-bin as
# clients) and qcow2/VMDK images (qemu-img of qemu-utils)
APT_PACKAGES += nbdkit nbdkit-plugin-python libnbd-bin qemu-utils
# file-level restore (plugins/module_utils/guest): libguestfs, its Python binding (loaded from Debian's python3
# dist-packages by the product's venv, see guest/_binding.py), a kernel for its appliance, NTFS support; sfdisk (fdisk)
# and ntfs-3g also build the lab's guest filesystems (tests/lab/labkit/guestfs.py)
APT_PACKAGES += libguestfs-tools python3-guestfs linux-image-amd64 ntfs-3g fdisk
# hivexregedit, which fills the registry hives of the lab's Windows guest (tests/lab/labkit/winguest.py); also a
# dependency of libguestfs-tools, named here because the lab calls it itself
APT_PACKAGES += libwin-hivex-perl
# an HTTP proxy in front of the lab's vCenter (tests of proxy_host; tinyproxy-bin is the program without a service)
APT_PACKAGES += tinyproxy-bin
# headless rendering of backup_report's page by the functional tests (tests/functional/modules/test_report_chromium.py)
APT_PACKAGES += chromium
BENCH_APT_PACKAGES := restic borgbackup qemu-utils

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(VENV)/bin:$(PATH)

.PHONY: help
help:
	@echo "make demo      - install, start the lab, back up / incrementally back up / restore / validate, print outcome"
	@echo "make test      - install and run every test (sanity, lint, units, lab, functional, integration, molecule)"
	@echo "make check     - the fast, root-free part: units, sanity (every claimed ansible-core), lint"
	@echo "make lab       - start the lab in the background and write .lab/env;  make lab-stop stops it"
	@echo "make bench     - run the benchmarks and write bench/results/ (figures for docs/performance.md)"
	@echo "make fuzz      - fuzz the repository object parsers with FUZZ_EXAMPLES random cases (default 50000; seed printed)"
	@echo "make torture   - kill -9, concurrency, corruption and fuzz for TORTURE_S seconds (default 900; seed printed)"

# -- installation ---------------------------------------------------------------------------------------------

# apt packages: installed once, skipped when dpkg already has them all; checked again when this file changes (a
# package added to the list reaches checkouts that were set up before).
$(BUILD)/.apt-stamp: Makefile
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

# ansible-core versions `make sanity` runs ansible-test of, one venv each (build/ansible-core-X.Y, pinned by
# tests/sanity/requirements/ansible-core-X.Y.txt): every version meta/runtime.yml's requires_ansible claims.
SANITY_VERSIONS ?= 2.18 2.19
SANITY_VENVS := $(foreach v,$(SANITY_VERSIONS),$(BUILD)/ansible-core-$(v)/.stamp)

$(BUILD)/ansible-core-%/.stamp: tests/sanity/requirements/ansible-core-%.txt
	rm -rf $(@D) && $(PYTHON_SYSTEM) -m venv $(@D)
	$(@D)/bin/python -m pip install -q --disable-pip-version-check -r $<
	@touch $@

.PHONY: sanity-venvs
sanity-venvs: $(SANITY_VENVS)

# ansible-test bootstraps each sanity venv with a get-pip script from a host we cannot reach: put ours in its cache,
# under the name each ansible-test version looks for (the pip version it pins).
.PHONY: ansible-test-bootstrap
ansible-test-bootstrap: $(VENV)/.stamp $(SANITY_VENVS)
	@for py in $(PY) $(foreach v,$(SANITY_VERSIONS),$(BUILD)/ansible-core-$(v)/bin/python); do \
	  version=$$($$py -c "import re, ansible_test, pathlib; \
	    p = pathlib.Path(ansible_test.__file__).parent / '_internal' / 'python_requirements.py'; \
	    print(re.search(r\"pip='([0-9.]+)'\", p.read_text()).group(1))"); \
	  cache=$$HOME/.ansible/test/cache/get_pip_$${version//./_}.py; \
	  mkdir -p $$(dirname $$cache); cp hacking/get_pip_bootstrap.py $$cache; \
	done

.PHONY: install python-install
install: $(BUILD)/.apt-stamp python-install
# the Python side alone (the venv and the collection link): no apt, no root; what `make check` needs
python-install: $(VENV)/.stamp $(COLLECTION_LINK)

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
test: install build-lab sanity lint units lab-tests lab-clients functional integration molecule
	@echo "make test: all suites passed"

.PHONY: check
# The fast part, without root and without the lab: unit tests, ansible-test sanity on every claimed ansible-core
# version, ansible-lint. `make test` runs it too, with the lab suites.
check: units sanity lint
	@echo "make check: units, sanity and lint passed"

.PHONY: sanity
# ansible-test resolves the physical working directory, so it runs in a copy of the files git would commit (a git
# repository of its own, or ansible-test would list files through the checkout's git, which ignores build/), one copy
# per version of SANITY_VERSIONS (`make sanity SANITY_VERSIONS=2.19` runs one): the versions run at the same time, each
# from its own venv and writing its own tests/output (most of a run is one pylint process: on 2 cores two versions
# take the time of one), each followed by that version's ansible-playbook --syntax-check of the collection's
# playbooks. Each version's output is printed whole when it ends, then one summary line.
sanity: python-install ansible-test-bootstrap
	rm -rf $(BUILD)/sanity $(BUILD)/sanity-logs && mkdir -p $(BUILD)/sanity-logs
	@for version in $(SANITY_VERSIONS); do \
	  copy=$(BUILD)/sanity/$$version/ansible_collections/blockvault/vsphere; mkdir -p $$copy; \
	  git ls-files -z --cached --others --exclude-standard 2>/dev/null | xargs -0 -I{} sh -c 'if test -e "{}"; then echo "{}"; fi' \
	    | tar -cf - -T - | tar -xf - -C $$copy; \
	  (cd $$copy && git init -q && git add -A); \
	done
	@for version in $(SANITY_VERSIONS); do \
	  ( start=$$(date +%s); copy=$(BUILD)/sanity/$$version/ansible_collections/blockvault/vsphere; \
	    if (cd $$copy && PATH=$(BUILD)/ansible-core-$$version/bin:$$PATH \
	        ansible-test sanity --python 3.11 --color no $(SANITY_ARGS)) \
	      && (for playbook in playbooks/*.yml; do \
	           ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0 \
	           $(BUILD)/ansible-core-$$version/bin/ansible-playbook --syntax-check $$playbook >/dev/null || exit 1; \
	         done); then result=passed; else result=FAILED; fi; \
	    echo "ansible-core $$version: $$result in $$(( $$(date +%s) - start )) s;" > $(BUILD)/sanity-logs/$$version.result \
	  ) > $(BUILD)/sanity-logs/$$version.log 2>&1 & \
	done; wait
	@status=0; summary=""; \
	for version in $(SANITY_VERSIONS); do \
	  echo "== ansible-test sanity, ansible-core $$version"; cat $(BUILD)/sanity-logs/$$version.log; \
	  line=$$(cat $(BUILD)/sanity-logs/$$version.result 2>/dev/null || echo "ansible-core $$version: FAILED (no result);"); \
	  case "$$line" in *passed*) ;; *) status=1;; esac; summary="$$summary $$line"; \
	done; \
	echo "sanity:$$summary"; exit $$status

.PHONY: units
units: python-install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests/unit

# The repository and module tests on the S3 servers only, moto and SeaweedFS (they run in units/functional too).
.PHONY: s3-tests
s3-tests: install build-lab
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) tests/unit/plugins/module_utils/repo -k "moto or seaweedfs or s3"
	$(PY) -m pytest -q tests/functional/modules/test_modules_s3.py

.PHONY: lab-tests
lab-tests: install build-lab
	$(PY) -m pytest -q tests/lab/tests

# The lab against clients this project did not write (pyVmomi accessor style, community.vmware from the `ansible`
# package), in a venv of their own so their ansible-core does not meet the project's. govc is not among them:
# Debian's golang-github-vmware-govmomi-dev ships no govc source (see docs/testing.md).
CLIENTS_VENV := $(BUILD)/clients-venv
CLIENTS_REQUIREMENTS := tests/lab/conformance/requirements-clients.txt

$(CLIENTS_VENV)/.stamp: $(CLIENTS_REQUIREMENTS)
	@test -x $(CLIENTS_VENV)/bin/python || $(PYTHON_SYSTEM) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/python -m pip install -q --disable-pip-version-check -r $(CLIENTS_REQUIREMENTS)
	@touch $@

.PHONY: lab-clients
lab-clients: install build-lab $(CLIENTS_VENV)/.stamp
	$(PY) -m pytest -q tests/lab/conformance

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
# The functional and integration suites run their test files on PYTEST_WORKERS workers, a file's tests together on one
# (--dist loadfile: module fixtures such as the file-restore guest VM or the doc examples' site are built once); each
# worker starts a lab of its own.
functional: install build-lab
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile tests/functional tests/real

# -- the torture suite (not part of make test: it runs for TORTURE_S seconds) ------------------------------------

# kill -9 at random points of every writing operation, mixed concurrency, damaged objects of every kind and the
# parsers' fuzz campaign (tests/torture/, docs/testing.md). The seed is printed first; `make torture
# TORTURE_SEED=<seed>` replays a run. Summary in tests/torture/results/last.json.
TORTURE_S ?= 900
export TORTURE_S

.PHONY: torture
torture: install build-lab
	$(PY) tests/torture/run.py

# -- benchmarks (not part of make test: speed and memory are measured here, never asserted in tests) -------------

.PHONY: bench bench-quick
# the durations are of an idle 2-core machine, from the benchmarks' recorded runs on an AMD EPYC (e2e and fleet also
# print their own estimate as they start); on the Intel Xeon of 5 Dec the e2e benchmark took twice its 17 minutes, and
# beside other work every one takes longer. The e2e benchmark runs 5 paired repetitions (the
# project's rule for calling a target met).
bench: install build-lab apt-bench
	@echo "bench: about 67 minutes on an idle 2-core machine, longer beside other work: repository ~1 min, e2e ~17 min" \
	  "(5 repetitions of ~3 min plus setup and scaling run), transports ~9 min, export ~2 min, file restore ~5 min," \
	  "copy ~3 min, scale (reduced) ~10 min, fleet ~20 min"
	mkdir -p bench/results
	$(PY) bench/repo_bench.py
	$(PY) bench/e2e_bench.py
	$(PY) bench/transport_bench.py
	$(PY) bench/transport_bench.py --profile-caps --disk-mib 256
	$(PY) bench/export_bench.py
	$(PY) bench/file_restore_bench.py
	$(PY) bench/copy_bench.py
	$(PY) bench/scale/scale_bench.py --size reduced
	$(PY) bench/fleet_bench.py

# many VMs through the backup playbook: forks 1/4/8 and 2/3 controllers at once (issue 16; about 15-30 minutes)
.PHONY: bench-fleet
bench-fleet: install build-lab
	mkdir -p bench/results
	$(PY) bench/fleet_bench.py

# GC, prune, listings, validation of a synthetic 1,000 VMs x 30 restore points repository (~12 M chunks; chunk objects
# stand in as names, bench/scale/README.md), plus a real local run at ~1 M chunk files (issue 16)
.PHONY: bench-scale
bench-scale: install build-lab
	@echo "bench-scale: about 90 minutes on a 2-core machine, ~25 GB of disk in bench/work/scale (removed at the end)"
	mkdir -p bench/results
	$(PY) bench/scale/scale_bench.py --size full

# backup and restore through each transport the VDDK stand-in models (figures for docs/performance.md)
.PHONY: bench-transport
bench-transport: install build-lab
	mkdir -p bench/results
	$(PY) bench/transport_bench.py
	$(PY) bench/transport_bench.py --profile-caps --disk-mib 256

bench-quick: install build-lab apt-bench
	$(PY) bench/e2e_bench.py --quick

.PHONY: lint
lint: python-install
	ansible-lint --offline --profile production roles playbooks

.PHONY: integration
# Each test on the first free worker (--dist loadgroup), except the doc examples, which one worker runs together around
# their module fixture (their xdist_group): a file per worker left one worker idle for minutes.
integration: install build-lab
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup tests/integration

# Molecule scenarios (delegated driver) of every role, against a lab of their own that this target starts and stops;
# every scenario extends the shared base configuration .config/molecule/config.yml.
MOLECULE_LAB := $(BUILD)/molecule-lab
MOLECULE_BASE := $(ROOT)/.config/molecule/config.yml
ROLES := vm_backup vm_restore backup_validate

.PHONY: molecule
molecule: install build-lab
	$(PY) tests/lab/labkit start --dir $(MOLECULE_LAB) --vm1-disk0 64MiB --vm1-disk1 16MiB --vm2-disk0 16MiB
	status=0; . $(MOLECULE_LAB)/env; \
	for role in $(ROLES); do \
	  (cd roles/$$role && molecule --base-config $(MOLECULE_BASE) test -s default) || { echo "molecule: role $$role failed"; status=1; }; \
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
