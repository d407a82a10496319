""".github/workflows: valid against GitHub's workflow schema, pinned, minimal permissions, the
deploy order dev -> staging -> prod, and the properties docs/ci.md promises: credentials only in
environments, prod reachable from a pull request only through reviewers, sessions that outlive
their jobs, one stack at a time, the policy pack's environment created before it is loaded, and
fork comments addressed from the event rather than from the fork's artifact."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from toolkit.stackfile import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
CHECK = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows"]
CI_DOC = REPO / "docs" / "ci.md"


def _table(path: Path, first_column: str) -> list[dict[str, str]]:
    """The rows of the Markdown table in ``path`` whose header starts with ``first_column``."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_column:
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                rows.append(dict(zip(cells, (c.strip() for c in row.strip().strip("|").split("|")), strict=False)))
            return rows
    raise AssertionError(f"{path.name}: no table headed {first_column!r}")


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
    legs = matrix.get("include") or [dict(zip(axes, combo, strict=False)) for combo in itertools.product(*axes.values())]
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
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "drift.yml", "pull-request.yml", "review-comment.yml"]


def test_workflows_validate_against_the_vendored_github_schema():
    res = subprocess.run(CHECK + [str(p) for p in WORKFLOWS], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    stepz: []\n")
    res = subprocess.run(CHECK + [str(bad)], capture_output=True, text=True)
    assert res.returncode != 0


#: The first major of each action that runs on Node 24 (the majors before it run on Node 20, which
#: GitHub's hosted runners no longer ship): `runs.using` in each tag's action.yml, read from the
#: actions' repositories (checkout v5.0.0, setup-python v6.0.0, upload-artifact v6.0.0,
#: download-artifact v7.0.0, configure-aws-credentials v6.0.0, sticky-pull-request-comment v3.0.0,
#: pulumi/actions v7.0.0 say node24; their previous majors say node20).
NODE24_SINCE = {"actions/checkout": 5, "actions/setup-python": 6, "actions/upload-artifact": 6,
                "actions/download-artifact": 7, "aws-actions/configure-aws-credentials": 6,
                "marocchino/sticky-pull-request-comment": 3, "pulumi/actions": 7}
_PINNED = re.compile(r"\s*(?:- )?uses: (?P<action>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40}) # (?P<tag>v(?P<major>\d+)\.\d+\.\d+)")


def _pins(text: str) -> list[re.Match | str]:
    """Every `uses:` line of a workflow: its match of the pinned form, or the line itself."""
    lines = [line for line in text.splitlines() if re.match(r"\s*(?:- )?uses:", line)]
    return [_PINNED.fullmatch(line) or line for line in lines]


def test_the_pin_check_rejects_tags_branches_and_short_shas():
    bad = ["      - uses: actions/checkout@v7.0.1",
           "      - uses: actions/checkout@v7  # 3d3c42e5aac5ba805825da76410c181273ba90b1",
           "      - uses: actions/checkout@3d3c42e # v7.0.1",
           "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1",
           "        uses: actions/checkout@main"]
    assert all(isinstance(p, str) for p in _pins("\n".join(bad)))
    ok = _pins("      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1")
    assert ok[0]["tag"] == "v7.0.1"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_commit_shas_on_node24_majors_and_python_is_311(path):
    pins = _pins(path.read_text())
    assert len(pins) == len(_uses(_load(path.name)))  # every `uses:` is on one line we can read
    for pin in pins:
        assert not isinstance(pin, str), f"not pinned as <action>@<40-hex sha> # vX.Y.Z: {pin.strip()}"
        assert int(pin["major"]) >= NODE24_SINCE[pin["action"]], pin.group(0)
    doc = _load(path.name)
    for job in doc["jobs"].values():
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert step["with"]["python-version"] == "3.11"
    assert doc["permissions"] == {"contents": "read"}  # workflow default: read only


def test_each_action_is_pinned_to_one_commit_everywhere_and_the_doc_lists_it():
    seen: dict[str, set[tuple[str, str]]] = {}
    for path in WORKFLOWS:
        for pin in _pins(path.read_text()):
            seen.setdefault(pin["action"], set()).add((pin["sha"], pin["tag"]))
    assert set(seen) == set(NODE24_SINCE)
    doc = _table(CI_DOC, "action")
    listed = {row["action"].strip("`"): (row["commit"].strip("`"), row["tag"]) for row in doc}
    for action, pins in seen.items():
        assert len(pins) == 1, f"{action} pinned to different commits: {pins}"
        assert listed[action] == next(iter(pins)), action


def test_the_pulumi_cli_is_pinned_to_the_sdk_version():
    (sdk,) = re.findall(r"^pulumi==(\S+)$", (REPO / "requirements.txt").read_text(), re.M)
    steps = [s for path in WORKFLOWS for job in _load(path.name)["jobs"].values()
             for s in job.get("steps", []) if s.get("uses", "").startswith("pulumi/actions@")]
    assert len(steps) == 5
    assert {str(s["with"].get("pulumi-version")) for s in steps} == {sdk}
    assert all(not s["with"].get("upsert") for s in steps)  # stacks are created by hand (docs/ci.md)


def test_jobs_that_talk_to_the_cluster_run_where_the_repository_variables_say():
    """GitHub-hosted runners cannot reach the EKS API (prod: private endpoint only), so every
    `pulumi up`/`preview` job takes DEPLOY_RUNNER_<STACK>, else DEPLOY_RUNNER, else ubuntu-24.04;
    the rest (which run the pull request's code without credentials) stay GitHub-hosted."""
    cluster_jobs = {(name, job_id) for name in ("deploy.yml", "drift.yml", "pull-request.yml")
                    for job_id, job in _load(name)["jobs"].items() if _talks_to_the_cluster(job)}
    assert cluster_jobs == {("deploy.yml", "dev"), ("deploy.yml", "staging"), ("deploy.yml", "prod"),
                            ("pull-request.yml", "preview"), ("drift.yml", "refresh")}
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
REPOSITORY_VARS = {"DEPLOY_ENABLED": "true", "PREVIEW_ENABLED": "true", "DRIFT_ENABLED": "true",
                   "AWS_REGION": "eu-west-1"}
#: The repository variable that switches each workflow's AWS jobs on.
SWITCHES = {"deploy.yml": "DEPLOY_ENABLED", "pull-request.yml": "PREVIEW_ENABLED", "drift.yml": "DRIFT_ENABLED"}
ENVIRONMENT_VARS = {
    **{stack: {"AWS_ROLE_ARN": f"arn:aws:iam::{n}:role/deploy"} for n, stack in
       ((111111111111, "dev"), (222222222222, "staging"), (333333333333, "prod"))},
    **{f"preview-{stack}": {"AWS_ROLE_ARN": f"arn:aws:iam::{n}:role/preview"} for n, stack in
       ((111111111111, "dev"), (222222222222, "staging"), (333333333333, "prod"))},
}
#: Each environment's secret PULUMI_ACCESS_TOKEN (docs/ci.md "Variables and secrets").
ENVIRONMENT_SECRETS = {env: {"PULUMI_ACCESS_TOKEN": f"pul-{env}"} for env in ENVIRONMENT_VARS}
SAME_REPO_PR = {**GITHUB, "event": {"pull_request": {"head": {"repo": {"full_name": GITHUB["repository"]}}}}}


def _aws_jobs(name: str, repository_vars: dict, environments: dict,
              secrets: dict | None = None) -> list[dict]:
    """Each job (matrix leg) that assumes an AWS role, as GitHub would run it: whether its
    job-level `if` lets it run (repository variables only: the job has not entered its
    environment yet), its environment, and the role its steps assume (environment variables
    visible, over repository ones; secrets only from the environment: there are no repository
    secrets)."""
    out = []
    for job_id, job in _load(name)["jobs"].items():
        for leg in _legs(job, {"vars": repository_vars, "github": SAME_REPO_PR}):
            ctx = {"vars": repository_vars, "github": SAME_REPO_PR, "matrix": leg, "needs": {}}
            env = job.get("environment")
            env_name = _value(env["name"] if isinstance(env, dict) else env, ctx)
            step_ctx = {**ctx, "vars": {**repository_vars, **environments.get(env_name, {})},
                        "secrets": (secrets or {}).get(env_name, {})}
            aws = [st for st in job.get("steps", []) if st.get("uses", "").startswith("aws-actions/")]
            if not aws:
                continue
            checks = [st for st in job["steps"][:job["steps"].index(aws[0])]
                      if "AWS_ROLE_ARN" in st.get("env", {})]
            out.append({"job": job_id, "stack": leg.get("stack", job_id), "environment": env_name,
                        "runs": bool(_value("${{ " + job["if"] + " }}", ctx)) if "if" in job else True,
                        "needs": job.get("needs"),
                        "role": _value(aws[0]["with"]["role-to-assume"], step_ctx),
                        "duration": aws[0]["with"].get("role-duration-seconds"),
                        "timeout": job.get("timeout-minutes"),
                        "region": _value(aws[0]["with"]["aws-region"], step_ctx),
                        "check": checks[0] if checks else None,
                        "check_env": {k: _text(_value(v, step_ctx)) for k, v in
                                      (checks[0].get("env", {}) if checks else {}).items()}})
    return out


@pytest.mark.parametrize("name, kind", [("deploy.yml", "deploy"), ("pull-request.yml", "preview"),
                                        ("drift.yml", "preview")])
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
    switch = SWITCHES[name]
    off = _aws_jobs(name, {k: v for k, v in REPOSITORY_VARS.items() if k != switch}, ENVIRONMENT_VARS)
    assert not any(j["runs"] for j in off if not j["needs"])


def _run_check(job: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", job["check"]["run"]],
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", **job["check_env"]},
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", ["deploy.yml", "pull-request.yml", "drift.yml"])
def test_an_enabled_job_without_its_credentials_in_its_environment_fails_loudly(name, tmp_path):
    for j in _aws_jobs(name, REPOSITORY_VARS, {}, ENVIRONMENT_SECRETS):
        assert j["check"] is not None, f"{j['job']} has no step checking AWS_ROLE_ARN before it is used"
        res = _run_check(j, tmp_path)
        assert res.returncode != 0
        assert f"environment '{j['environment']}' has no AWS_ROLE_ARN" in res.stdout
    for j in _aws_jobs(name, REPOSITORY_VARS, ENVIRONMENT_VARS):  # a role, no token
        res = _run_check(j, tmp_path)
        assert res.returncode != 0
        assert f"environment '{j['environment']}' has no PULUMI_ACCESS_TOKEN" in res.stdout
    self_managed = {**REPOSITORY_VARS, "PULUMI_BACKEND_URL": "s3://state"}  # no token needed
    for repository_vars, secrets in ((REPOSITORY_VARS, ENVIRONMENT_SECRETS), (self_managed, {})):
        for j in _aws_jobs(name, repository_vars, ENVIRONMENT_VARS, secrets):
            res = _run_check(j, tmp_path)
            assert res.returncode == 0, res.stdout


def test_deploy_goes_dev_then_staging_then_prod_in_protected_environments():
    doc = _load("deploy.yml")
    assert doc["on"] == {"push": {"branches": ["main"]}}
    jobs = doc["jobs"]
    assert jobs["dev"]["needs"] == "test"
    assert jobs["staging"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "staging"
    assert "concurrency" not in doc  # per stack, per job: see the concurrency test
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


def test_the_review_report_is_made_and_posted_when_the_change_blocks_the_merge():
    """A new mandatory violation fails `make policy` and makes `make diff` exit 1: the report must
    still be built after the failed step, uploaded for forks and posted as the sticky comment."""
    steps = _load("pull-request.yml")["jobs"]["offline-review"]["steps"]
    names = [s.get("name") or s.get("uses", "") for s in steps]
    make_diff = next(s for s in steps if "make diff" in s.get("run", ""))
    assert names.index("make diff") > names.index("make policy (every stack)")
    assert make_diff["if"] == "${{ !cancelled() }}"  # runs after a failed step, not after a cancel
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    sticky = next(s for s in steps if s.get("uses", "").startswith("marocchino/"))
    assert upload["if"] == "always()" and sticky["if"].startswith("always() && ")
    assert "continue-on-error" not in make_diff  # the job stays red
    # the forks' poster runs on every completed run, whatever its conclusion
    comment = _load("review-comment.yml")["jobs"]["comment"]
    assert "conclusion" not in comment["if"]


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
    # Only the download and the comment touch the artifact: no step runs, sources or unpacks it.
    assert {u.split("@")[0] for u in _uses(doc)} == {"actions/download-artifact", "marocchino/sticky-pull-request-comment"}
    path = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/download-artifact@"))["with"]["path"]
    for step in job["steps"]:
        assert path not in step.get("run", "") and "${{" not in step.get("run", ""), step
    assert "run: " not in (REPO / ".github" / "workflows" / "review-comment.yml").read_text().split(
        "actions/download-artifact@", 1)[1]  # nothing runs after the download


# --- zizmor (pinned in requirements.txt): no unsuppressed medium or high finding ------------

ZIZMOR = Path(sys.executable).with_name("zizmor")
_IGNORE = re.compile(r"#\s*zizmor:\s*ignore\[(?P<audits>[^\]]+)\](?P<reason>.*)$")


def _zizmor(target: Path) -> list[dict]:
    """zizmor's findings on ``target`` (offline: no GitHub API audits), ignored ones included."""
    res = subprocess.run([str(ZIZMOR), "--offline", "--format", "json", str(target)],
                         capture_output=True, text=True)
    assert res.stdout.strip(), res.stderr  # exit code is non-zero whenever it finds something
    return json.loads(res.stdout)


def _blocking(findings: list[dict]) -> list[str]:
    return [f"{f['ident']} ({f['determinations']['severity']}): "
            f"{f['locations'][0]['symbolic']['key']['Local']['verbatim_path']}"
            for f in findings if not f["ignored"] and f["determinations"]["severity"] in ("Medium", "High")]


def test_zizmor_reports_no_unsuppressed_medium_or_high_finding():
    assert _blocking(_zizmor(REPO / ".github" / "workflows")) == []


def test_zizmor_catches_persisted_credentials_and_an_unexplained_workflow_run(tmp_path):
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    for path in WORKFLOWS:  # as data, so no comment (and no ignore) survives
        doc = _load(path.name)
        for job in doc["jobs"].values():
            for step in job.get("steps", []):
                step.get("with", {}).pop("persist-credentials", None)
                if step.get("with") == {}:
                    del step["with"]
        (workflows / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    assert {b.split(" ")[0] for b in _blocking(_zizmor(workflows))} == {"artipacked", "dangerous-triggers"}


def test_every_zizmor_suppression_names_its_audit_and_says_why():
    found = []
    for path in WORKFLOWS:
        for line in path.read_text().splitlines():
            if "zizmor:" in line:
                m = _IGNORE.search(line)
                assert m and len(m["reason"].strip()) > 20, f"{path.name}: {line.strip()}"
                found.append((path.name, m["audits"]))
    assert found == [("review-comment.yml", "dangerous-triggers")]


def test_no_checkout_leaves_the_token_in_the_clone():
    """Nothing pushes from these workflows, so every checkout drops its credentials afterwards."""
    for path in WORKFLOWS:
        for job in _load(path.name)["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step.get("with", {}).get("persist-credentials") is False, (path.name, step)


# --- Who can reach prod: environments as data, checked against docs/ci.md ---------------------

#: The GitHub environments as docs/ci.md "Environments" tells a user to configure them.
#: reviewers: required reviewers; branches: deployment branches ("main" only, or any);
#: prod: whether its AWS role or Pulumi token can read or change prod.
ENVIRONMENTS = {
    "dev": {"reviewers": False, "branches": "main", "prod": False, "duration": 7200},
    "staging": {"reviewers": False, "branches": "main", "prod": False, "duration": 7200},
    "prod": {"reviewers": True, "branches": "main", "prod": True, "duration": 7200},
    "preview-dev": {"reviewers": False, "branches": "any", "prod": False, "duration": 1800},
    "preview-staging": {"reviewers": False, "branches": "any", "prod": False, "duration": 1800},
    "preview-prod": {"reviewers": True, "branches": "any", "prod": True, "duration": 1800},
}
#: Events whose runs execute code (or read artifacts) that nobody has reviewed yet.
UNREVIEWED_EVENTS = {"pull_request", "pull_request_target", "workflow_run"}


def test_the_environment_model_is_what_the_doc_tells_users_to_configure():
    rows = _table(CI_DOC, "environment")
    yes_no = {"yes": True, "no": False}
    documented = {row["environment"].strip("`"): {
        "reviewers": yes_no[row["required reviewers"]], "branches": row["deployment branches"].strip("`"),
        "prod": yes_no[row["can reach prod"]], "duration": int(row["role-duration-seconds"])} for row in rows}
    assert documented == ENVIRONMENTS


def _job_environments(job: dict) -> list[str | None]:
    """The environment each leg of the job enters (None: none)."""
    env = job.get("environment")
    raw = env["name"] if isinstance(env, dict) else env
    ctx = {"vars": REPOSITORY_VARS, "github": SAME_REPO_PR}
    return [_value(raw, {**ctx, "matrix": leg}) for leg in _legs(job, ctx)]


def _credential_problems(doc: dict, environments: dict) -> list[str]:
    """Where a workflow would hand credentials to code nobody reviewed, or keep them outside an
    environment. A job has credentials if it may mint an OIDC token or reads a secret other than
    the run's own GITHUB_TOKEN."""
    problems = []
    unreviewed = bool(UNREVIEWED_EVENTS & set(doc["on"]))
    for job_id, job in doc["jobs"].items():
        text = yaml.safe_dump(job)
        secrets = set(re.findall(r"secrets\.(\w+)", text)) - {"GITHUB_TOKEN"}
        oidc = job.get("permissions", {}).get("id-token") == "write"
        for env in _job_environments(job):
            if (secrets or oidc) and env is None:
                problems.append(f"{job_id}: credentials ({sorted(secrets)}, oidc={oidc}) outside an environment")
                continue
            if env is None:
                continue
            rules = environments.get(env)
            if rules is None:
                problems.append(f"{job_id}: environment {env!r} is not in docs/ci.md")
            elif unreviewed and rules["prod"] and not rules["reviewers"]:
                problems.append(f"{job_id}: unreviewed code reaches prod through {env!r} without reviewers")
            elif unreviewed and rules["branches"] == "main":
                problems.append(f"{job_id}: {env!r} admits main only, a pull request's job cannot enter it")
    return problems


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_unreviewed_code_gets_credentials_for_prod(path):
    assert _credential_problems(_load(path.name), ENVIRONMENTS) == []


def test_the_credential_check_catches_an_ungated_prod_preview_and_a_repository_secret():
    doc = _load("pull-request.yml")
    no_reviewers = {**ENVIRONMENTS, "preview-prod": {**ENVIRONMENTS["preview-prod"], "reviewers": False}}
    assert _credential_problems(doc, no_reviewers) == \
        ["preview: unreviewed code reaches prod through 'preview-prod' without reviewers"]
    deploy_env = {**doc, "jobs": {"preview": {**doc["jobs"]["preview"], "environment": "${{ matrix.stack }}"}}}
    assert len(_credential_problems(deploy_env, ENVIRONMENTS)) == 3  # dev, staging, prod admit main only
    leaky = {**doc, "jobs": {"offline-review": {
        **doc["jobs"]["offline-review"],
        "env": {"PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}"}}}}
    assert _credential_problems(leaky, ENVIRONMENTS) == \
        ["offline-review: credentials (['PULUMI_ACCESS_TOKEN'], oidc=False) outside an environment"]


def test_deploys_use_only_main_only_environments_and_previews_only_preview_environments():
    deploy = {env for job in _load("deploy.yml")["jobs"].values() for env in _job_environments(job) if env}
    preview = {env for job in _load("pull-request.yml")["jobs"].values() for env in _job_environments(job) if env}
    drift = {env for job in _load("drift.yml")["jobs"].values() for env in _job_environments(job) if env}
    assert deploy == {e for e, r in ENVIRONMENTS.items() if r["branches"] == "main"} == {"dev", "staging", "prod"}
    assert preview == drift == {e for e in ENVIRONMENTS if e.startswith("preview-")}


# --- Sessions that outlive their jobs -------------------------------------------------------

@pytest.mark.parametrize("name", ["deploy.yml", "pull-request.yml", "drift.yml"])
def test_the_aws_session_lasts_at_least_the_job_timeout_and_the_doc_states_it(name):
    jobs = _aws_jobs(name, REPOSITORY_VARS, ENVIRONMENT_VARS, ENVIRONMENT_SECRETS)
    assert jobs
    for j in jobs:
        assert j["timeout"] is not None, f"{j['job']}: no timeout-minutes"
        assert j["duration"] is not None, f"{j['job']}: role-duration-seconds unset (the action asks for 3600 s)"
        assert 900 <= int(j["duration"]) <= 43200  # what STS accepts
        assert int(j["duration"]) >= 60 * int(j["timeout"]), j
        # the role's MaxSessionDuration the doc asks for covers the session
        assert ENVIRONMENTS[j["environment"]]["duration"] == int(j["duration"]), j
    assert "MaxSessionDuration" in CI_DOC.read_text()


# --- One stack at a time --------------------------------------------------------------------

def _stack_jobs() -> list[dict]:
    """Each leg of every job that runs Pulumi, with its stack and evaluated concurrency."""
    out = []
    for path in WORKFLOWS:
        doc = _load(path.name)
        for job_id, job in doc["jobs"].items():
            if not _talks_to_the_cluster(job):
                continue
            for leg in _legs(job, {"vars": REPOSITORY_VARS, "github": SAME_REPO_PR}):
                ctx = {"vars": REPOSITORY_VARS, "github": SAME_REPO_PR, "matrix": leg}
                pulumi = next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
                conc = job.get("concurrency") or {}
                # an install-only pulumi/actions step: the stack is the leg's (drift.yml runs the CLI itself)
                stack = _value(pulumi["with"]["stack-name"], ctx) if "stack-name" in pulumi["with"] else leg["stack"]
                out.append({"workflow": path.name, "job": job_id, "stack": stack,
                            "group": _value(conc.get("group"), ctx), "cancel": conc.get("cancel-in-progress"),
                            "queue": conc.get("queue"), "workflow_concurrency": doc.get("concurrency")})
    return out


def test_previews_and_deploys_of_a_stack_share_one_queue_that_never_cancels():
    jobs = _stack_jobs()
    assert {(j["workflow"], j["stack"]) for j in jobs} == {
        (w, s) for w in ("deploy.yml", "drift.yml", "pull-request.yml") for s in ("dev", "staging", "prod")}
    for j in jobs:
        assert j["group"] == f"pulumi-{j['stack']}", j
        assert j["cancel"] is False and j["queue"] == "max", j  # a preview never replaces a pending deploy
        if j["workflow"] == "deploy.yml":
            assert j["workflow_concurrency"] is None  # nothing above the job may cancel a deploy


# --- The policy pack's environment ----------------------------------------------------------

def _pack_venv() -> Path:
    """Where the Pulumi CLI runs the pack: runtime.options.virtualenv, resolved against the pack's
    folder (pulumi/pulumi sdk/python/toolchain/pip.go resolveVirtualEnvironmentPath)."""
    pack = yaml.safe_load((REPO / "policies" / "PulumiPolicy.yaml").read_text())
    venv = pack["runtime"]["options"]["virtualenv"]
    return (REPO / "policies" / venv).resolve()


def _make_install_creates() -> Path:
    (venv,) = re.findall(r"^VENV\s*:=\s*(\S+)$", (REPO / "Makefile").read_text(), re.M)
    return (REPO / venv).resolve()


def _pack_problems(doc: dict, creates: dict[str, Path], pack_venv: Path) -> list[str]:
    """Jobs that load the pack (pulumi/actions with policyPacks) before a step created its environment."""
    problems = []
    for job_id, job in doc["jobs"].items():
        made = set()
        for step in job.get("steps", []):
            made |= {venv for command, venv in creates.items() if command in step.get("run", "").split("\n")}
            loads_pack = step.get("uses", "").startswith("pulumi/actions@") and step.get("with", {}).get("policyPacks")
            if loads_pack and pack_venv not in made:
                    problems.append(f"{job_id}: loads the pack before anything creates {pack_venv}")
    return problems


@pytest.mark.parametrize("name", ["deploy.yml", "pull-request.yml"])
def test_every_job_that_loads_the_policy_pack_creates_its_environment_first(name):
    creates = {"make install": _make_install_creates()}
    assert _pack_venv() == _make_install_creates()  # one environment: the program's and the pack's
    assert _pack_problems(_load(name), creates, _pack_venv()) == []


def test_the_pack_check_catches_a_missing_or_late_install_and_a_pack_venv_nobody_creates():
    doc = _load("deploy.yml")
    creates = {"make install": _make_install_creates()}
    job = doc["jobs"]["prod"]
    no_install = {**doc, "jobs": {"prod": {**job, "steps": [s for s in job["steps"] if s.get("run") != "make install"]}}}
    assert _pack_problems(no_install, creates, _pack_venv()) == [
        f"prod: loads the pack before anything creates {_pack_venv()}"]
    late = [s for s in job["steps"] if s.get("run") != "make install"] + [{"run": "make install"}]
    assert _pack_problems({**doc, "jobs": {"prod": {**job, "steps": late}}}, creates, _pack_venv())
    assert _pack_problems(doc, creates, (REPO / "policies" / "venv").resolve())  # the old `virtualenv: venv`


def test_the_repository_environment_holds_everything_the_pack_needs():
    root = {line.split("==")[0]: line for line in (REPO / "requirements.txt").read_text().splitlines()
            if "==" in line and not line.startswith("#")}
    for line in (REPO / "policies" / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line == "-e ..":  # the repository itself, installed by `-e .` at the root
            assert "-e ." in (REPO / "requirements.txt").read_text().splitlines()
        else:
            assert root.get(line.split("==")[0]) == line, line


# --- Fork comments: the pull request comes from the event, never from the artifact ----------

def test_review_comment_resolves_the_pull_request_from_the_event_before_downloading_anything():
    job = _load("review-comment.yml")["jobs"]["comment"]
    steps = job["steps"]
    find = next(s for s in steps if s.get("id") == "pr")
    download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact@"))
    sticky = next(s for s in steps if s.get("uses", "").startswith("marocchino/"))
    assert steps.index(find) < steps.index(download) < steps.index(sticky)
    assert find["env"]["HEAD_SHA"] == "${{ github.event.workflow_run.head_sha }}"
    assert find["env"]["HEAD_REPOSITORY"] == "${{ github.event.workflow_run.head_repository.full_name }}"
    assert "env.HEAD_SHA" in find["run"] and "env.HEAD_REPOSITORY" in find["run"]
    assert "${{" not in find["run"]  # event fields reach the script through env only
    # the number posted to is the one the API returned; nothing reads one from the artifact
    assert {k: v for k, v in sticky["with"].items() if k in ("number", "number_force")} == \
        {"number_force": "${{ steps.pr.outputs.number }}"}
    path = download["with"]["path"]
    for step in steps:
        assert path not in step.get("run", ""), step
    upload = next(s for s in _load("pull-request.yml")["jobs"]["offline-review"]["steps"]
                  if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "build/review/report.md"  # the report, and no pull request number
    assert "pr-number" not in (REPO / ".github" / "workflows" / "pull-request.yml").read_text()


PULLS = [  # what GET /repos/acme/cofounder/pulls returns (one page), in the API's shape
    {"number": 7, "head": {"sha": "a" * 40, "repo": {"full_name": "mallory/cofounder"}}},
    {"number": 8, "head": {"sha": "b" * 40, "repo": {"full_name": "mallory/cofounder"}}},
    {"number": 9, "head": {"sha": "b" * 40, "repo": {"full_name": "alice/cofounder"}}},
]


def _find_pr(tmp_path: Path, pulls: list[dict], head_sha: str, head_repo: str) -> tuple[int, str, str]:
    """Run the step that finds the pull request with a stand-in `gh` answering from ``pulls`` (the
    --jq filter applied by jq, as gh applies it), and an artifact claiming pull request 1."""
    step = next(s for s in _load("review-comment.yml")["jobs"]["comment"]["steps"] if s.get("id") == "pr")
    (tmp_path / "pulls.json").write_text(json.dumps(pulls))
    (tmp_path / "review").mkdir()
    (tmp_path / "review" / "pr-number.txt").write_text("1\n")  # a fork's lie: never read
    fake = tmp_path / "bin" / "gh"
    fake.parent.mkdir()
    fake.write_text('#!/bin/bash\necho "$*" >> "$GH_LOG"\nwhile [ $# -gt 0 ]; do\n'
                    '  if [ "$1" = --jq ]; then jq -r "$2" "$PULLS"; exit; fi; shift\ndone\nexit 1\n')
    fake.chmod(0o755)
    out = tmp_path / "output"
    github = {"repository": "acme/cofounder", "token": "t", "event": {"workflow_run": {
        "head_sha": head_sha, "head_branch": "feature",
        "head_repository": {"full_name": head_repo, "owner": {"login": head_repo.split("/")[0]}}}}}
    env = {k: _text(_value(v, {"github": github})) for k, v in step["env"].items()}
    env.update(PATH=f"{fake.parent}:/usr/bin:/bin", GITHUB_OUTPUT=str(out), PULLS=str(tmp_path / "pulls.json"),
               GH_LOG=str(tmp_path / "gh.log"))
    res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    return res.returncode, out.read_text() if out.exists() else "", (tmp_path / "gh.log").read_text()


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq, as gh's --jq")
@pytest.mark.parametrize("head_sha, head_repo, expected", [
    ("a" * 40, "mallory/cofounder", "number=7\n"),   # the fork's own pull request
    ("b" * 40, "alice/cofounder", "number=9\n"),     # same commit from another fork: that one's
    ("c" * 40, "mallory/cofounder", ""),             # no open pull request: nothing posted
])
def test_review_comment_posts_on_the_pull_request_of_the_runs_head_only(tmp_path, head_sha, head_repo, expected):
    code, output, calls = _find_pr(tmp_path, PULLS, head_sha, head_repo)
    assert code == 0
    assert output == expected
    assert "repos/acme/cofounder/pulls" in calls and "state=open" in calls


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq, as gh's --jq")
def test_review_comment_posts_nowhere_when_the_match_is_ambiguous(tmp_path):
    twice = PULLS + [{"number": 10, "head": {"sha": "a" * 40, "repo": {"full_name": "mallory/cofounder"}}}]
    assert _find_pr(tmp_path, twice, "a" * 40, "mallory/cofounder")[:2] == (0, "")


# --- docs/ci.md and the README match the workflows -----------------------------------------

def _references(kind: str) -> set[str]:
    return {name for path in WORKFLOWS for name in re.findall(rf"\b{kind}\.([A-Z_][A-Z0-9_]*)", path.read_text())}


def test_the_doc_lists_exactly_the_variables_and_secrets_the_workflows_read():
    repository_vars = {row["variable"].strip("`") for row in _table(CI_DOC, "variable")}
    environment = {row["name"].strip("`"): row["kind"] for row in _table(CI_DOC, "name")}
    assert _references("vars") == repository_vars | {n for n, k in environment.items() if k == "variable"}
    assert _references("secrets") == {n for n, k in environment.items() if k == "secret"}
    assert set(REPOSITORY_VARS) <= repository_vars
    assert all(set(v) <= set(environment) for v in (*ENVIRONMENT_VARS.values(), *ENVIRONMENT_SECRETS.values()))


def test_the_readme_summarises_ci_and_links_the_doc():
    text = (REPO / "README.md").read_text()
    section = text.split("## CI on GitHub", 1)[1].split("\n## ", 1)[0]
    assert "docs/ci.md" in section
    assert len(section.strip().splitlines()) <= 16
    for env, rules in ENVIRONMENTS.items():
        if rules["reviewers"]:
            assert f"`{env}`" in section, env  # which environments need reviewers


# --- Drift: a daily read-only refresh, one issue per stack ------------------------------------

def _pulumi_commands(job: dict) -> list[str]:
    """Every `pulumi ...` command line the job's scripts run (continuations joined)."""
    runs = "\n".join(s.get("run", "") for s in job.get("steps", [])).replace("\\\n", " ")
    return [m.strip() for m in re.findall(r"(?:^|[;&|]\s*|then\s+|else\s+)(pulumi\s[^\n;|&>]*)", runs, re.M)]


def _drift_write_problems(doc: dict, environments: dict) -> list[str]:
    """Where drift.yml could change a stack or its cloud: an AWS role other than a read-only
    preview role, a Pulumi command other than a refresh preview (or the login), a pulumi/actions
    command, or an issue-writing job that also holds credentials."""
    problems = []
    for job_id, job in doc["jobs"].items():
        envs = _job_environments(job)
        oidc = job.get("permissions", {}).get("id-token") == "write"
        for env in envs:
            if oidc and not (env and env.startswith("preview-") and env in environments):
                problems.append(f"{job_id}: AWS credentials from {env!r}, not a read-only preview environment")
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("pulumi/actions@") and "command" in step.get("with", {}):
                problems.append(f"{job_id}: pulumi/actions runs {step['with']['command']!r}")
        for command in _pulumi_commands(job):
            words = command.split()
            if words[1] == "login":
                continue
            if words[1] != "refresh" or "--preview-only" not in words or {"--yes", "-y", "--skip-preview", "-f"} & set(words):
                problems.append(f"{job_id}: runs {command!r}")
        writes_issues = job.get("permissions", {}).get("issues") == "write"
        secrets = set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(job))) - {"GITHUB_TOKEN"}
        if writes_issues and (oidc or secrets or any(envs)):
            problems.append(f"{job_id}: writes issues and holds credentials")
    return problems


def test_drift_runs_daily_and_on_demand_with_least_privilege():
    doc = _load("drift.yml")
    assert set(doc["on"]) == {"schedule", "workflow_dispatch"}
    (cron,) = [entry["cron"] for entry in doc["on"]["schedule"]]
    minute, hour, *rest = cron.split()
    assert rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit()  # once a day
    jobs = doc["jobs"]
    assert jobs["refresh"]["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["issues"]["permissions"] == {"issues": "write"}
    granted = {(k, v) for job in jobs.values() for k, v in job["permissions"].items()}
    assert granted <= {("contents", "read"), ("issues", "write"), ("id-token", "write")}
    assert [leg["stack"] for leg in jobs["refresh"]["strategy"]["matrix"]["include"]] == ["dev", "staging", "prod"]
    assert jobs["refresh"]["strategy"]["fail-fast"] is False  # one stack's failure hides no other's drift
    for job in jobs.values():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    assert jobs["issues"]["needs"] == "refresh" and jobs["issues"]["if"].startswith("always()")


def test_drift_needs_no_aws_write_credentials():
    """The refresh legs assume only the preview roles (read-only, docs/ci.md "The roles"), run no
    Pulumi command that writes, and the job that writes issues holds no credential at all."""
    doc = _load("drift.yml")
    assert _drift_write_problems(doc, ENVIRONMENTS) == []
    jobs = _aws_jobs("drift.yml", REPOSITORY_VARS, ENVIRONMENT_VARS)
    assert {j["environment"] for j in jobs} == {"preview-dev", "preview-staging", "preview-prod"}
    assert {j["role"] for j in jobs} == {ENVIRONMENT_VARS[f"preview-{s}"]["AWS_ROLE_ARN"] for s in ("dev", "staging", "prod")}
    (refresh,) = [c for c in _pulumi_commands(doc["jobs"]["refresh"]) if c.split()[1] == "refresh"]
    assert "--json" in refresh.split() and '--stack "$STACK"' in refresh
    roles = {row["name"].strip("`"): row["what"] for row in _table(CI_DOC, "name")}
    assert "the preview role (`preview-*`)" in roles["AWS_ROLE_ARN"]
    assert "read-only" in CI_DOC.read_text().split("**Preview role**", 1)[1].split("\n- ", 1)[0]


def test_the_drift_write_check_catches_a_deploy_role_a_real_refresh_and_credentials_beside_issues():
    doc = _load("drift.yml")
    refresh, issues = doc["jobs"]["refresh"], doc["jobs"]["issues"]
    deploy_env = {**doc, "jobs": {"refresh": {**refresh, "environment": "${{ matrix.stack }}"}}}
    assert len(_drift_write_problems(deploy_env, ENVIRONMENTS)) == 3
    steps = [{**s, "run": s["run"].replace("--preview-only", "--yes")} if "pulumi refresh" in s.get("run", "") else s
             for s in refresh["steps"]]
    assert _drift_write_problems({**doc, "jobs": {"refresh": {**refresh, "steps": steps}}}, ENVIRONMENTS) == [
        next(f"refresh: runs {c!r}" for c in _pulumi_commands({"steps": steps}) if "refresh" in c)]
    up = [{**s, "with": {**s["with"], "command": "up"}} if s.get("uses", "").startswith("pulumi/actions@") else s
          for s in refresh["steps"]]
    assert _drift_write_problems({**doc, "jobs": {"refresh": {**refresh, "steps": up}}}, ENVIRONMENTS) == \
        ["refresh: pulumi/actions runs 'up'"]
    both = {**issues, "permissions": {"issues": "write", "id-token": "write"}}
    assert _drift_write_problems({**doc, "jobs": {"issues": both}}, ENVIRONMENTS) == [
        "issues: AWS credentials from None, not a read-only preview environment",
        "issues: writes issues and holds credentials"]


def _run_issue_step(tmp_path: Path, reports: dict[str, str], issues: list[dict]) -> list[str]:
    """Run the issue step with a stand-in `gh` (its `api` answering ``issues``) over the reports
    the refresh legs uploaded ({stack: "drift" | "clean"}); the gh calls it made."""
    step = next(s for s in _load("drift.yml")["jobs"]["issues"]["steps"] if "run" in s)
    for stack, status in reports.items():
        (tmp_path / "drift" / f"drift-{stack}").mkdir(parents=True)
        (tmp_path / "drift" / f"drift-{stack}" / "status").write_text(status + "\n")
        (tmp_path / "drift" / f"drift-{stack}" / "report.md").write_text(f"report {stack}\n")
    (tmp_path / "issues.json").write_text(json.dumps(issues))
    fake = tmp_path / "bin" / "gh"
    fake.parent.mkdir()
    fake.write_text('#!/bin/bash\nif [ "$1" = api ]; then echo "$*" >> "$GH_LOG"; cat "$ISSUES"; exit; fi\n'
                    'echo "$*" >> "$GH_LOG"\n')
    fake.chmod(0o755)
    github = {"server_url": "https://github.com", "repository": "acme/cofounder", "run_id": "4242", "token": "t"}
    env = {k: _text(_value(v, {"github": github})) for k, v in step["env"].items()}
    env.update(PATH=f"{fake.parent}:/usr/bin:/bin", ISSUES=str(tmp_path / "issues.json"), GH_LOG=str(tmp_path / "gh.log"))
    res = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    log = tmp_path / "gh.log"
    return [c for c in log.read_text().splitlines() if not c.startswith("api ")] if log.exists() else []


OPEN = [{"number": 3, "title": "Drift in stack prod", "pull_request": {"url": "x"}},  # a pull request: skipped
        {"number": 5, "title": "Drift in stack prod"},
        {"number": 6, "title": "Drift in stack staging (old)"}]


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq, as on GitHub's runners")
@pytest.mark.parametrize("reports, expected", [
    ({"dev": "drift"}, ["issue create --title Drift in stack dev --body-file drift/drift-dev//report.md"]),
    ({"prod": "drift"}, ["issue edit 5 --body-file drift/drift-prod//report.md",
                         "issue comment 5 --body Still drifting: https://github.com/acme/cofounder/actions/runs/4242"]),
    ({"prod": "clean"}, ["issue close 5 --comment No drift found by https://github.com/acme/cofounder/actions/runs/4242"]),
    ({"staging": "clean", "dev": "clean"}, []),
])
def test_drift_opens_updates_or_closes_one_issue_per_stack(tmp_path, reports, expected):
    assert _run_issue_step(tmp_path, reports, OPEN) == expected


def test_drift_is_documented_with_what_to_do():
    text = CI_DOC.read_text()
    section = text.split("## Drift", 1)[1].split("\n## ", 1)[0]
    for needed in ("pulumi refresh --preview-only", "DRIFT_ENABLED", "preview-prod", "Secret", "Helm release"):
        assert needed in section, needed
