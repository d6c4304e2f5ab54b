# The two commands a newcomer needs: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench drills setup tools clean cluster-test

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "make: no suitable Python (see the message above)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

setup: $(STAMP) tools

tools:
	@scripts/get-tools

run: $(STAMP)
	@scripts/run-dev

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup
	$(BIN)/python -m bench

drills: setup
	$(BIN)/python -m bench.drills

# The vCluster backend end to end on a throwaway kind/k3d cluster (docs/vcluster.md).
cluster-test: setup
	@scripts/cluster-test

clean:
	rm -rf $(VENV) .tools var .pytest_cache
