# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment from pyproject.toml when it is missing or stale.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/dianabot demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# mypy's settings, and how it sees domain/ as dianabot.domain, are in pyproject.toml ([tool.mypy]).
typecheck: $(BIN)/.installed
	$(BIN)/mypy

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/write_side.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache dianabot.sqlite3*
