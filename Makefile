# Quick start: `make demo` (release + grade the examples), `make test` (the test suite).
# Both create .venv/ with the pinned stack on first use.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
# nbgrader runs `alembic` from PATH when it creates a gradebook
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install demo test release grade calibrate benchmarks clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/python -m autograder demo --out out/demo

test: install
	$(BIN)/python -m pytest

release: install
	$(BIN)/python -m autograder release

calibrate: install
	$(BIN)/python -m autograder calibrate

benchmarks: install
	$(BIN)/python benchmarks/experiments.py

clean:
	rm -rf out .pytest_cache
