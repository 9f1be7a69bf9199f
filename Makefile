# Two commands on a fresh machine: `make run` (install + start) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./shopwatch-data
PROJECT ?= My shop

.PHONY: run test test-fast lint bench-ingest install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

run: install
	$(BIN)/shopwatch project create "$(PROJECT)" --exist-ok --data $(DATA)
	$(BIN)/shopwatch serve --data $(DATA)

lint: install-test
	$(BIN)/ruff check shopwatch tests benchmarks
	$(BIN)/mypy

test: install-test lint
	$(BIN)/pytest

test-fast: install-test
	$(BIN)/pytest -m 'not slow'

bench-ingest: install
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) build *.egg-info
