# `make run` trains the embedded default; `make test` runs the test suite; `make bench` prints the
# benchmark table of benchmarks/bench.py (about 7 minutes on 2 CPU cores). On first use each
# creates .venv and installs the project into it (torch comes from PyPI, or from local disk
# where pip is configured that way).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast bench bench-gpu clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python run.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(ARGS)

bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu_levers.py $(ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
