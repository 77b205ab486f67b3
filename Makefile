# hangup.ssh: the README's commands. Every target is safe to run again.
#   make setup   host packages, podman config, .venv, lab images (idempotent)
#   make test    setup, then sanity, lint, unit tests, collection build (and galaxy-importer), the molecule scenarios
#                (Debian's OpenSSH and the edge releases 8.0, 9.4, 9.6, 10.5 and forky's 10.6)
#   make test-matrix  the same checks on the other upstream releases (8.7, 8.9, 9.9)
#   make demo    the lab over real SSH from the controller
#   make bench   benchmarks under bench/ (not part of make test)
#   make figure  docs/cutoff.png and docs/fleet.png from the benchmarks' measurements
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export NO_COLOR := 1
export ANSIBLE_FORCE_COLOR := 0
export PY_COLORS := 0
STAGE := lab/stage
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

# every scenario in extensions/molecule/ is in exactly one of these lists
SCENARIOS := lab keepalive keepalive_versions hung_sessions hung_sessions_versions hard_timeout
MATRIX_SCENARIOS := keepalive_versions_more hung_sessions_versions_more

.PHONY: help setup host venv images test test-matrix sanity lint units molecule collection bench figure demo demo-clean clean

help:
	@sed -n 's/^#   //p' Makefile

setup: host venv images

host:
	@$(STAGE) host-setup $(SUDO) lab/setup-host.sh

venv:
	@$(STAGE) venv lab/venv.sh
	@$(STAGE) venv-core-2.20 lab/venv-core.sh 2.20
	@$(STAGE) venv-core-2.19 lab/venv-core.sh 2.19 3.11
	@$(STAGE) venv-importer lab/importer.sh setup

images: host
	@$(STAGE) images $(SUDO) lab/images.sh

test: setup
	@$(STAGE) sanity $(MAKE) --no-print-directory sanity
	@$(STAGE) lint $(MAKE) --no-print-directory lint
	@$(STAGE) units $(MAKE) --no-print-directory units
	@$(STAGE) collection $(MAKE) --no-print-directory collection
	@$(STAGE) molecule $(MAKE) --no-print-directory molecule
	@echo "make test: all stages passed"

sanity:
	lab/sanity.sh
	lab/sanity.sh --core 2.20
	CONTROLLER_PYTHON_VERSION=3.11 lab/sanity.sh --core 2.19

lint:
	ANSIBLE_COLLECTIONS_PATH=$$(python tests/integration/playbook.py) ansible-lint --profile production

units:
	lab/units.sh

collection:
	lab/collection.sh

molecule:
	lab/molecule.sh $(SCENARIOS)

test-matrix: setup
	@$(STAGE) molecule-matrix lab/molecule.sh $(MATRIX_SCENARIOS)

figure: venv
	pip install -q --disable-pip-version-check -r requirements/docs.txt 2>&1 | grep -v '^WARNING: Location' || true
	python bench/figure.py

bench: setup
	python bench/keepalive_cutoff.py
	python bench/hung_sessions.py
	python bench/hard_timeout.py
	python bench/fleet.py

demo: setup
	@$(STAGE) demo lab/demo.sh up

demo-clean:
	lab/demo.sh down

clean: demo-clean
	rm -rf .lab/build tests/output hangup-ssh-*.tar.gz
