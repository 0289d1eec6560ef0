# The two commands a newcomer needs:
#   make demo   run the services with a demo network (installs, starts Kafka + PostgreSQL, migrates)
#   make test   lint, type-check and run every test against a real Kafka broker and PostgreSQL
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench stop status lint typecheck clean-var

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

test: lint typecheck
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean-var: stop
	rm -rf var
