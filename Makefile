# The two commands a fresh machine needs: `make demo` and `make test`.
# Each bootstraps .venv from pyproject.toml first; nothing else must be installed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.signgate-installed

.PHONY: demo test lint typecheck unit e2e pytest venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[local,dev]'
	@touch $(STAMP)

# The dev stack and four payouts through policy approval; stops everything when done.
demo: $(STAMP)
	$(BIN)/python -m signgate.demo

# Import fences live in the ruff.toml of workflows/, signgate/dfns/ and signgate/sandbox/;
# tools/fences.py checks the rules an import list cannot express (ARCHITECTURE.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m tools.fences

typecheck: $(STAMP)
	$(BIN)/mypy

# Tiers: `unit` needs no Temporal dev server (time-skipping server, in-process sandbox);
# `e2e` runs dev servers, worker processes and the browser. `test` is lint, types and both.
unit: $(STAMP)
	$(BIN)/pytest -m "not e2e"

e2e: $(STAMP)
	$(BIN)/pytest -m e2e

pytest: $(STAMP)
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
