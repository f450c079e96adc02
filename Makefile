# churn-pipeline: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
INSTALLED := $(VENV)/.installed
# Test processes of `make test`; each runs a test file at a time (its fixtures and Spark session stay its own).
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'

# Bytecode is compiled once at install: where Python may not write it (PYTHONDONTWRITEBYTECODE), every `churn`
# command would otherwise compile its imports (pandas, Great Expectations, ...) again, 10-20 s each.
$(INSTALLED): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

install: $(INSTALLED) ## Create .venv with the locked dependencies and the project
	@true

run: install ## Run the pipeline on the default (synthetic) data: dvc repro
	PATH=$(CURDIR)/$(BIN):$$PATH dvc repro

test: install lint ## Lint, type-check and run the test suite
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/pytest --numprocesses $(TEST_WORKERS) --dist loadfile --durations 15

lock-check: install ## Fail when dvc.lock is out of step with the code, params or tracked reports
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python .ci/lock_in_step.py

lint: install ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Format the code with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lock: ## Re-resolve requirements.lock from pyproject.toml (Python 3.11)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra spark --python-version 3.11 --quiet -o requirements.lock

mlflow-ui: install ## Browse runs and registered models: MLflow UI on http://127.0.0.1:5000
	$(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port 5000

contract: install ## Print the data contract as Markdown
	$(BIN)/churn contract

clean: ## Remove the environment and everything the pipeline generated
	rm -rf $(VENV) data/raw data/truth data/validated data/quarantine data/features data/models reports .dvc/cache .dvc/tmp

.PHONY: help install run test lock-check lint format lock mlflow-ui contract clean
