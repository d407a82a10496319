"""Load test for the scaling plan's first success criterion: 5x peak traffic without degradation.

Ramps to ``peak users x multiplier`` concurrent users, each paced so that together they offer
``peak RPS x multiplier`` (the target rate), holds that load, then stops on its own. Only the hold
counts: the statistics are reset when the ramp ends, so the p99, the failures and the achieved
rate are those of the full load, never diluted by the ramp. The run fails (exit code 1) when

- the achieved rate over the hold is below ``--min-rate-share`` (95 %) of the target: the test
  did not offer 5x, so it proves nothing about 5x (if the stack kept up, the load generator was
  the limit: run more workers, ``--processes``);
- the hold's client-side p99 exceeds ``--p99-ms`` (the stack's ``p99LatencyMs``, 200 by default);
- more than ``--max-failure-ratio`` of the hold's requests fail.

Peak figures come from ``cofounder:scaling`` in the stack file with ``--stack`` (``peakUsers``,
``peakRps``, ``peakMultiplier``, ``p99LatencyMs``, typed and bounded by ``ScalingSettings`` in
capacity/scale_up.py); command-line values win. The target is the stack's public URL (its ``url``
output: CloudFront, so every request takes the real path through the edge, the ALB and the pods)
unless ``--host`` names another.

The result is written as JSON to ``--result-json`` (default ``build/loadtest/<stack>.json``; locust
itself owns ``--json``), the input of the HPA tuning (``make tune``). Its shape is a contract: keys
may be added, never renamed:
``{"stack", "target_rps", "achieved_rps", "achieved_share", "hold_seconds", "users", "verdict",
"pods": {<app>: <replicas during the hold>}, "endpoints": {<name>: {"requests", "failures", "rps",
"p50_ms", "p95_ms", "p99_ms"}}}``. ``pods`` is what ``--pods`` says (empty without it): the
tuner divides an app's rate by it, so a capacity run pins each app's replicas (minReplicas =
maxReplicas) and names them.

    locust -f loadtest/locustfile.py --headless --stack prod --ramp-seconds 120 --hold-seconds 600 \
        --paths /,/api/health
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from locust import HttpUser, LoadTestShape, constant_throughput, events, task
from peaks import REPO, parse_pods, stack_scaling, stack_url  # locust puts this file's folder on sys.path

DEFAULT_MIN_RATE_SHARE = 0.95


@events.init_command_line_parser.add_listener
def _arguments(parser):
    group = parser.add_argument_group("CoFounder 5x-peak test")
    group.add_argument("--stack", default="", help="read peakUsers/peakRps/peakMultiplier/p99LatencyMs from "
                       "cofounder:scaling in stacks/Pulumi.<stack>.yaml")
    group.add_argument("--peak-users", type=int, default=None, help="today's peak concurrent users")
    group.add_argument("--peak-rps", type=float, default=None, help="today's peak requests per second")
    group.add_argument("--multiplier", type=float, default=None,
                       help="load factor over peak (the stack's peakMultiplier, 5 by default)")
    group.add_argument("--p99-ms", type=float, default=None,
                       help="fail when the hold's p99 exceeds this (the stack's p99LatencyMs, 200 by default)")
    group.add_argument("--max-failure-ratio", type=float, default=0.01, help="fail above this error share")
    group.add_argument("--min-rate-share", type=float, default=DEFAULT_MIN_RATE_SHARE,
                       help="fail when the hold's achieved rate is below this share of the target")
    group.add_argument("--ramp-seconds", type=float, default=60.0, help="time to reach the target load")
    group.add_argument("--hold-seconds", type=float, default=300.0, help="time to hold the target load")
    group.add_argument("--paths", default="/", help="comma-separated GET paths, picked at random")
    group.add_argument("--result-json", default="", help="where to write the result (default "
                       "build/loadtest/<stack>.json); locust itself owns --json and --json-file")
    group.add_argument("--pods", default="", help="the replicas each app ran during the hold, e.g. "
                       "frontend=6,backend=4 (kubectl get deploy); recorded for make tune's per-pod capacity")


class Plan:
    """The resolved test plan (set once the options are parsed) and the hold's measurements."""

    stack = ""
    users = 1
    rps = 1.0
    paths: list[str] = ["/"]
    pods: dict[str, int] = {}
    hold_started: float | None = None
    result: dict | None = None


@events.init.add_listener
def _plan(environment, **_kwargs):
    options = environment.parsed_options
    if options is None:
        return
    scaling = stack_scaling(options.stack)
    if not environment.host:
        if not options.stack:
            raise SystemExit("give --host, or --stack to test the stack's public URL")
        environment.host = stack_url(options.stack)
    peak_users = options.peak_users or scaling.peak_users
    peak_rps = options.peak_rps or scaling.peak_rps
    multiplier = float(options.multiplier or scaling.peak_multiplier)
    options.p99_ms = float(options.p99_ms or scaling.p99_latency_ms)
    if not peak_users or not peak_rps:
        raise SystemExit("give --peak-users and --peak-rps (or cofounder:scaling.peakUsers and peakRps with --stack)")
    Plan.stack = options.stack or "adhoc"
    Plan.users = max(1, math.ceil(int(peak_users) * multiplier))
    Plan.rps = float(peak_rps) * multiplier
    Plan.paths = [p.strip() for p in options.paths.split(",") if p.strip()]
    Plan.pods = _pods(options.pods)
    # Each user paces itself so that all of them together offer the target request rate.
    CofounderUser.wait_time = constant_throughput(Plan.rps / Plan.users)
    print(f"plan: {Plan.users} users ({peak_users} x {multiplier:g}), target {Plan.rps:g} rps, "
          f"p99 limit {options.p99_ms:g} ms, pass at {options.min_rate_share:.0%} of the target rate", flush=True)


def _pods(text: str) -> dict[str, int]:
    """``--pods`` as a mapping; a malformed entry stops the run before any load."""
    try:
        return parse_pods(text)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


class CofounderUser(HttpUser):
    wait_time = constant_throughput(1)

    @task
    def get_page(self):
        path = random.choice(Plan.paths)
        self.client.get(path, name=path)


def _endpoint(entry, seconds: float) -> dict:
    return {"requests": entry.num_requests, "failures": entry.num_failures,
            "rps": round(entry.num_requests / seconds, 3) if seconds else 0.0,
            **{f"p{q}_ms": float(entry.get_response_time_percentile(q / 100) or 0) for q in (50, 95, 99)}}


def hold_result(stats, seconds: float) -> dict:
    """The hold's figures (the stats were reset when it began), in the JSON contract's shape."""
    total = stats.total
    achieved = total.num_requests / seconds if seconds else 0.0
    return {"stack": Plan.stack, "target_rps": Plan.rps, "achieved_rps": round(achieved, 3),
            "achieved_share": round(achieved / Plan.rps, 4), "hold_seconds": round(seconds, 3), "users": Plan.users,
            "requests": total.num_requests, "failures": total.num_failures,
            "p99_ms": float(total.get_response_time_percentile(0.99) or 0), "pods": dict(Plan.pods),
            "endpoints": {name: _endpoint(entry, seconds) for (name, _method), entry in sorted(stats.entries.items())}}


class PeakShape(LoadTestShape):
    """Ramp to the target users, reset the statistics, hold, take the hold's figures, stop."""

    def tick(self):
        options = self.runner.environment.parsed_options
        elapsed = self.get_run_time()
        if elapsed < options.ramp_seconds:
            return max(1, math.ceil(Plan.users * elapsed / options.ramp_seconds)), self._rate(options)
        now = time.monotonic()
        if Plan.hold_started is None:
            self.runner.stats.reset_all()  # the hold alone is measured
            Plan.hold_started = now
        if now - Plan.hold_started >= options.hold_seconds:
            if Plan.result is None:
                Plan.result = hold_result(self.runner.stats, now - Plan.hold_started)
            return None
        return Plan.users, self._rate(options)

    @staticmethod
    def _rate(options) -> float:
        return max(1.0, Plan.users / max(options.ramp_seconds, 1.0))


@events.quitting.add_listener
def _verdict(environment, **_kwargs):
    options = environment.parsed_options
    result = Plan.result
    if result is None or result["requests"] == 0:
        print("verdict: FAIL, no requests were made during the hold", flush=True)
        environment.process_exit_code = 1
        return
    failures = result["failures"] / result["requests"]
    reasons = []
    if result["achieved_share"] < options.min_rate_share:
        reasons.append(f"achieved {result['achieved_rps']:.1f} rps is below {options.min_rate_share:.0%} of "
                       f"the {Plan.rps:g} rps targeted: the test did not offer the load it claims")
    if result["p99_ms"] > options.p99_ms:
        reasons.append(f"hold p99 {result['p99_ms']:g} ms is over the {options.p99_ms:g} ms limit")
    if failures > options.max_failure_ratio:
        reasons.append(f"failures {failures:.2%} are over the {options.max_failure_ratio:.2%} limit")
    result["verdict"] = "FAIL" if reasons else "PASS"
    path = Path(options.result_json) if options.result_json else REPO / "build" / "loadtest" / f"{Plan.stack}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"verdict: {result['verdict']}, hold {result['hold_seconds']:g} s: {result['achieved_rps']:.1f} rps "
          f"achieved of {Plan.rps:g} targeted ({result['achieved_share']:.1%}), p99 {result['p99_ms']:g} ms "
          f"(limit {options.p99_ms:g}), failures {failures:.2%} (limit {options.max_failure_ratio:.2%}), "
          f"{result['requests']} requests; result in {path}", flush=True)
    for reason in reasons:
        print(f"  FAIL: {reason}", flush=True)
    environment.process_exit_code = 1 if reasons else 0
