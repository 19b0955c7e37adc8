# Everything installs itself: the virtualenv, the pip packages and Azurite (npm ci).
# Another interpreter: make PYTHON=/path/to/python3.13 VENV=.venv-3.13 test  (see docs/python-versions.md)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
NODE ?= node
NPM ?= npm
PY := $(VENV)/bin/python

# What Azure Functions runs and CI tests (3.10 reached end of support and lacks datetime.UTC).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
# The interpreter's version and real path are part of the stamp: another interpreter gets a fresh venv.
PYTHON_ID := $(shell $(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3], sys.executable)' 2>/dev/null)
STAMP := $(VENV)/.installed-$(shell { echo '$(PYTHON_ID)'; cat requirements.txt requirements-dev.txt pyproject.toml; } | cksum | cut -d' ' -f1)

.PHONY: help venv install test test-fast soak lint typecheck unit infra-check demo up bench replay lock clean check-python check-node

help:
	@echo "make test-fast - the fast layer, in under a minute: run it on every change (no emulators, no sockets)"
	@echo "make soak   - the rollout engine's model-based test at 100,000 examples (hours); prints what it explored"
	@echo "make test   - lint, type-check and run every test (installs what it needs)"
	@echo "make unit   - every test (fast layer, emulator layer, offline acceptance) on TEST_WORKERS=2 workers"
	@echo "make lint   - ruff (lint and format check) and import-linter;  make typecheck - mypy;  make infra-check - the Bicep checks"
	@echo "make demo   - the whole flow offline against the local emulators (ARGS=--keep: then stay up as make up)"
	@echo "make up     - the dev kit with the app's HTTP API on localhost, until Ctrl-C (for aml-rollouts and the runbooks)"
	@echo "make acceptance - the end-to-end scenarios offline; ACCEPTANCE_ARGS='--only canary --keep' passes flags"
	@echo "make acceptance-live - the same scenarios against a real workspace and app (asks first; see acceptance/README.md)"
	@echo "make bench  - benchmarks, printed as a table (ARGS=--scale: hundreds of rollouts; ARGS=--help: the flags)"
	@echo "make replay ARGS='--offline tests/events/model_registered.eventgrid.camel.json'"
	@echo "             - replay Event Grid event files into the app (ARGS go to python -m tools.replay)"
	@echo "make install - the virtualenv, the pinned Python packages and Azurite"
	@echo "make venv   - only the virtualenv and the pinned Python packages"
	@echo "make lock   - regenerate requirements.txt and requirements-dev.txt from the .in files"
	@echo "make clean  - delete the venvs, node_modules, caches and the dev kit's state"
	@echo "Python $(SUPPORTED_PYTHONS); another one: make PYTHON=/path/to/python3.13 VENV=.venv-3.13 test"

# One line naming the problem and the fix, before anything is installed.
check-python:
	@v=$$($(PYTHON) -c 'import sys; sys.stdout.write("%d.%d" % sys.version_info[:2])' 2>/dev/null) || { \
	  echo "make: no working Python at PYTHON='$(PYTHON)': install Python 3.11-3.13 and pass PYTHON=/path/to/python3.13 (pyenv: PYTHON=\$$(pyenv prefix 3.13)/bin/python)" >&2; exit 1; }; \
	case " $(SUPPORTED_PYTHONS) " in *" $$v "*) ;; *) \
	  echo "make: PYTHON='$(PYTHON)' is Python $$v, but this app supports Python $(SUPPORTED_PYTHONS): pass PYTHON=/path/to/python3.13 (pyenv: PYTHON=\$$(pyenv prefix 3.13)/bin/python)" >&2; exit 1;; esac; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { \
	  echo "make: Python $$v at '$(PYTHON)' cannot create virtualenvs: install its venv module (Debian: apt-get install python$$v-venv)" >&2; exit 1; }

check-node:
	@command -v $(NODE) >/dev/null && command -v $(NPM) >/dev/null || { \
	  echo "make: '$(NODE)' and '$(NPM)' are needed to install Azurite, the local storage emulator: install Node.js 18 or newer with npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }

# A venv made by another interpreter (or half-made by a failed run) is replaced, not reused.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml | check-python
	@if [[ -e $(VENV) && "$$(cat $(VENV)/.python 2>/dev/null)" != "$(PYTHON_ID)" ]]; then \
	  echo "make: $(VENV) was made by another interpreter; recreating it for $(PYTHON_ID)"; rm -rf $(VENV); fi
	@test -x $(PY) || { $(PYTHON) -m venv $(VENV) && echo '$(PYTHON_ID)' > $(VENV)/.python; }
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@# The operator CLI (aml-rollouts), editable; its dependencies are already pinned by the lock above.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*; touch $@

node_modules/.installed: package.json package-lock.json | check-node
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

venv: $(STAMP)

# check-node first: a missing node fails before the long pip install, not after it.
install: check-node $(STAMP) node_modules/.installed

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two workers: on two cores one test's emulator round trips overlap another's work, and a busy machine gives two
# processes twice the share of one. The long real-time tests share one worker (their xdist_group "real-time"), so
# they never compete with each other. TEST_WORKERS=0 runs everything in this process (pytest-xdist's -n 0).
TEST_WORKERS ?= 2
unit: install
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The fast layer (tests marked ``fast``): pure decisions, and the engine, ledger, controls and status API on the
# fakes of tests/fakes. No sockets, Azurite, subprocesses or sleeps (tests/fast_layer.py fails a test that tries).
# The folders of the emulator layer are not even collected (a test checks none of them holds a fast test).
FAST_SKIPS := tests/integration tests/devkit tests/contract tests/worker
test-fast: $(STAMP)
	$(PY) -m pytest -m fast -q $(addprefix --ignore=,$(FAST_SKIPS))

# The rollout engine's model-based test (tests/app/rollout/test_model.py) at 100,000 examples of 30 steps, with no
# time limit; it prints the rules fired, states reached and faults injected. make test runs 1,000, test-fast 200.
soak: $(STAMP)
	ROLLOUT_MODEL_PROFILE=soak $(PY) -m pytest tests/app/rollout/test_model.py -q -s --timeout=0 $(SOAK_ARGS)

infra-check:
	bash infra/check.sh

test: install lint typecheck unit infra-check

demo: install
	$(PY) -m devkit.demo $(ARGS)

# The app's HTTP API on 127.0.0.1 over the dev kit; writes .devkit/up.json for aml-rollouts. Options: ARGS=--help
up: install
	$(PY) -m devkit.up $(ARGS)

# Acceptance scenarios (acceptance/README.md). Extra flags: make acceptance ACCEPTANCE_ARGS="--only canary --keep"
.PHONY: acceptance acceptance-live
acceptance: install
	$(PY) -m acceptance --target offline $(ACCEPTANCE_ARGS)

acceptance-live: install
	$(PY) -m acceptance --target live $(ACCEPTANCE_ARGS)

# Flags go through ARGS, e.g. make bench ARGS=--scale, make bench ARGS="--only-history --history 5000".
bench: install
	$(PY) -m bench $(ARGS)

replay:
	@test -n "$(ARGS)" || { echo "make: say what to replay: make replay ARGS='--offline tests/events/model_registered.eventgrid.camel.json' (options: python -m tools.replay --help)" >&2; exit 2; }
	@$(MAKE) --no-print-directory install
	$(PY) -m tools.replay $(ARGS)

# Ranges live in requirements*.in; the locks pin what CI tested, for Python 3.11-3.13 at once.
# uv keeps the pins already in the locks; ARGS=--upgrade (or --upgrade-package NAME) moves them.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --custom-compile-command "make lock"
lock: $(STAMP)
	$(UV_COMPILE) $(ARGS) requirements.in -o requirements.txt
	$(UV_COMPILE) $(ARGS) requirements-dev.in -o requirements-dev.txt

clean:
	rm -rf $(VENV) .venv .venv-3.* .venv-infra node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis .devkit
