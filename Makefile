# The two commands a newcomer needs: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= $(shell scripts/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format bench drills setup tools clean cluster-test screenshots

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

# Test processes in parallel (pytest-xdist), each with its own PostgreSQL and Redis database.
TEST_PROCESSES ?= 2

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(TEST_PROCESSES)

# Every page at desktop and phone size, whole length, for review: var/screenshots/ (not committed).
screenshots: setup
	$(BIN)/pytest -m screenshots -s tests/browser/test_screenshots.py

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
