# The two set-up commands of the README: `make demo` and `make test`.
# Both create ./.venv on first use and install the package into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision are pinned to the CPU-usable pair known to install offline
# from the machines' local wheel cache; any newer pair works for users.
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install install-test demo test lint docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[plot]'

install-test: $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH_PIN)
	$(BIN)/python -m pip install -q -e '.[test]'

demo: install
	$(BIN)/ccd demo

test: install-test
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .
	$(BIN)/python -m mypy ccd_estimator
	$(BIN)/python -m pytest -q
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --quiet

docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict
