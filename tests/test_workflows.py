""".github/workflows: valid against GitHub's workflow schema, pinned, minimal permissions, and
the deploy order dev -> staging -> prod."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit.stackfile import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CHECK = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]


def _load(name: str) -> dict:
    doc = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True, doc.get("on"))  # YAML 1.1 reads the key `on` as true
    return doc


def _uses(doc: dict) -> list[str]:
    return [s["uses"] for job in doc["jobs"].values() for s in job.get("steps", []) if "uses" in s]


def test_the_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "pull-request.yml", "review-comment.yml"]


def test_workflows_validate_against_the_vendored_github_schema():
    res = subprocess.run(CHECK + [str(p) for p in WORKFLOWS], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    res = subprocess.run(CHECK + [str(bad)], capture_output=True, text=True)
    assert res.returncode != 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_full_versions_and_python_is_311(path):
    doc = _load(path.name)
    for uses in _uses(doc):
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+", uses), uses
    for job in doc["jobs"].values():
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert step["with"]["python-version"] == "3.11"
    assert doc["permissions"] == {"contents": "read"}  # workflow default: read only


def test_deploy_goes_dev_then_staging_then_prod_in_protected_environments():
    doc = _load("deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    jobs = doc["jobs"]
    assert jobs["dev"]["needs"] == "test"
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"
    assert doc["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    for stack in ("dev", "staging", "prod"):
        job = jobs[stack]
        assert job["environment"] == stack
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
        assert pulumi["with"]["command"] == "up" and pulumi["with"]["stack-name"] == stack
        assert pulumi["with"]["policyPackConfigs"] == f"policies/config/{stack}.json"
    assert jobs["test"]["permissions"] == {"contents": "read"}


def test_pull_request_runs_tests_policies_and_the_sticky_review_comment():
    doc = _load("pull-request.yml")
    job = doc["jobs"]["offline-review"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "make test" in runs and "make policy" in runs and "make diff BASE=" in runs
    checkout = job["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0  # the merge base must be in the clone
    sticky = next(s for s in job["steps"] if s.get("uses", "").startswith("marocchino/"))
    assert sticky["with"] == {"header": "offline-review", "path": "build/review/report.md"}


def _run_step(script: str, tmp_path: Path, failing_stack: str) -> tuple[int, list[str]]:
    """Run a step's script as GitHub's bash does, with a stand-in `make` on PATH."""
    log = tmp_path / "make.log"
    fake = tmp_path / "bin" / "make"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$2" != "STACK={failing_stack}" ]\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    return res.returncode, log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("failing", ["none", "staging"])
def test_pull_request_runs_make_policy_on_every_stack_and_fails_on_a_violation(tmp_path, failing):
    """No guard, no skip: every stack is checked and a mandatory violation (exit 1) fails the job."""
    step = next(s for s in _load("pull-request.yml")["jobs"]["offline-review"]["steps"]
                if "make policy" in s.get("run", ""))
    assert "if" not in step and "continue-on-error" not in step
    code, calls = _run_step(step["run"], tmp_path, failing)  # no Makefile here: nothing to grep
    assert calls == ["policy STACK=dev", "policy STACK=staging", "policy STACK=prod"]
    assert (code != 0) == (failing != "none")


def test_real_preview_runs_per_stack_only_where_an_aws_role_is_configured():
    job = _load("pull-request.yml")["jobs"]["preview"]
    assert job["if"].startswith("vars.AWS_ROLE_ARN != ''")
    assert job["strategy"]["matrix"]["stack"] == ["dev", "staging", "prod"]
    assert job["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}
    pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["diff"] is True
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"


def test_fork_comments_never_run_the_forks_code():
    doc = _load("review-comment.yml")
    job = doc["jobs"]["comment"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any(u.startswith("actions/checkout@") for u in _uses(doc))
    assert not any("make" in s.get("run", "") for s in job["steps"])
