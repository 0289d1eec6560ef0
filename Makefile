# The two commands a newcomer needs:
#   make demo   run the services with a demo network (installs, starts Kafka + PostgreSQL, migrates)
#   make test   lint, type-check, check the layers and run every test against a real Kafka broker
#               and PostgreSQL (what .ci/run runs)
# Quicker, while working: make unit (pure tests, seconds), make integration, make e2e.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit integration e2e bench stop status lint typecheck imports clean-var

$(STAMP): pyproject.toml
	./scripts/ensure-prereqs.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/custody demo

stop: $(STAMP)
	$(BIN)/custody stack down

status: $(STAMP)
	$(BIN)/custody stack status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck imports
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit tests/contract -m "not integration"

integration: $(STAMP)
	$(BIN)/pytest tests/integration tests/contract

e2e: $(STAMP)
	$(BIN)/pytest tests/e2e

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean-var: stop
	rm -rf var
