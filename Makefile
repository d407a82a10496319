# Everything runs inside .venv, created from requirements.txt on first use; so does the policy
# pack under the Pulumi CLI (policies/PulumiPolicy.yaml virtualenv: ../.venv).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  ?= dev

.PHONY: help install preview policy iam lint test diff tune bench docs clean

help:
	@echo "make preview [STACK=dev|staging|prod]  offline desired-state preview (build/preview/<stack>.json)"
	@echo "make policy [STACK=dev|staging|prod]   the policy pack against the stack, over the Analyzer protocol"
	@echo "make iam [STACK=<stack>]               every IAM policy document vs AWS's authorization data (default: all stacks)"
	@echo "make test                              lint, then the test suite"
	@echo "make lint                              ruff and mypy (pyproject.toml)"
	@echo "make diff [BASE=<git ref>]             offline review report vs BASE (build/review/report.md)"
	@echo "make tune [STACK=] [RESULT=] [ARGS=]    HPA settings from a load-test result, as a stack-file diff"
	@echo "make bench                             preview timings vs bare SDK registration; make test vs one preview"
	@echo "make docs                              regenerate docs/configuration.md, docs/policies.md, policies/config/*.json"

# A new top-level package (its __init__.py) re-runs the editable install, which only maps the
# packages that existed when it ran.
$(VENV)/.installed: requirements.txt pyproject.toml $(wildcard */__init__.py)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

install: $(VENV)/.installed

preview: $(VENV)/.installed
	$(PY) -m toolkit.preview --stack $(STACK)

policy: $(VENV)/.installed
	$(PY) -m toolkit.policy_runner --stack $(STACK)

# Without STACK, every stack file; accepted findings are in toolkit/iam_allowlist.yaml (docs/iam.md).
iam: $(VENV)/.installed
	$(PY) -m toolkit.iam_check $(if $(filter command line,$(origin STACK)),--stack $(STACK))

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# One pytest worker per core, each taking the next test when it is free (the slow tests are
# few and would otherwise finish last on one worker). Run a subset with
# `.venv/bin/python -m pytest tests/test_x.py -k name` (serial, no workers to start).
test: lint
	$(PY) -m pytest -n auto --dist worksteal

# BASE defaults to the merge base with main (see toolkit/review.py).
diff: $(VENV)/.installed
	$(PY) -m toolkit.review $(if $(BASE),--base $(BASE))

# Advice from build/loadtest/<stack>.json (or RESULT=); ARGS="--write" applies it (docs/observability.md).
tune: $(VENV)/.installed
	$(PY) -m toolkit.tune --stack $(STACK) $(if $(RESULT),--result $(RESULT)) $(ARGS)

bench: $(VENV)/.installed
	$(PY) -m toolkit.bench --suite

# The reference pages and the policy configs, from the Settings classes, the pack and the stack
# files; commit the result (tests/test_docs.py fails on a stale file).
docs: $(VENV)/.installed
	$(PY) -m toolkit.docs

clean:
	rm -rf build .pytest_cache
