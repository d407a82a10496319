""".github/workflows: valid against GitHub's workflow schema, pinned, minimal permissions, and
the deploy order dev -> staging -> prod."""

from __future__ import annotations

import itertools
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


# --- GitHub expressions, the subset these workflows use -------------------------------------

_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(\|\||&&|==|!=|[(),!])|([A-Za-z_][\w.]*))")


def _expression(text: str, contexts: dict):
    """Evaluate an expression as GitHub does: string literals, context paths (a missing property
    is null, like an unset variable), ``!``, ``==``/``!=`` (strings compared case-insensitively,
    null as ''), ``&&``/``||`` (returning an operand, not a boolean) and ``format()``."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m and m.end() > pos, f"unsupported expression syntax at {text[pos:]!r}"
        tokens.append(m.groups())
        pos = m.end()
    tokens.append((None, None, None))
    at = 0

    def peek(op=None):
        return tokens[at][1] == op if op else tokens[at]

    def take(op=None):
        nonlocal at
        tok = tokens[at]
        assert op is None or tok[1] == op, f"expected {op} in {text!r}"
        at += 1
        return tok

    def truthy(v):
        return v not in (None, "", False, 0)

    def chain(op, operand, keep_if_truthy):
        """``a || b`` is a if a is truthy, else b; ``a && b`` is a if a is falsy, else b."""
        def parse():
            value = operand()
            while peek(op):
                take()
                other = operand()
                value = value if truthy(value) == keep_if_truthy else other
            return value
        return parse

    def either():
        return chain("||", chain("&&", compare, False), True)()

    def compare():
        value = unary()
        if peek("==") or peek("!="):
            negate = take()[1] == "!="
            other = unary()
            a, b = ("" if v is None else v for v in (value, other))
            equal = a.casefold() == b.casefold() if isinstance(a, str) and isinstance(b, str) else a == b
            return equal != negate
        return value

    def unary():
        if peek("!"):
            take()
            return not truthy(unary())
        if peek("("):
            take()
            value = either()
            take(")")
            return value
        literal, _, name = take()
        if literal is not None:
            return literal[1:-1].replace("''", "'")
        assert name, f"unexpected token in {text!r}"
        if name in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[name]
        if name == "format":
            take("(")
            args = [either()]
            while peek(","):
                take()
                args.append(either())
            take(")")
            return re.sub(r"\{(\d+)\}", lambda m: str(args[1 + int(m.group(1))]), args[0])
        value = contexts
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    value = either()
    assert take()[0:3] == (None, None, None), f"trailing tokens in {text!r}"
    return value


def _value(raw, contexts: dict):
    """A workflow value with its ``${{ }}`` expressions evaluated."""
    if not isinstance(raw, str) or "${{" not in raw:
        return raw
    whole = re.fullmatch(r"\$\{\{(.*)\}\}", raw.strip(), re.S)
    if whole and "${{" not in whole.group(1):
        return _expression(whole.group(1), contexts)
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _text(_expression(m.group(1), contexts)), raw)


def _text(value) -> str:
    """A value as GitHub renders it into a string: null as empty."""
    return "" if value is None else str(value)


def _legs(job: dict, contexts: dict) -> list[dict]:
    """The job's matrix legs (``include`` entries evaluated), or one leg without a matrix."""
    matrix = job.get("strategy", {}).get("matrix")
    if not matrix:
        return [{}]
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    assert "exclude" not in matrix and not (axes and "include" in matrix), "not modelled here"
    legs = matrix.get("include") or [dict(zip(axes, combo)) for combo in itertools.product(*axes.values())]
    return [{k: _value(v, contexts) for k, v in leg.items()} for leg in legs]


GITHUB = {"run_id": "4242", "run_attempt": "2", "repository": "acme/cofounder"}


def _runners(name: str, variables: dict) -> dict[tuple[str, str], str]:
    """(job, stack or '') -> the runner label GitHub would request, for these repository variables."""
    doc, out = _load(name), {}
    for job_id, job in doc["jobs"].items():
        for leg in _legs(job, {"vars": variables, "github": GITHUB}):
            ctx = {"vars": variables, "github": GITHUB, "matrix": leg}
            out[(job_id, leg.get("stack", ""))] = _value(job["runs-on"], ctx)
    return out


def _talks_to_the_cluster(job: dict) -> bool:
    return any(s.get("uses", "").startswith("pulumi/actions@") for s in job.get("steps", []))


def test_the_expression_model_follows_github_semantics():
    ctx = {"vars": {"A": "x", "EMPTY": ""}, "matrix": {"stack": "prod"}}
    assert _expression("vars.MISSING || vars.EMPTY || 'fallback'", ctx) == "fallback"
    assert _expression("vars.A || 'fallback'", ctx) == "x"
    assert _expression("vars.MISSING == ''", ctx) is True and _expression("vars.A != ''", ctx) is True
    assert _expression("vars.A == 'X' && matrix.stack", ctx) == "prod"
    assert _expression("format('codebuild-p-{0}-{1}', 'r', '1')", ctx) == "codebuild-p-r-1"
    assert _value("preview (${{ matrix.stack }})", ctx) == "preview (prod)"


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


def test_jobs_that_talk_to_the_cluster_run_where_the_repository_variables_say():
    """GitHub-hosted runners cannot reach the EKS API (prod: private endpoint only), so every
    `pulumi up`/`preview` job takes DEPLOY_RUNNER_<STACK>, else DEPLOY_RUNNER, else ubuntu-24.04;
    the rest (which run the pull request's code without credentials) stay GitHub-hosted."""
    cluster_jobs = {(name, job_id) for name in ("deploy.yml", "pull-request.yml")
                    for job_id, job in _load(name)["jobs"].items() if _talks_to_the_cluster(job)}
    assert cluster_jobs == {("deploy.yml", "dev"), ("deploy.yml", "staging"), ("deploy.yml", "prod"),
                            ("pull-request.yml", "preview")}
    settings = [
        ({}, {"dev": "ubuntu-24.04", "staging": "ubuntu-24.04", "prod": "ubuntu-24.04"}),
        ({"DEPLOY_RUNNER": "vpc-runner"}, {"dev": "vpc-runner", "staging": "vpc-runner", "prod": "vpc-runner"}),
        ({"DEPLOY_RUNNER": "vpc-runner", "DEPLOY_RUNNER_PROD": "codebuild-cofounder-prod-{0}-{1}"},
         {"dev": "vpc-runner", "staging": "vpc-runner", "prod": "codebuild-cofounder-prod-4242-2"}),
    ]
    for variables, expected in settings:
        for path in WORKFLOWS:
            for (job_id, leg), runner in _runners(path.name, variables).items():
                if (path.name, job_id) in cluster_jobs:
                    stack = leg or job_id
                    assert runner == expected[stack], (path.name, job_id, stack, variables)
                else:
                    assert runner == "ubuntu-24.04", (path.name, job_id, variables)


#: Configured as the README says: switches and runners per repository, a role per environment.
REPOSITORY_VARS = {"DEPLOY_ENABLED": "true", "PREVIEW_ENABLED": "true", "AWS_REGION": "eu-west-1"}
ENVIRONMENT_VARS = {
    **{stack: {"AWS_ROLE_ARN": f"arn:aws:iam::{n}:role/deploy"} for n, stack in
       ((111111111111, "dev"), (222222222222, "staging"), (333333333333, "prod"))},
    **{f"preview-{stack}": {"AWS_ROLE_ARN": f"arn:aws:iam::{n}:role/preview"} for n, stack in
       ((111111111111, "dev"), (222222222222, "staging"), (333333333333, "prod"))},
}
SAME_REPO_PR = {**GITHUB, "event": {"pull_request": {"head": {"repo": {"full_name": GITHUB["repository"]}}}}}


def _aws_jobs(name: str, repository_vars: dict, environments: dict) -> list[dict]:
    """Each job (matrix leg) that assumes an AWS role, as GitHub would run it: whether its
    job-level `if` lets it run (repository variables only: the job has not entered its
    environment yet), its environment, and the role its steps assume (environment variables
    visible, over repository ones)."""
    out = []
    for job_id, job in _load(name)["jobs"].items():
        for leg in _legs(job, {"vars": repository_vars, "github": SAME_REPO_PR}):
            ctx = {"vars": repository_vars, "github": SAME_REPO_PR, "matrix": leg, "needs": {}}
            env = job.get("environment")
            env_name = _value(env["name"] if isinstance(env, dict) else env, ctx)
            step_ctx = {**ctx, "vars": {**repository_vars, **environments.get(env_name, {})}}
            aws = [st for st in job.get("steps", []) if st.get("uses", "").startswith("aws-actions/")]
            if not aws:
                continue
            checks = [st for st in job["steps"][:job["steps"].index(aws[0])]
                      if "AWS_ROLE_ARN" in st.get("env", {})]
            out.append({"job": job_id, "stack": leg.get("stack", job_id), "environment": env_name,
                        "runs": bool(_value("${{ " + job["if"] + " }}", ctx)) if "if" in job else True,
                        "needs": job.get("needs"),
                        "role": _value(aws[0]["with"]["role-to-assume"], step_ctx),
                        "region": _value(aws[0]["with"]["aws-region"], step_ctx),
                        "check": checks[0] if checks else None,
                        "check_env": {k: _text(_value(v, step_ctx)) for k, v in
                                      (checks[0].get("env", {}) if checks else {}).items()}})
    return out


@pytest.mark.parametrize("name, kind", [("deploy.yml", "deploy"), ("pull-request.yml", "preview")])
def test_aws_jobs_run_when_enabled_and_assume_their_environments_role(name, kind):
    jobs = _aws_jobs(name, REPOSITORY_VARS, ENVIRONMENT_VARS)
    assert sorted(j["stack"] for j in jobs) == ["dev", "prod", "staging"]
    for j in jobs:
        expected_env = j["stack"] if kind == "deploy" else f"preview-{j['stack']}"
        assert j["environment"] == expected_env
        assert j["role"] == ENVIRONMENT_VARS[expected_env]["AWS_ROLE_ARN"], j
        assert j["region"] == "eu-west-1"
        # the chain: dev is gated, staging and prod follow it
        assert j["runs"] or j["needs"] in ("dev", "staging"), j
    assert len({j["role"] for j in jobs}) == 3  # one role per account, not one for all three
    switch = "DEPLOY_ENABLED" if kind == "deploy" else "PREVIEW_ENABLED"
    off = _aws_jobs(name, {k: v for k, v in REPOSITORY_VARS.items() if k != switch}, ENVIRONMENT_VARS)
    assert not any(j["runs"] for j in off if not j["needs"])


@pytest.mark.parametrize("name", ["deploy.yml", "pull-request.yml"])
def test_an_enabled_job_without_a_role_in_its_environment_fails_loudly(name, tmp_path):
    for j in _aws_jobs(name, REPOSITORY_VARS, {}):
        assert j["check"] is not None, f"{j['job']} has no step checking AWS_ROLE_ARN before it is used"
        env = {"PATH": "/usr/bin:/bin", **j["check_env"]}
        res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", j["check"]["run"]],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
        assert res.returncode != 0
        assert f"environment '{j['environment']}' has no AWS_ROLE_ARN" in res.stdout
    for j in _aws_jobs(name, REPOSITORY_VARS, ENVIRONMENT_VARS):
        res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", j["check"]["run"]],
                             cwd=tmp_path, env={"PATH": "/usr/bin:/bin", **j["check_env"]},
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stdout


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


def test_real_preview_runs_per_stack_for_same_repository_pull_requests_only():
    job = _load("pull-request.yml")["jobs"]["preview"]
    fork = {**GITHUB, "event": {"pull_request": {"head": {"repo": {"full_name": "someone/fork"}}}}}
    assert not _value("${{ " + job["if"] + " }}", {"vars": REPOSITORY_VARS, "github": fork})
    assert [leg["stack"] for leg in job["strategy"]["matrix"]["include"]] == ["dev", "staging", "prod"]
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
