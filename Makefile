# The README's two commands: `make demo` and `make test`. Everything else is a step they share.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup demo demo-down test lint sanity unit pytest build dist ee clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	bash scripts/demo.sh

demo-down: setup
	$(BIN)/depmirror lab down
	rm -rf .demo

# The developer loop: `make unit` and `make sanity` need no root and no lab (docs/development.md).
lint: setup
	$(BIN)/ruff check src tests bench lab/src
	$(BIN)/ruff format --check src tests bench lab/src
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/antsibull-changelog lint
	$(BIN)/ansible-lint
	bash scripts/sanity.sh

unit: setup
	$(BIN)/pytest -n 2 tests/unit $(PYTEST_ARGS)

sanity: setup
	bash scripts/sanity.sh

# The lab is one set of fixed hosts: its tests (marker `lab`) run in one process after the rest, which run
# on two workers. Sharing the lab between xdist workers made one wait for the other's whole session on the
# lab lock (xdist did not keep the `lab` group on one worker). Exit 5 is "no test selected" (PYTEST_ARGS).
pytest: setup
	DEPMIRROR_FUZZ_EXAMPLES=$${DEPMIRROR_FUZZ_EXAMPLES:-10000} $(BIN)/pytest -n 2 --dist loadgroup -m "not lab" $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(BIN)/pytest -m lab $(PYTEST_ARGS) || [ $$? -eq 5 ]

test: lint pytest

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path build/ .

# What a release publishes: the library's sdist and wheel, and the collection carrying that wheel (README.md:
# Installation). tests/integration/test_install_outside_checkout.py installs them as a user would.
dist: setup
	bash scripts/dist.sh dist

# The collection's Execution Environment built on a local base image (podman, ansible-builder) and
# `adjust.yml --check` run inside it against the lab as AWX runs a job; not in CI (minutes, network).
# Needs root (the lab); writes build/ee/result.json (seconds per step, image size, the job's status).
ee: setup
	bash scripts/ee.sh

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache tests/output
