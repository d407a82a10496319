"""Load test for the scaling plan's first success criterion: 5x peak traffic without degradation.

Ramps to ``peak users x multiplier`` concurrent users (each paced so the total approaches
``peak RPS x multiplier``), holds that load, then stops on its own. The run fails (exit code 1)
when the client-side p99 exceeds ``--p99-ms`` (the stack's ``p99LatencyMs``, else 200, the
seed's target) or more than
``--max-failure-ratio`` of requests fail.

Peak figures come from the command line, or from ``cofounder:scaling`` in the stack file when
``--stack`` is given (``peakUsers``, ``peakRps``, ``peakMultiplier``, ``p99LatencyMs``); the multiplier defaults
to 5. Command-line values win. The target is the stack's public URL (its ``url`` output: CloudFront,
so every request takes the real path through the edge, the ALB and the pods) unless ``--host``
names another.

    locust -f loadtest/locustfile.py --headless --stack prod \
        --peak-users 200 --peak-rps 400 --ramp-seconds 120 --hold-seconds 600 --paths /,/api/health

Watch the "CoFounder / Requests and latency" and "CoFounder / Autoscaling" dashboards while it
runs: server-side p99 per service, HPA replicas rising, pending pods clearing within 60 s.
"""

from __future__ import annotations

import math
import random

from locust import HttpUser, LoadTestShape, between, constant_throughput, events, task
from peaks import stack_scaling, stack_url  # locust puts this file's folder on sys.path

DEFAULT_MULTIPLIER = 5.0
DEFAULT_P99_MS = 200.0  # the seed's target


@events.init_command_line_parser.add_listener
def _arguments(parser):
    group = parser.add_argument_group("CoFounder 5x-peak test")
    group.add_argument("--stack", default="", help="read peakUsers/peakRps/peakMultiplier from "
                       "cofounder:scaling in stacks/Pulumi.<stack>.yaml")
    group.add_argument("--peak-users", type=int, default=None, help="today's peak concurrent users")
    group.add_argument("--peak-rps", type=float, default=None, help="today's peak requests per second")
    group.add_argument("--multiplier", type=float, default=None,
                       help=f"load factor over peak (stack's peakMultiplier, else {DEFAULT_MULTIPLIER:g})")
    group.add_argument("--p99-ms", type=float, default=None,
                       help="fail when p99 exceeds this (stack's p99LatencyMs, else 200)")
    group.add_argument("--max-failure-ratio", type=float, default=0.01, help="fail above this error share")
    group.add_argument("--ramp-seconds", type=float, default=60.0, help="time to reach the target load")
    group.add_argument("--hold-seconds", type=float, default=300.0, help="time to hold the target load")
    group.add_argument("--paths", default="/", help="comma-separated GET paths, picked at random")


class Plan:
    """The resolved test plan (set once the options are parsed)."""

    users = 1
    rps: float | None = None
    multiplier = DEFAULT_MULTIPLIER
    paths: list[str] = ["/"]


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
    peak_users = options.peak_users or scaling.get("peakUsers")
    peak_rps = options.peak_rps or scaling.get("peakRps")
    multiplier = options.multiplier or scaling.get("peakMultiplier") or DEFAULT_MULTIPLIER
    options.p99_ms = float(options.p99_ms or scaling.get("p99LatencyMs") or DEFAULT_P99_MS)
    if not peak_users:
        raise SystemExit("give --peak-users (or cofounder:scaling.peakUsers with --stack)")
    Plan.multiplier = float(multiplier)
    Plan.users = max(1, math.ceil(int(peak_users) * Plan.multiplier))
    Plan.rps = float(peak_rps) * Plan.multiplier if peak_rps else None
    Plan.paths = [p.strip() for p in options.paths.split(",") if p.strip()]
    # Each user paces itself so that all of them together offer the target request rate.
    CofounderUser.wait_time = (constant_throughput(Plan.rps / Plan.users) if Plan.rps
                               else between(0.5, 1.5))
    print(f"plan: {Plan.users} users ({peak_users} x {Plan.multiplier:g}), "
          f"target {Plan.rps or 'unpaced'} rps, p99 limit {options.p99_ms:g} ms", flush=True)


class CofounderUser(HttpUser):
    wait_time = between(0.5, 1.5)

    @task
    def get_page(self):
        path = random.choice(Plan.paths)
        self.client.get(path, name=path)


class PeakShape(LoadTestShape):
    """Ramp to the target users, hold, stop."""

    def tick(self):
        options = self.runner.environment.parsed_options
        elapsed = self.get_run_time()
        ramp, hold = options.ramp_seconds, options.hold_seconds
        if elapsed >= ramp + hold:
            return None
        users = Plan.users if elapsed >= ramp else max(1, math.ceil(Plan.users * elapsed / ramp))
        return users, max(1.0, Plan.users / max(ramp, 1.0))


@events.quitting.add_listener
def _verdict(environment, **_kwargs):
    options = environment.parsed_options
    total = environment.stats.total
    if total.num_requests == 0:
        print("verdict: FAIL, no requests were made", flush=True)
        environment.process_exit_code = 1
        return
    p99 = total.get_response_time_percentile(0.99)
    failures = total.fail_ratio
    ok = p99 <= options.p99_ms and failures <= options.max_failure_ratio
    print(f"verdict: {'PASS' if ok else 'FAIL'}, p99 {p99:g} ms (limit {options.p99_ms:g}), "
          f"failures {failures:.2%} (limit {options.max_failure_ratio:.2%}), "
          f"{total.num_requests} requests, {total.total_rps:.1f} rps achieved"
          f"{f' of {Plan.rps:g} targeted' if Plan.rps else ''}", flush=True)
    environment.process_exit_code = 0 if ok else 1
