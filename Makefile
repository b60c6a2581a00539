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
	$(BIN)/depmirror plan --graph inventories/example/graph.yml

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/ansible-lint
	bash scripts/sanity.sh

pytest: setup
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

test: lint pytest

build: setup
	$(BIN)/ansible-galaxy collection build --force --output-path build/ .

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache tests/output
