# medreview: `make run` serves the app with the demo project; `make test` runs lint and the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install install-dev chromium postgres lint typecheck bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/medreview init
	$(BIN)/medreview demo --if-empty
	$(BIN)/streamlit run app.py

chromium:
	@scripts/ensure-chromium

postgres:
	@scripts/ensure-postgres

lint: install-dev
	$(BIN)/ruff check .

typecheck: install-dev
	$(BIN)/mypy review storage

test: install-dev chromium postgres
	$(BIN)/ruff check .
	$(BIN)/mypy review storage
	$(BIN)/python -m pytest

bench: install-dev
	$(BIN)/python bench/import_bench.py
	$(BIN)/python bench/annotate_bench.py
	$(BIN)/python bench/agreement_bench.py
	$(BIN)/python bench/judge_bench.py
	$(BIN)/python bench/items_bench.py
