"""toolkit/tune.py (make tune): recorded load-test results become HPA settings, as a stack-file diff."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config import parse
from toolkit import tune
from toolkit.stackfile import REPO, load_stack_file

RESULTS = Path(__file__).parent / "loadtest_results"
PROD_RUN = RESULTS / "prod-capacity.json"


def _prod():
    return parse("prod", load_stack_file("prod").config)


def _tuned(result: dict, **kwargs):
    cfg = _prod()
    tunings = {t.app: t for t in tune.tune(tune.measure(result, cfg, {}, PROD_RUN), cfg, **kwargs)}
    return cfg, tunings


def _cli(tmp_path: Path, result: dict | Path, *extra: str) -> subprocess.CompletedProcess:
    stacks = tmp_path / "stacks"
    if not stacks.exists():  # a later call sees what an earlier --write left
        stacks.mkdir()
        shutil.copy(REPO / "stacks" / "Pulumi.prod.yaml", stacks)
    if isinstance(result, dict):
        path = tmp_path / "result.json"
        path.write_text(json.dumps(result))
    else:
        path = result
    return subprocess.run([sys.executable, "-m", "toolkit.tune", "--stack", "prod", "--result", str(path),
                           "--stacks-dir", str(stacks), *extra], capture_output=True, text=True, cwd=REPO, timeout=120)


def test_paths_reach_the_apps_as_cloudfront_routes_them():
    assert tune.app_for_path("/api/projects?page=2", "app") == "backend"
    assert tune.app_for_path("/dashboard", "app") == "frontend"
    assert tune.app_for_path("/_next/static/chunks/main.js", "app") is None  # the assets bucket
    assert tune.app_for_path("/public/logo.svg", "app") is None
    assert tune.app_for_path("/dashboard", "s3") is None  # pages from the bucket: no frontend pods


def test_the_recorded_prod_run_gives_capacity_targets_and_bounds():
    """frontend: / and /dashboard, 180 rps on 6 pods = 30 per pod; x 0.7 = 21 per pod. 80 % of the
    requests that reached pods, so 28 of prod's 35 peak rps: 2 pods at the peak, 140 rps at 5x:
    ceil(140 / 21) = 7. The static chunk (S3) is not counted."""
    cfg, t = _tuned(json.loads(PROD_RUN.read_text()))
    front = t["frontend"]
    assert front.refused is None and front.measured.capacity == 30.0 and front.measured.share == pytest.approx(0.8)
    assert (front.target, front.min_replicas, front.max_replicas, front.needed) == (21.0, 2, 7, 7)
    # the backend scales on active agents and CPU as well: the HTTP run only raises its bounds
    back = t["backend"]
    assert back.measured.capacity == 11.25 and back.measured.p99_ms == 185.0
    assert (back.min_replicas, back.max_replicas) == (cfg.apps["backend"].min_replicas, cfg.apps["backend"].max_replicas)
    # first steps: frontend 5 x 250m/512Mi, backend 12 and worker 12 x 500m/1Gi (5x their minimum
    # of 3) = 13,250m over 1,000m placeholders, x 1.2 slack = 15.9 -> 16
    assert tune.headroom_replicas(list(t.values()), cfg) == 16
    assert tune.changes(list(t.values()), cfg, 16) == [
        (["cofounder:apps", "frontend", "requestsPerSecondTarget"], 21.0),
        (["cofounder:apps", "frontend", "minReplicas"], 2),
        (["cofounder:apps", "frontend", "maxReplicas"], 7),
        (["cofounder:cluster", "headroom", "replicas"], 16)]


def test_the_target_share_and_the_floor_are_options():
    _, t = _tuned(json.loads(PROD_RUN.read_text()), target_share=0.5, min_floor=3)
    # 30 x 0.5 = 15 per pod: ceil(28 / 15) = 2 -> the floor 3; ceil(140 / 15) = 10
    assert (t["frontend"].target, t["frontend"].min_replicas, t["frontend"].max_replicas) == (15.0, 3, 10)


def test_an_app_over_the_p99_limit_is_refused_not_tuned(tmp_path):
    result = json.loads(PROD_RUN.read_text())
    result["endpoints"]["/dashboard"]["p99_ms"] = 260.0
    _, t = _tuned(result)
    assert t["frontend"].refused == "p99 260 ms over the 200 ms limit: 30.0 rps per pod is not a capacity"
    assert t["backend"].refused is None
    proc = _cli(tmp_path, result)
    assert proc.returncode == 1 and "refused: p99 260 ms over the 200 ms limit" in proc.stdout
    # nothing of the frontend changes, and its step stays the model's (5x its minimum): no diff
    assert "stacks/Pulumi.prod.yaml already holds these settings" in proc.stdout


def test_the_diff_loads_keeps_the_comments_and_write_applies_it(tmp_path):
    proc = _cli(tmp_path, PROD_RUN)
    assert proc.returncode == 0, proc.stderr
    diff = proc.stdout[proc.stdout.index("--- a/stacks/Pulumi.prod.yaml"):]
    assert "-      maxReplicas: 30\n" in diff and "+      maxReplicas: 7\n" in diff
    assert "-      requestsPerSecondTarget: 25\n+      requestsPerSecondTarget: 21\n" in diff
    assert "-    headroom: {replicas: 18, cpuMillicores: 1000, memoryMib: 2048}\n" \
           "+    headroom: {replicas: 16, cpuMillicores: 1000, memoryMib: 2048}\n" in diff
    stack = tmp_path / "stacks" / "Pulumi.prod.yaml"
    assert stack.read_text() == (REPO / "stacks" / "Pulumi.prod.yaml").read_text()  # advice only
    assert _cli(tmp_path, PROD_RUN, "--write").returncode == 0
    written = parse("prod", load_stack_file("prod", stack.parent).config)
    front = written.apps["frontend"]
    assert (front.min_replicas, front.max_replicas, front.requests_per_second_target) == (2, 7, 21.0)
    assert written.cluster.headroom.replicas == 16
    lines = set(stack.read_text().splitlines())
    assert {line for line in (REPO / "stacks" / "Pulumi.prod.yaml").read_text().splitlines()
            if line.lstrip().startswith("#")} <= lines  # every comment kept
    again = _cli(tmp_path, PROD_RUN)
    assert again.returncode == 0 and "already holds these settings" in again.stdout


@pytest.mark.parametrize("result, error", [
    ({"hold_seconds": 600, "endpoints": {"/": {"requests": 10, "failures": 0, "rps": 1.0, "p99_ms": 50}}},
     "the replicas frontend ran during the hold are not recorded: give --pods frontend=<replicas>"),
    ({"endpoints": {}}, "not a load-test result: missing hold_seconds"),
    ({"hold_seconds": 600, "endpoints": {"/_next/static/a.js": {"requests": 10, "failures": 0, "rps": 1.0,
                                                                 "p99_ms": 5}}},
     "no request of the hold reached an app's pods"),
])
def test_an_unusable_result_is_a_one_line_error(tmp_path, result, error):
    proc = _cli(tmp_path, result)
    assert proc.returncode == 2 and error in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_pods_on_the_command_line_complete_the_result(tmp_path):
    result = json.loads(PROD_RUN.read_text())
    del result["pods"]
    proc = _cli(tmp_path, result, "--pods", "frontend=6,backend=4")
    assert proc.returncode == 0 and "+      maxReplicas: 7" in proc.stdout
    bad = _cli(tmp_path, result, "--pods", "frontend=six")
    assert bad.returncode == 2 and "'frontend=six' is not <app>=<replicas>" in bad.stderr
    missing = _cli(tmp_path, tmp_path / "nothing.json")
    assert missing.returncode == 2 and "no load-test result there" in missing.stderr


def test_set_key_edits_block_and_flow_mappings_and_adds_missing_keys():
    text = ("config:\n  cofounder:apps:\n    web:\n      port: 80   # the app's port\n"
            "  cofounder:cluster:\n    headroom: {cpuMillicores: 500}\n")
    out = tune.set_key(text, ["cofounder:apps", "web", "port"], 8080)
    assert "      port: 8080   # the app's port\n" in out
    out = tune.set_key(out, ["cofounder:apps", "web", "maxReplicas"], 9)
    out = tune.set_key(out, ["cofounder:apps", "api", "minReplicas"], 3)
    out = tune.set_key(out, ["cofounder:cluster", "headroom", "replicas"], 4)
    out = tune.set_key(out, ["cofounder:cluster", "headroom", "cpuMillicores"], 750)
    import yaml
    assert yaml.safe_load(out)["config"] == {
        "cofounder:apps": {"web": {"port": 8080, "maxReplicas": 9}, "api": {"minReplicas": 3}},
        "cofounder:cluster": {"headroom": {"replicas": 4, "cpuMillicores": 750}}}
