# The README's two commands: `make dev` (run everything) and `make test` (run the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test install chromium postgresql lint format bench worker api clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# tests/test_api_docs.py drives Debian's Chromium (never a browser a test tool downloads).
# Nothing to do when it is there; otherwise apt-get as root (CI), or sudo without a password.
# Elsewhere the browser test skips, but in CI (CI set) a missing Chromium fails the run.
CHROMIUM := /usr/bin/chromium
APT_CHROMIUM := apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing Debian's chromium"; $(APT_CHROMIUM); \
	elif sudo -n true 2>/dev/null; then echo "installing Debian's chromium"; sudo sh -c '$(APT_CHROMIUM)'; \
	elif [ -n "$$CI" ]; then echo "$(CHROMIUM) is missing and cannot be installed" >&2; exit 1; \
	else echo "note: no $(CHROMIUM) (apt-get install chromium): the browser test will skip" >&2; fi

# tests/test_database.py starts a real PostgreSQL from Debian's `postgresql` package (initdb in
# a temporary directory; never a server a test tool downloads). Same rules as Chromium above.
PG_INITDB := $(firstword $(shell command -v initdb 2>/dev/null) $(wildcard /usr/lib/postgresql/*/bin/initdb))
APT_POSTGRESQL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -qq --no-install-recommends postgresql
postgresql:
	@if [ -n "$(PG_INITDB)" ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then echo "installing Debian's postgresql"; $(APT_POSTGRESQL); \
	elif sudo -n true 2>/dev/null; then echo "installing Debian's postgresql"; sudo sh -c '$(APT_POSTGRESQL)'; \
	elif [ -n "$$CI" ]; then echo "PostgreSQL (initdb) is missing and cannot be installed" >&2; exit 1; \
	else echo "note: no PostgreSQL (apt-get install postgresql): its tests will skip" >&2; fi

## dev: Temporal dev server (SQLite under storage/) + worker + API; Ctrl-C stops all
## (other ports: make dev ARGS='--api-port 18000 --temporal-port 17233 --ui-port 18233')
dev: install
	$(BIN)/wfe dev $(ARGS)

## test: lint, then the whole suite against real Temporal dev servers, on two workers
## (one dev server each; a focused run such as `pytest tests/test_api.py` uses one process)
test: install lint chromium postgresql
	$(BIN)/python -m pytest -n 2

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy workflows activities api worker.py
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: the speed figures (engine vs hand-written workflow, API starts, worker memory)
bench: install
	$(BIN)/python -m bench

worker: install
	$(BIN)/python worker.py

api: install
	$(BIN)/uvicorn --factory api.server.main:create_app --host 127.0.0.1 --port 8000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
