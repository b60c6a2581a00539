# The README's two commands: `make demo` and `make test`. Everything else is a step they share.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup demo demo-down test lint sanity unit pytest build clean

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

# Tests that share the lab run in one xdist group, so one worker holds it while the other runs the rest.
pytest: setup
	DEPMIRROR_FUZZ_EXAMPLES=$${DEPMIRROR_FUZZ_EXAMPLES:-10000} $(BIN)/pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test: lint pytest

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path build/ .

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache tests/output
