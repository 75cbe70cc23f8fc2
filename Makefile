# The README's two commands: `make dev` (run everything) and `make test` (run the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test install lint format bench worker api clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## dev: Temporal dev server (SQLite under storage/) + worker + API; Ctrl-C stops all
dev: install
	$(BIN)/wfe dev

## test: lint, then the whole suite against a real Temporal dev server
test: install lint
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy workflows activities api worker.py

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: SPEC §13's figures (engine vs hand-written workflow, API starts, worker memory)
bench: install
	$(BIN)/python -m bench

worker: install
	$(BIN)/python worker.py

api: install
	$(BIN)/uvicorn --factory api.main:create_app --host 127.0.0.1 --port 8000

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
