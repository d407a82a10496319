# Everything runs inside .venv, created from requirements.txt on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  ?= dev

.PHONY: help install preview test clean

help:
	@echo "make preview [STACK=dev|staging|prod]  offline desired-state preview (build/preview/<stack>.json)"
	@echo "make test                              the test suite"

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

preview: $(VENV)/.installed
	$(PY) -m toolkit.preview --stack $(STACK)

test: $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf build .pytest_cache
