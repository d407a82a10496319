"""toolkit/diff.py and toolkit/review.py: the review report on crafted snapshots and on real git trees."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import diff, review
from toolkit.stackfile import REPO

RDS = "aws:rds/instance:Instance"
DB_URN = "urn:pulumi:prod::cofounder::cofounder:data:Postgres$aws:rds/instance:Instance::db-instance"


def _res(urn: str, inputs: dict, options: dict | None = None, custom: bool = True) -> dict:
    type_ = urn.split("::")[2].split("$")[-1]
    return {"urn": urn, "type": type_, "name": urn.split("::")[-1], "parent": None,
            "custom": custom, "options": options or {}, "inputs": inputs}


def _snap(*resources: dict, reports: dict | None = None, outputs: dict | None = None) -> dict:
    return {"format": "cofounder-desired-state/v1", "stack": "prod", "note": "",
            "resources": sorted(resources, key=lambda r: r["urn"]),
            "outputs": outputs or {}, "reports": reports or {}}


def _urn(type_: str, name: str) -> str:
    return f"urn:pulumi:prod::cofounder::cofounder:network:Network${type_}::{name}"


BASE = _snap(
    _res(_urn("aws:ec2/subnet:Subnet", "net-private-a"), {"cidrBlock": "10.0.0.0/19"}),
    _res(_urn("aws:cloudwatch/logGroup:LogGroup", "net-flow-logs"), {"retentionInDays": 90}),
    _res(_urn("aws:ec2/natGateway:NatGateway", "net-nat-b"), {"subnetId": "subnet-b"}),
    _res(DB_URN, {"engine": "postgres", "instanceClass": "db.r6g.large",
                  "password": "[secret:aaaaaaaaaaaa]", "storageEncrypted": True},
         {"protect": True}),
    reports={"connections": {"title": "Connection budget", "ok": True, "key": ["pool"],
                             "rows": [{"pool": "pgbouncer", "connections": 200}]}},
)


def _head() -> dict:
    head = copy.deepcopy(BASE)
    res = {r["name"]: r for r in head["resources"]}
    res["net-flow-logs"]["inputs"]["retentionInDays"] = 365                  # a change
    res["db-instance"]["inputs"]["password"] = "[secret:bbbbbbbbbbbb]"      # a secret change
    res["db-instance"]["inputs"]["engine"] = "aurora-postgresql"            # forces replacement
    head["resources"] = [r for r in head["resources"] if r["name"] != "net-nat-b"]  # a delete
    head["resources"].append(_res(_urn("aws:ec2/subnet:Subnet", "net-private-c"),
                                  {"cidrBlock": "10.0.64.0/19"}))              # an add
    head["resources"].sort(key=lambda r: r["urn"])
    head["reports"]["connections"]["rows"][0]["connections"] = 450
    head["reports"]["connections"]["ok"] = False
    return head


def _stack_diff(base=BASE, head=None, **kw) -> diff.StackDiff:
    return diff.diff_stack("prod", base, _head() if head is None else head, **kw)


def test_diff_classifies_add_change_delete_and_replacement():
    d = _stack_diff()
    ops = {r.name: r.op for r in d.resources}
    assert ops == {"net-private-c": "create", "net-flow-logs": "update",
                   "net-nat-b": "delete", "db-instance": "replace"}
    logs = next(r for r in d.resources if r.name == "net-flow-logs")
    assert [(c.path, c.old, c.new) for c in logs.changes] == [("retentionInDays", "90", "365")]


def test_secret_change_is_masked():
    d = _stack_diff()
    db = next(r for r in d.resources if r.name == "db-instance")
    pw = next(c for c in db.changes if c.path == "password")
    assert (pw.old, pw.new, pw.forces_replace) == ("(secret)", "(secret changed)", False)
    text = diff.render([d], base_label="b", head_label="h")
    assert "(secret changed)" in text
    assert "aaaaaaaaaaaa" not in text and "bbbbbbbbbbbb" not in text


def test_database_replacement_is_flagged_at_the_top():
    text = diff.render([_stack_diff()], base_label="b", head_label="h")
    top = text.split("### Stack")[0]
    assert "⚠ Stateful resources at risk (1)" in top
    assert "`db-instance`" in top and "`engine` forces replacement" in top
    assert "pulumi preview --diff" in top and "best-effort" in top
    # the summary row counts it as a replace-risk
    assert "| `prod` | 1 | 1 | 1 | 1 | n/a | n/a | n/a | built |" in top


def test_deleting_a_stateful_resource_and_moving_it_are_flagged():
    head = _snap(*[r for r in BASE["resources"] if r["type"] != RDS])
    assert [f.what for f in _stack_diff(head=head).flags] == ["RDS instance deleted"]

    moved = copy.deepcopy(BASE)
    for r in moved["resources"]:
        if r["type"] == RDS:
            r["urn"] = "urn:pulumi:prod::cofounder::cofounder:data:Database$aws:rds/instance:Instance::db-instance"
    d = _stack_diff(head=moved)
    assert sorted(r.op for r in d.resources if r.type == RDS) == ["create", "delete"]
    assert len(d.flags) == 1 and "URN changes" in d.flags[0].what


def test_update_in_place_of_a_database_is_not_a_replacement():
    head = copy.deepcopy(BASE)
    next(r for r in head["resources"] if r["type"] == RDS)["inputs"]["instanceClass"] = "db.r6g.xlarge"
    d = _stack_diff(head=head)
    assert [(r.name, r.op) for r in d.resources] == [("db-instance", "update")]
    # not a replacement, but an outage AWS schedules: flagged with what AWS does and when
    assert [f.what for f in d.flags] == [
        "RDS instance modified in place: `instanceClass` in the next maintenance window (applyImmediately is "
        "not set): an outage while the class changes; with multiAz the standby is changed first and RDS fails "
        "over to it (usually about 60 s)"]


def test_dropping_protect_on_a_database_is_flagged():
    head = copy.deepcopy(BASE)
    next(r for r in head["resources"] if r["type"] == RDS)["options"] = {}
    assert [f.what for f in _stack_diff(head=head).flags] == ["RDS instance loses `protect`"]


def test_reports_and_policies_show_their_change_from_base():
    base_pol = [{"policy": "rds-multi-az", "enforcement": "mandatory", "urn": DB_URN, "message": "single AZ"}]
    head_pol = [{"policy": "sqs-has-dlq", "enforcement": "advisory", "urn": "q", "message": "no DLQ"}]
    d = _stack_diff(base_policies=base_pol, head_policies=head_pol)
    text = diff.render([d], base_label="b", head_label="h")
    assert "Connection budget: changed ❌ target missed (was ok)" in text
    assert "**450** (was 200)" in text
    assert "advisory: 1 (+1)" in text and "1 new, 1 resolved since BASE" in text
    assert "| resolved | `rds-multi-az`" in text


def test_policy_results_are_optional():
    text = diff.render([_stack_diff(policy_note="toolkit/policy_runner.py is not in this tree yet")],
                       base_label="b", head_label="h")
    assert "**Policy results:** not available (toolkit/policy_runner.py is not in this tree yet)." in text


def test_empty_base_side_is_labelled():
    d = diff.diff_stack("prod", None, _head(), base_note="predates the offline toolkit.")
    text = diff.render([d], base_label="b", head_label="h")
    assert "> **BASE: predates the offline toolkit.** Treated as empty." in text
    assert {r.op for r in d.resources} == {"create"}


def test_a_stack_the_working_tree_cannot_build_leads_the_report_and_claims_no_deletions():
    error = "error: stacks/Pulumi.prod.yaml: cofounder:network.cidrBlok is not a known setting"
    failed = diff.diff_stack("prod", BASE, None, head_error=error,
                             base_policies=[{"policy": "p", "enforcement": "advisory", "urn": "u", "message": "m"}])
    assert (failed.resources, failed.flags, failed.outputs, failed.reports) == ([], [], [], [])
    text = diff.render([failed], base_label="b", head_label="h")
    top = text.split("### Stack")[0]
    first_heading = next(line for line in top.splitlines() if line.startswith("### "))
    assert first_heading == "### ❌ The working tree failed to build: `prod`"
    assert f"```text\n{error}\n```" in top
    assert "| `prod` ❌ working tree failed to build | n/a | n/a | n/a | n/a | n/a | n/a | n/a | built |" in top
    for claim in ("deleted", "at risk", "Treated as empty", "No resource changes", "resolved"):
        assert claim not in text, claim
    # beside a stack that built, only that one's findings are claimed
    both = diff.render([failed, diff.diff_stack("dev", BASE, BASE)], base_label="b", head_label="h")
    assert "No stateful resource is deleted, replaced or modified in place in the stacks that built." in both
    assert both.index("failed to build: `prod`") < both.index("| stack | create |")


#: The agent-queues rows of every stack: sorted by column name, ``attempts`` (2 on every row)
#: comes first, which is what rows were paired on before reports declared their key.
QUEUE_ROWS = [{"attempts": 2, "priority": 1, "tier": "high", "queue": "q-high", "scaler trigger": "high"},
              {"attempts": 2, "priority": 2, "tier": "low", "queue": "q-low", "scaler trigger": "low"}]
#: request-path rows: ``alb rule`` is "-" on both S3 rows.
PATH_ROWS = [{"alb rule": "-", "viewer path": "_next/static/*", "edge cache": "1 y"},
             {"alb rule": "-", "viewer path": "public/*", "edge cache": "1 d"},
             {"alb rule": "/api/*", "viewer path": "/api/*", "edge cache": "never"}]


def _with_reports(reports: dict) -> dict:
    return _snap(*copy.deepcopy(BASE["resources"]), reports=reports)


def _policies(*violations: tuple[str, str]) -> list[dict]:
    return [{"policy": p, "enforcement": e, "urn": DB_URN, "message": f"{p} says no"} for p, e in violations]


def test_rows_that_collided_on_their_first_column_are_paired_by_their_key():
    reports = {"agent-queues": {"title": "Agent queues", "key": ["tier"], "rows": QUEUE_ROWS},
               "request-path": {"title": "Request path", "key": ["viewer path"], "rows": PATH_ROWS}}
    same = diff.diff_stack("dev", _with_reports(reports), _with_reports(copy.deepcopy(reports)))
    assert {r["name"]: r["status"] for r in same.reports} == {"agent-queues": "unchanged",
                                                              "request-path": "unchanged"}
    text = diff.render([same], base_label="b", head_label="h")
    for false_change in ("**high** (was low)", "**1** (was 2)", "(was public/*)", "**1 y** (was 1 d)"):
        assert false_change not in text
    # a real change is shown on its own row, against its own BASE row
    changed = copy.deepcopy(reports)
    changed["request-path"]["rows"][1]["edge cache"] = "7 d"
    d = diff.diff_stack("dev", _with_reports(reports), _with_reports(changed))
    path = next(r for r in d.reports if r["name"] == "request-path")
    assert path["rows"][0] == ["-", "_next/static/*", "1 y"]
    assert path["rows"][1] == ["-", "public/*", "**7 d** (was 1 d)"] and path["removed_rows"] == []


def test_a_key_that_names_two_rows_pairs_them_whole_never_with_each_other():
    rows = [{"tier": "high", "attempts": 2}, {"tier": "high", "attempts": 3}]
    base = {"q": {"title": "Q", "key": ["tier"], "rows": rows}}
    head = {"q": {"title": "Q", "key": ["tier"], "rows": [rows[1], {"tier": "high", "attempts": 4}]}}
    q = diff.diff_stack("dev", _with_reports(base), _with_reports(head)).reports[0]
    assert q["rows"] == [["high", "3"], ["**high**", "**4**"]]  # 3 kept; 4 is new, not "4 (was 2)"
    assert q["removed_rows"] == ["high"] and q["status"] == "changed"
    # without a declared key a row only matches an identical row
    keyless = diff.diff_stack("dev", _with_reports({"q": {"title": "Q", "rows": rows}}),
                              _with_reports({"q": {"title": "Q", "rows": rows[::-1]}}))
    assert keyless.reports[0]["status"] == "unchanged"


def test_a_stack_with_no_change_folds_to_one_line():
    pol = _policies(("sqs-has-dlq", "advisory"))
    quiet = diff.diff_stack("dev", BASE, copy.deepcopy(BASE), base_policies=pol, head_policies=pol)
    moved = _stack_diff(base_policies=pol, head_policies=pol)
    assert quiet.unchanged and not moved.unchanged
    text = diff.render([quiet, moved], base_label="b", head_label="h")
    body = text.split("| stack | create |")[1]
    assert "no change in `dev`" in body and "### Stack `dev`" not in text
    assert body.count("`sqs-has-dlq`") == 1  # prod's, in its folded violations; dev's existing one is not repeated
    # a policy result that changed is a change
    assert not diff.diff_stack("dev", BASE, copy.deepcopy(BASE), base_policies=[], head_policies=pol).unchanged


def test_the_verdict_is_the_first_line_and_new_mandatory_violations_come_first_expanded():
    old = _policies(("sqs-has-dlq", "advisory"), ("rds-instance-multi-az", "mandatory"))
    new = old + _policies(("rds-instance-deletion-protection", "mandatory"), ("k8s-hpa-min-replicas", "advisory"))
    d = diff.diff_stack("prod", BASE, _head(), base_policies=old, head_policies=new)
    assert [r["policy"] for r in d.new_mandatory] == ["rds-instance-deletion-protection"]
    text = diff.render([d], base_label="b", head_label="h")
    lines = text.splitlines()
    assert lines[0] == "❌ **blocks merge: 1 new mandatory violation**"
    headings = [line for line in lines if line.startswith("### ")]
    assert headings[:2] == ["### ❌ New mandatory violations (1)", "### ⚠ Stateful resources at risk (1)"]
    section = text.split("### ❌ New mandatory violations (1)")[1].split("###")[0]
    assert "| prod | `rds-instance-deletion-protection` | `db-instance` | rds-instance-deletion-protection says no |" \
        in section and "<details>" not in section
    assert "rds-instance-multi-az" not in section  # already at BASE: not new
    assert diff.new_mandatory([d]) == 1
    calm = diff.diff_stack("prod", BASE, _head(), base_policies=old, head_policies=old)
    assert diff.render([calm], base_label="b", head_label="h").splitlines()[0] == "✅ **no new mandatory violation**"


def test_digests_are_shown_whole_and_absent_to_empty_is_no_change():
    image = "public.ecr.aws/cofounder/backend@sha256:" + "0" * 64
    dep = "urn:pulumi:prod::cofounder::cofounder:apps:AppService$kubernetes:apps/v1:Deployment::backend"
    base = _snap(_res(dep, {"spec": {"image": "public.ecr.aws/cofounder/backend:1.0"}}))
    head = _snap(_res(dep, {"spec": {"image": image}, "metadata": {}, "extra": None}, {"dependsOn": []}))
    d = diff.diff_stack("prod", base, head)
    assert [(c.path, c.new) for c in d.resources[0].changes] == [("spec.image", f'"{image}"')]
    assert image in diff.render([d], base_label="b", head_label="h")
    long = {"a": "x" * 500}
    cut = diff.property_changes({}, long)[0].new
    assert cut.endswith("… (502 characters)") and len(cut) < 450


def _cost(lines: list[tuple[str, str, float]]) -> dict:
    total = round(sum(v for _, _, v in lines), 2)
    return {"currency": "USD", "region": "us-east-1", "pricesAsOf": "2026-11-01", "budgetUsd": None,
            "monthly": {"minScale": total, "maxScale": total}, "missingPrices": [], "cappedNodeGroups": [],
            "lines": [{"resource": r, "item": i, "monthlyMinScale": v, "monthlyMaxScale": v} for r, i, v in lines]}


def test_a_cost_total_shows_the_lines_that_make_its_change():
    base = _cost([("platform-apps", "m6i.2xlarge nodes", 1000.0), ("platform-apps", "headroom nodes", 560.64)])
    head = _cost([("platform-apps", "m6i.2xlarge nodes", 1280.32), ("platform-apps", "headroom nodes", 280.32)])
    with_cost = {"cost": {"title": "cost", "rows": [], "data": None}}
    a, b = _with_reports(copy.deepcopy(with_cost)), _with_reports(copy.deepcopy(with_cost))
    a["reports"]["cost"]["data"], b["reports"]["cost"]["data"] = base, head
    text = diff.render([diff.diff_stack("prod", a, b)], base_label="b", head_label="h")
    assert ("| maximum | $1,560.64 | $1,560.64 | 0 = +280.32 (platform-apps: m6i.2xlarge nodes) "
            "− 280.32 (platform-apps: headroom nodes) |") in text


def _big_diffs(n: int) -> list[diff.StackDiff]:
    base = _snap(*[_res(_urn("aws:ec2/subnet:Subnet", f"s{i:04d}"),
                        {"cidrBlock": f"10.{i % 250}.0.0/24", "tags": {f"k{j}": "a" * 30 for j in range(8)}})
                   for i in range(n)], *[r for r in BASE["resources"] if r["type"] == RDS])
    head = copy.deepcopy(base)
    for r in head["resources"]:
        if r["type"] == RDS:
            r["inputs"]["storageEncrypted"] = False
        else:
            r["inputs"]["tags"] = {k: "b" * 30 for k in r["inputs"]["tags"]}
    return [diff.diff_stack(s, base, head) for s in ("dev", "prod", "staging")]


def test_size_cap_cuts_detail_first_and_keeps_flags_and_summaries():
    diffs = _big_diffs(400)
    full = diff.render(diffs, base_label="b", head_label="h", limit=10**9)
    assert len(full) > 65_536
    capped = diff.render(diffs, base_label="b", head_label="h")
    assert len(capped) <= diff.DEFAULT_LIMIT < 65_536
    assert "Cut to fit a GitHub comment: folded property diffs" in capped
    assert "⚠ Stateful resources at risk (3)" in capped
    for stack in ("dev", "prod", "staging"):
        assert f"| `{stack}` | 0 | 400 | 0 | 1 | n/a | n/a | n/a | built |" in capped
    # a tighter cap drops the per-resource lines too, still keeping flags and summaries
    tight = diff.render(diffs, base_label="b", head_label="h", limit=6_000)
    assert len(tight) <= 6_000
    assert "Stateful resources at risk (3)" in tight and "`storageEncrypted` forces replacement" in tight


def test_report_is_byte_stable():
    a = diff.render([_stack_diff()], base_label="b", head_label="h")
    b = diff.render([diff.diff_stack("prod", copy.deepcopy(BASE), _head())], base_label="b", head_label="h")
    assert a.encode() == b.encode()
    assert diff.render(_big_diffs(50), base_label="b", head_label="h") == \
        diff.render(_big_diffs(50), base_label="b", head_label="h")


# --- real git trees ------------------------------------------------------------------------

GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=GIT_ENV).stdout.strip()


def _copy_tree(dest: Path) -> Path:
    """The repository as it stands (committed and not), without build products."""
    files = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others",
                            "--exclude-standard"], check=True, capture_output=True, text=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, dest / f)
    return dest


def _new_repo(path: Path) -> Path:
    path.mkdir()
    _git(path, "init", "--quiet", "--initial-branch=main")
    return path


def _commit(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "--quiet", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="session")
def review_cache(tmp_path_factory) -> Path:
    """One build cache for the session's review runs (shared by the xdist workers): the trees of
    these tests are mostly this repository as it stands, built once and reused (toolkit.review.Cache)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "review-cache"


def _make_diff(repo: Path, *args: str, cache: Path | None = None,
               stacks: str = "dev") -> tuple[subprocess.CompletedProcess, str]:
    out = repo / "build" / "review"
    env = {**GIT_ENV, "REVIEW_CACHE": str(cache) if cache else "off"}
    res = subprocess.run([sys.executable, "-m", "toolkit.review", "--stacks", stacks, "--out", str(out), *args],
                         cwd=repo, capture_output=True, text=True, env=env)
    report = (out / "report.md").read_text() if (out / "report.md").exists() else ""
    return res, report


def test_make_diff_on_a_fresh_clone_with_base_head_reports_no_changes(tmp_path):
    origin = _copy_tree(_new_repo(tmp_path / "origin"))
    _commit(origin, "all")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(origin), str(clone)], check=True, env=GIT_ENV)
    res, report = _make_diff(clone, "--base", "HEAD")
    assert res.returncode == 0, res.stderr
    assert "**No resource changes in any stack.**" in report
    assert "| `dev` | 0 | 0 | 0 | 0 |" in report
    assert (clone / "build/review/base/dev.json").read_bytes() == (clone / "build/review/head/dev.json").read_bytes()
    # the temporary worktree is gone
    assert len(_git(clone, "worktree", "list").splitlines()) == 1


def test_base_that_predates_the_toolkit_is_reported_as_empty(tmp_path, review_cache):
    repo = _new_repo(tmp_path / "repo")
    (repo / "README.md").write_text("before the toolkit\n")
    base = _commit(repo, "old")
    _copy_tree(repo)
    _commit(repo, "toolkit")
    res, report = _make_diff(repo, "--base", base, cache=review_cache)
    assert res.returncode == 0, res.stderr
    assert "> **BASE: predates the offline toolkit" in report and "Treated as empty." in report
    assert "| `dev` | 0 | 0 | 0 |" not in report


def test_shallow_clone_without_main_is_deepened_to_find_the_merge_base(tmp_path, review_cache):
    origin = _copy_tree(_new_repo(tmp_path / "origin"))
    _commit(origin, "main")
    _git(origin, "checkout", "--quiet", "-b", "feature")
    stack = origin / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("flowLogRetentionDays: 14", "flowLogRetentionDays: 30"))
    _commit(origin, "feature")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", "feature", "--single-branch",
                    f"file://{origin}", str(clone)], check=True, env=GIT_ENV)
    res, report = _make_diff(clone, cache=review_cache)
    assert res.returncode == 0, res.stderr
    assert "merge base with `origin/main`" in report
    assert "| `retentionInDays` | 14 | 30 |" in report


def test_unknown_base_is_a_one_line_error(tmp_path):
    repo = _copy_tree(_new_repo(tmp_path / "repo"))
    _commit(repo, "all")
    res, _ = _make_diff(repo, "--base", "no-such-ref")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "error: BASE=no-such-ref is not a commit in this clone (nothing fetched: no remote 'origin'); "
        "pass a commit, tag or branch that exists"]


def test_unknown_base_error_says_what_was_fetched_and_deepened(tmp_path):
    origin = _new_repo(tmp_path / "origin")
    (origin / "x").write_text("x")
    _commit(origin, "x")
    full, shallow = tmp_path / "full", tmp_path / "shallow"
    subprocess.run(["git", "clone", "--quiet", str(origin), str(full)], check=True, env=GIT_ENV)
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", f"file://{origin}", str(shallow)],
                   check=True, env=GIT_ENV)
    with pytest.raises(review.ReviewError) as full_error:
        review.resolve_base(full, "no-such-ref")
    assert str(full_error.value) == (
        "BASE=no-such-ref is not a commit in this clone (fetched main from origin); "
        "pass a commit, tag or branch that exists")
    with pytest.raises(review.ReviewError) as shallow_error:
        review.resolve_base(shallow, "no-such-ref")
    assert "(deepened the shallow clone from origin; fetched main from origin)" in str(shallow_error.value)
    (origin / ".git").rename(origin / "gone")  # the remote is unreachable: the failure is quoted
    with pytest.raises(review.ReviewError) as failed:
        review.resolve_base(full, "no-such-ref")
    assert "(could not fetch main from origin: fatal: " in str(failed.value)
    assert "fetched main" not in str(failed.value) and "\n" not in str(failed.value)


def test_a_working_tree_that_fails_to_build_is_reported_as_such_not_as_deletions(tmp_path, review_cache):
    repo = _copy_tree(_new_repo(tmp_path / "repo"))
    _commit(repo, "all")
    stack = repo / "stacks" / "Pulumi.dev.yaml"
    stack.write_text(stack.read_text().replace("flowLogRetentionDays: 14", "flowLogRetentionDayz: 14"))
    res, report = _make_diff(repo, "--base", "HEAD", cache=review_cache)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1].startswith("error: the working tree failed to build for dev")
    top = report.split("### Stack")[0]
    assert "### ❌ The working tree failed to build: `dev`" in top
    assert "error: stacks/Pulumi.dev.yaml: cofounder:network.flowLogRetentionDayz is not a known setting" in top
    assert "deleted" not in report and "Stateful resources at risk" not in report
    assert "**delete**" not in report


def _fake_tree(path: Path, policy_runner: str) -> Path:
    """A tree with the toolkit's entry points and none of the program: the driver's plumbing alone.
    Its harness appends each program run to the file $RUNS_LOG."""
    (path / "toolkit").mkdir(parents=True)
    (path / "stacks").mkdir()
    (path / "stacks" / "Pulumi.dev.yaml").write_text("config: {}\n")
    (path / "toolkit" / "__init__.py").write_text("")
    (path / "toolkit" / "harness.py").write_text(
        "import os\n"
        "def run_stack(stack, overrides=None, stacks_dir=None):\n"
        "    with open(os.environ['RUNS_LOG'], 'a') as f:\n"
        "        f.write(stack + '\\n')\n"
        "    return {'stack': stack}\n")
    (path / "toolkit" / "preview.py").write_text(
        "import argparse, json, sys\n"
        "from pathlib import Path\n"
        "from toolkit.harness import run_stack\n"
        "p = argparse.ArgumentParser(); p.add_argument('--stack'); p.add_argument('--out')\n"
        "a = p.parse_args()\n"
        "program = run_stack(a.stack, stacks_dir=None)\n"
        "Path(a.out).mkdir(parents=True, exist_ok=True)\n"
        "(Path(a.out) / f'{a.stack}.json').write_text(json.dumps({'resources': [], 'of': program['stack']}))\n"
        "sys.exit(0)\n")
    (path / "toolkit" / "policy_runner.py").write_text(policy_runner)
    return path


POLICIES_OF_THE_PROGRAM = ("from toolkit.harness import run_stack\n"
                           "def run_policies(stack):\n"
                           "    return [{'policy': 'p', 'of': run_stack(stack)['stack']}]\n")


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "runs.txt"
    log.write_text("")
    monkeypatch.setenv("RUNS_LOG", str(log))
    return log


def test_one_program_run_serves_the_preview_and_the_policy_runner(tmp_path, runs):
    tree = _fake_tree(tmp_path / "tree", POLICIES_OF_THE_PROGRAM)
    side = review.build_side(tree, "t", ["dev"], tmp_path / "out")
    assert side.docs == {"dev": {"resources": [], "of": "dev"}} and side.notes == {}
    assert side.policies == {"dev": [{"policy": "p", "of": "dev"}]} and side.policy_notes == {}
    assert runs.read_text() == "dev\n"


def test_a_second_review_of_unchanged_trees_reuses_their_builds(tmp_path, runs):
    repo = _fake_tree(_new_repo(tmp_path / "repo"), POLICIES_OF_THE_PROGRAM)
    _commit(repo, "all")
    cache = tmp_path / "cache"
    first = review.review(repo, "HEAD", tmp_path / "one", only=["dev"], cache_root=cache)
    # BASE is built and stored; the clean working tree is the same git tree, so HEAD reuses it
    assert first.cached == ["HEAD dev"] and runs.read_text() == "dev\n"
    second = review.review(repo, "HEAD", tmp_path / "two", only=["dev"], cache_root=cache)
    assert second.cached == ["BASE dev", "HEAD dev"] and runs.read_text() == "dev\n"
    assert second.report == first.report
    for side in ("base", "head"):
        for name in ("dev.json", "dev.policies.json"):
            assert (tmp_path / "two" / side / name).read_bytes() == (tmp_path / "one" / side / name).read_bytes()


def test_a_changed_or_untracked_file_or_other_packages_mean_a_new_build(tmp_path, runs, monkeypatch):
    repo = _fake_tree(_new_repo(tmp_path / "repo"), POLICIES_OF_THE_PROGRAM)
    _commit(repo, "all")
    cache = tmp_path / "cache"
    review.review(repo, "HEAD", tmp_path / "out", only=["dev"], cache_root=cache)
    (repo / "notes.txt").write_text("untracked")
    assert review.review(repo, "HEAD", tmp_path / "out", only=["dev"], cache_root=cache).cached == ["BASE dev"]
    assert runs.read_text() == "dev\ndev\n"
    _commit(repo, "notes")
    assert review.review(repo, "HEAD~1", tmp_path / "out", only=["dev"], cache_root=cache).cached == ["BASE dev"]
    assert runs.read_text() == "dev\ndev\ndev\n"  # the committed tree is a new one, built once
    monkeypatch.setattr(review, "_FINGERPRINT", ["other packages"])
    assert review.review(repo, "HEAD", tmp_path / "out", only=["dev"], cache_root=cache).cached == ["HEAD dev"]
    assert runs.read_text() == "dev\ndev\ndev\ndev\n"
    assert review.review(repo, "HEAD", tmp_path / "out", only=["dev"], cache_root=None).cached == []


def test_two_builds_of_one_tree_at_once_run_the_program_once(tmp_path, runs):
    from concurrent.futures import ThreadPoolExecutor
    tree = _fake_tree(tmp_path / "tree", POLICIES_OF_THE_PROGRAM)
    cache = review.Cache(tmp_path / "cache", "0" * 40)
    with ThreadPoolExecutor(2) as pool:
        sides = list(pool.map(lambda i: review.build_side(tree, "t", ["dev"], tmp_path / f"out{i}", cache=cache),
                              range(2)))
    assert runs.read_text() == "dev\n"  # the second waited for the first build and reused it
    assert sorted(side.cached for side in sides) == [[], ["dev"]]
    assert sides[0].docs == sides[1].docs == {"dev": {"resources": [], "of": "dev"}}


def test_a_failing_policy_run_is_reported_and_the_snapshot_kept(tmp_path, runs):
    tree = _fake_tree(tmp_path / "tree", "def run_policies(stack):\n    raise RuntimeError('pack crashed')\n")
    side = review.build_side(tree, "t", ["dev"], tmp_path / "out")
    assert side.docs == {"dev": {"resources": [], "of": "dev"}} and side.errors == {}
    assert side.policies == {}
    assert side.policy_notes["dev"].startswith("policy run failed: ")
    assert side.policy_notes["dev"].endswith("RuntimeError: pack crashed")


def test_resolve_base_without_main_is_labelled_not_fatal(tmp_path):
    repo = _new_repo(tmp_path / "repo")
    (repo / "x").write_text("x")
    _commit(repo, "x")
    _git(repo, "branch", "-m", "main", "other")
    sha, label = review.resolve_base(repo, None)
    assert sha is None and label.startswith("unavailable: no merge base with main")


def test_policy_runner_of_the_tree_is_used_when_present(tmp_path, runs):
    """The seam for toolkit/policy_runner.py: run_policies(stack) of each tree feeds the report."""
    repo = _fake_tree(_new_repo(tmp_path / "repo"), POLICIES_OF_THE_PROGRAM)
    (repo / "toolkit" / "policy_runner.py").unlink()
    _commit(repo, "base without a policy runner")
    (repo / "toolkit" / "policy_runner.py").write_text(
        "def run_policies(stack):\n"
        "    return [{'policy': 'demo-rule', 'enforcement': 'advisory', 'urn': 'urn:x::demo',\n"
        "             'message': 'demo message for ' + stack}]\n")
    _commit(repo, "policy runner")
    result = review.review(repo, "HEAD~1", repo / "build" / "review", only=["dev"], cache_root=None)
    assert result.head_failed == []  # what `make diff` exits 0 on
    report = result.report
    assert "**Policy results:** advisory: 1 (no BASE results to compare)." in report
    assert "demo message for dev" in report


#: A ``components`` package and a ``toolkit.snapshot`` for ``_fake_tree``, shaped like the real
#: ones where the test edits them, and a preview that writes a one-resource snapshot from both.
FAKE_NETWORK = 'TAGS = {"component": "network"}\n'
FAKE_SNAPSHOT = 'FORMAT = "cofounder-desired-state/v1"\nNOTE = ("Desired state of the fake tree.")\n'
FAKE_PREVIEW = """\
import argparse, json
from pathlib import Path
from components.network import TAGS
from toolkit.harness import run_stack
from toolkit.snapshot import FORMAT, NOTE
p = argparse.ArgumentParser(); p.add_argument('--stack'); p.add_argument('--out')
a = p.parse_args()
run_stack(a.stack)
urn = f'urn:pulumi:{a.stack}::cofounder::cofounder:network:Network$aws:ec2/vpc:Vpc::net-vpc'
vpc = {'urn': urn, 'type': 'aws:ec2/vpc:Vpc', 'name': 'net-vpc', 'parent': None, 'custom': True,
       'options': {}, 'inputs': {'cidrBlock': '10.0.0.0/16', 'tags': dict(TAGS)}}
doc = {'format': FORMAT, 'stack': a.stack, 'note': NOTE, 'resources': [vpc], 'outputs': {}, 'reports': {}}
Path(a.out).mkdir(parents=True, exist_ok=True)
(Path(a.out) / f'{a.stack}.json').write_text(json.dumps(doc, indent=2, sort_keys=True) + '\\n')
"""


def test_base_is_built_from_its_own_tree_not_the_installed_packages(tmp_path, runs):
    """PYTHONPATH shadows the editable install: BASE's components/ and toolkit/ are what run.
    The fake tree's packages are named like the project's, which the venv has installed editable."""
    repo = _fake_tree(_new_repo(tmp_path / "repo"), POLICIES_OF_THE_PROGRAM)
    (repo / "components").mkdir()
    (repo / "components" / "__init__.py").write_text("")
    (repo / "toolkit" / "preview.py").write_text(FAKE_PREVIEW)
    network, snapshot_py = repo / "components" / "network.py", repo / "toolkit" / "snapshot.py"
    network.write_text(FAKE_NETWORK.replace('"component": "network"', '"component": "network-at-base"'))
    snapshot_py.write_text(FAKE_SNAPSHOT.replace('NOTE = ("', 'NOTE = ("BASE TOOLKIT. '))
    _commit(repo, "base")
    _git(repo, "checkout", "--quiet", "-b", "feature")
    network.write_text(FAKE_NETWORK)
    snapshot_py.write_text(FAKE_SNAPSHOT)
    _commit(repo, "feature")
    result = review.review(repo, None, repo / "build" / "review", only=["dev"], cache_root=None)  # default BASE
    assert result.head_failed == []  # what `make diff` exits 0 on
    report = result.report
    assert "merge base with `main`" in report
    base_doc = (repo / "build/review/base/dev.json").read_text()
    assert '"component": "network-at-base"' in base_doc and "BASE TOOLKIT." in base_doc
    assert "network-at-base" not in (repo / "build/review/head/dev.json").read_text()
    assert '| `tags.component` | "network-at-base" | "network" |' in report


# --- the three example changes of issue 27, as a reviewer meets them --------------------------

ZERO = "0" * 64
NEW_DIGEST = "5f" * 32
#: (stack file, text at BASE, text in the change): edits of this repository's own stack files.
EXAMPLES = {
    "replica-bump-and-digest": [
        ("prod", f"backend:1.0.0@sha256:{ZERO}", f"backend:1.0.1@sha256:{NEW_DIGEST}"),
        ("prod", "      minReplicas: 3\n      maxReplicas: 40\n      activeAgentsTarget",
         "      minReplicas: 4\n      maxReplicas: 40\n      activeAgentsTarget")],
    "rds-class-to-burstable": [
        ("prod", "instanceClass: db.r7g.xlarge", "instanceClass: db.t4g.medium")],
    "waf-off-and-deletion-protection-off": [
        ("staging", "  cofounder:waf:\n    logRetentionDays: 30\n", "  cofounder:waf:\n    enabled: false\n    logRetentionDays: 30\n"),
        ("prod", "    backupRetentionDays: 30\n    deletionProtection: true\n",
         "    backupRetentionDays: 30\n    deletionProtection: false\n")],
}


def _example(tmp_path: Path, name: str) -> Path:
    """A clone of this repository at BASE with the example change committed on top."""
    repo = _copy_tree(_new_repo(tmp_path / name))
    _commit(repo, "base")
    for stack, before, after in EXAMPLES[name]:
        path = repo / "stacks" / f"Pulumi.{stack}.yaml"
        text = path.read_text()
        assert text.count(before) == 1, (stack, before)
        path.write_text(text.replace(before, after))
    _commit(repo, name)
    return repo


def _sections(report: str) -> list[str]:
    return [line for line in report.splitlines() if line.startswith("### ")]


def test_example_replica_bump_and_digest(tmp_path, review_cache):
    """The bump passes (prod's headroom covers the larger first step): the reviewer sees the
    backend's new first step and, paired by app, what it does to every app's burst at p95."""
    res, report = _make_diff(_example(tmp_path, "replica-bump-and-digest"), "--base", "HEAD~1",
                             cache=review_cache, stacks="dev,prod")
    assert res.returncode == 0, res.stderr
    lines = report.splitlines()
    assert lines[0] == "✅ **no new mandatory violation**"
    assert _sections(report)[:1] == ["### Stack `prod`"]
    assert "No stateful resource is deleted, replaced or modified in place." in report
    assert "no change in `dev`" in lines  # the untouched stack: one line, no tables
    assert "### Stack `dev`" not in report
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cofounder-prod"
    assert f"{registry}/backend:1.0.1@sha256:{NEW_DIGEST}" in report  # whole, never cut
    assert f"{registry}/backend:1.0.0@sha256:{ZERO}" in report
    assert "**4** (was 3)" in report  # the backend's min in the time-to-scale report, paired by app
    assert "**+16 @ 15s** (was +12 @ 15s)" in report
    # the burst table pairs BASE and the working tree per app: the backend's 5 more pods take
    # headroom the others counted on, so no app is Ready sooner than before
    burst = {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^\| (\w+) \| (\d+) s \| (\d+) s \| .*✅ \|$",
                                                                report, re.M)}
    assert set(burst) == {"backend", "frontend", "worker"}
    assert all(after >= before for before, after in burst.values())
    assert len(report) < diff.DEFAULT_LIMIT


def test_example_rds_class_to_burstable_blocks_the_merge(tmp_path, review_cache):
    res, report = _make_diff(_example(tmp_path, "rds-class-to-burstable"), "--base", "HEAD~1",
                             cache=review_cache, stacks="prod")
    assert res.returncode == 1
    assert "error: the change adds 1 mandatory policy violation: it blocks the merge" in res.stderr
    assert report.splitlines()[0] == "❌ **blocks merge: 1 new mandatory violation**"
    assert _sections(report)[:2] == ["### ❌ New mandatory violations (1)", "### ⚠ Stateful resources at risk (1)"]
    first = report.split("### ❌ New mandatory violations (1)")[1].split("###")[0]
    assert "| prod | `rds-instance-class-not-burstable` | `postgres-db` | instanceClass db.t4g.medium is burstable" \
        in first
    risk = report.split("### ⚠ Stateful resources at risk (1)")[1].split("###")[0]
    assert ("RDS instance modified in place: `instanceClass` in the next maintenance window "
            "(sun:04:30-sun:05:30) (applyImmediately is not set): an outage while the class changes") in risk


def test_example_waf_off_and_deletion_protection_off_blocks_the_merge(tmp_path, review_cache):
    res, report = _make_diff(_example(tmp_path, "waf-off-and-deletion-protection-off"), "--base", "HEAD~1",
                             cache=review_cache, stacks="prod,staging")
    assert res.returncode == 1
    assert report.splitlines()[0] == "❌ **blocks merge: 2 new mandatory violations**"
    assert _sections(report)[0] == "### ❌ New mandatory violations (2)"
    first = report.split("### ❌ New mandatory violations (2)")[1].split("###")[0]
    assert "| prod | `rds-instance-deletion-protection` | `postgres-db` |" in first
    assert "| staging | `cloudfront-waf-attached` |" in first
    assert "<details>" not in first  # expanded, above every folded section
    risk = report.split("### ⚠ Stateful resources at risk")[1].split("###")[0]
    assert "`deletionProtection` at once: ignores applyImmediately" in risk

