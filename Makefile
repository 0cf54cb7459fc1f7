# `make run` trains the embedded default; `make test` runs the test suite; `make bench` prints the
# benchmark table of benchmarks/bench.py (about 7 minutes on 2 CPU cores). On first use each
# creates .venv and installs the project into it (torch comes from PyPI, or from local disk
# where pip is configured that way). `make clean` removes what can be rebuilt from the
# repository; `make clean-cache` the default cache directory; results only `make clean-results`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast bench bench-gpu clean clean-cache clean-results

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

test-fast: $(STAMP)  # the tests not marked slow, one worker per core (pytest-xdist)
	$(BIN)/python -m pytest -m "not slow" -n auto $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(ARGS)

bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu_levers.py $(ARGS)

# The environment, test and bytecode caches, and the decoded-image caches that versions before
# the cache directory wrote into the data folders (data/<name>/.wgan-cache).
clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info data/*/.wgan-cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Decoded datasets, the classifier and reference statistics in the default cache directory (a
# metrics.cache_dir set elsewhere is left alone); every entry is computed again when needed.
clean-cache:
	rm -rf "$${XDG_CACHE_HOME:-$$HOME/.cache}/wgan"

# Runs and studies: results, checkpoints, metrics. Not rebuilt without training them again.
clean-results:
	rm -rf outputs multirun
