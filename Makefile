# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment from pyproject.toml when it is missing or stale.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/dianabot demo

lint: $(BIN)/.installed
	$(BIN)/ruff check .

test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

bench: $(BIN)/.installed
	$(BIN)/python bench/write_side.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis dianabot.sqlite3*
