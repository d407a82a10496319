"""``make bench``: what the offline preview costs, against the SDK's own floor.

For every stack, and for a synthetic stack with many components, times the offline preview
(the program under the mocks, the reports and the snapshot: what ``make preview`` and
``make diff`` do per stack) and the SDK's bare registration of the same number of resources
(bare ``pulumi.CustomResource``, and ``aws.s3.Bucket``) under the same mocks, and prints them
with their ratio. The ratio is the overhead of the program and the toolkit over what the SDK
needs anyway; the bare floor is
the part no change to this repository can remove.

With ``--suite`` (``make bench`` passes it) it also times the whole test suite as ``make test``
runs it against one ``make preview STACK=prod`` on the same machine in the same run, and prints
their ratio: the goal is a suite within ``SUITE_GOAL`` times one preview, so the feedback loop
stays a few previews long as the repository grows.

Usage: ``python -m toolkit.bench [--stacks dev,staging,prod] [--synthetic 20] [--repeat 3] [--split] [--suite]``
Timings are the best of ``--repeat`` runs, so a busy machine inflates them less.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_aws as aws

from toolkit import snapshot
from toolkit.harness import Program, run, run_stack
from toolkit.reports import build_reports
from toolkit.stackfile import REPO, stack_names

#: The test suite's wall time may be at most this many times one ``make preview STACK=prod``.
SUITE_GOAL = 20
#: What ``make preview STACK=prod`` and ``make test`` run (the Makefile's recipes, without make).
PREVIEW_PROD = [sys.executable, "-m", "toolkit.preview", "--stack", "prod", "--out", str(REPO / "build" / "bench")]
SUITE = ["make", "--no-print-directory", "test"]


def synthetic(units: int) -> Callable[[], Program]:
    """A stack of ``units`` app services (AppService: Deployment, Service, HPA, PDB, service
    account), the block that grows as the product adds services, on one Kubernetes provider."""
    import pulumi_kubernetes as k8s

    from components.app_service import AppService, AppServiceArgs

    def program():
        provider = k8s.Provider("bench-k8s")
        opts = pulumi.ResourceOptions(providers={"kubernetes": provider})
        for i in range(units):
            AppService(f"svc{i}", AppServiceArgs(
                namespace="cofounder", image=f"ghcr.io/cofounder/svc{i}:1.0.0",
                active_agents_target=5.0), opts=opts)
    return lambda: run(program, stack="bench")


def bare(count: int, kind: str = "plain") -> Callable[[], Program]:
    """The SDK's floor: ``count`` resources registered under the same mocks, nothing else.

    ``plain``: bare ``pulumi.CustomResource`` with one input (the SDK's own cost per resource);
    ``bucket``: ``aws.s3.Bucket`` with no inputs (a provider class, whose dozens of declared
    output properties cost several times more per resource than a plain one).
    """
    def program():
        for i in range(count):
            if kind == "bucket":
                aws.s3.Bucket(f"bare-{i}")
            else:
                pulumi.CustomResource("cofounder:bench:Plain", f"bare-{i}", {"index": i})
    return lambda: run(program, stack="bench")


def _preview(make: Callable[[], Program]) -> Callable[[], Program]:
    def go() -> Program:
        program = make()
        snapshot.dumps(snapshot.build(program, build_reports(program)))
        return program
    return go


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def measure(stacks: list[str], units: int, repeat: int) -> list[dict]:
    cases = [(s, _preview(functools.partial(run_stack, s))) for s in stacks]
    if units:
        cases.append((f"synthetic x{units}", _preview(synthetic(units))))
    rows = []
    for name, fn in cases:
        seconds, program = best_of(fn, repeat)
        count = len(program.resources)
        plain, _ = best_of(bare(count), repeat)
        bucket, _ = best_of(bare(count, "bucket"), repeat)
        rows.append({"case": name, "resources": count, "preview_s": seconds, "plain_s": plain,
                     "bucket_s": bucket, "ratio": seconds / plain, "ratio_bucket": seconds / bucket,
                     "program": program})
    return rows


def model_costs(programs: dict[str, Program], repeat: int) -> list[dict]:
    """Per stack program: the cost model and the burst simulation (both reports), and one chart drawing."""
    from toolkit import burst_chart, cost_reports

    rows = []
    for stack, program in programs.items():

        def reports(p: Program = program) -> tuple:
            return cost_reports.cost_report(p), cost_reports.burst_report(p)

        model, (_, burst) = best_of(reports, repeat)
        chart = 0.0
        if burst:
            chart = best_of(functools.partial(burst_chart.svg, stack, burst["data"]), 1)[0]
        rows.append({"stack": stack, "model_s": model, "chart_s": chart})
    return rows


def model_line(rows: list[dict]) -> str:
    parts = ", ".join(f"{r['stack']} {r['model_s'] * 1000:.0f} ms" for r in rows)
    charts = ", ".join(f"{r['stack']} {r['chart_s']:.2f} s" for r in rows)
    return (f"cost model + burst simulation (both reports, in every preview above): {parts}; burst chart "
            f"(matplotlib, drawn only when the burst changed; the first includes loading matplotlib): {charts}")


def table(rows: list[dict]) -> str:
    lines = [f"{'case':<16} {'resources':>9} {'preview s':>10} {'plain s':>8} {'ratio':>6} "
             f"{'Bucket s':>9} {'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['case']:<16} {r['resources']:>9} {r['preview_s']:>10.2f} "
                     f"{r['plain_s']:>8.2f} {r['ratio']:>6.2f} {r['bucket_s']:>9.2f} "
                     f"{r['ratio_bucket']:>6.2f}")
    return "\n".join(lines)


def _wall(cmd: list[str]) -> float:
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stdout + res.stderr)[-3000:]
        raise SystemExit(f"error: {' '.join(cmd)} failed (exit {res.returncode}):\n{tail}")
    return time.perf_counter() - start


def suite_ratio(preview: list[str] = PREVIEW_PROD, suite: list[str] = SUITE, previews: int = 3) -> dict:
    """Wall times of the suite (once) and of the preview (median of ``previews`` runs, two before
    the suite and the rest after, so both see the same machine), and their ratio."""
    before = [_wall(preview) for _ in range(min(2, previews))]
    suite_s = _wall(suite)
    times = before + [_wall(preview) for _ in range(previews - len(before))]
    preview_s = statistics.median(times)
    return {"suite_s": suite_s, "preview_s": preview_s, "previews": len(times), "ratio": suite_s / preview_s,
            "ok": suite_s / preview_s <= SUITE_GOAL}


#: The packages whose import is the SDK's cost, not this repository's (their own dependencies too).
SDK_PACKAGES = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_random", "grpc", "google")


def sdk_modules() -> list[str]:
    """The SDK modules this process has imported (after a preview: those the program needs)."""
    return sorted(name for name in list(sys.modules) if name.split(".")[0] in SDK_PACKAGES)


def preview_split(modules: list[str], preview: list[str] = PREVIEW_PROD, repeat: int = 3) -> dict:
    """``make preview STACK=prod``'s wall time and, in a fresh interpreter, the import of the SDK
    modules it loads: the part no change here removes. Best of ``repeat`` each."""
    code = ("import importlib\nfor m in " + repr(modules) + ":\n    try:\n        importlib.import_module(m)\n"
            "    except Exception:\n        pass\n")
    preview_s = min(_wall(preview) for _ in range(repeat))
    sdk_s = min(_wall([sys.executable, "-c", code]) for _ in range(repeat))
    return {"preview_s": preview_s, "sdk_import_s": sdk_s, "project_s": max(0.0, preview_s - sdk_s),
            "modules": len(modules)}


def split_line(r: dict) -> str:
    return (f"make preview STACK=prod: {r['preview_s']:.2f} s wall = SDK imports {r['sdk_import_s']:.2f} s "
            f"({r['modules']} modules of {', '.join(SDK_PACKAGES)}, in a fresh interpreter) + this repository's "
            f"work {r['project_s']:.2f} s (program, reports, burst, snapshot, its own imports)")


def suite_line(r: dict) -> str:
    verdict = "within" if r["ok"] else "ABOVE"
    return (f"test suite (make test): {r['suite_s']:.1f} s = {r['ratio']:.1f} x one make preview STACK=prod "
            f"({r['preview_s']:.2f} s, median of {r['previews']}), {verdict} the goal of {SUITE_GOAL} x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default=",".join(stack_names()))
    parser.add_argument("--synthetic", type=int, default=20, help="units in the synthetic stack (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--suite", action="store_true", help="also time make test against make preview STACK=prod")
    parser.add_argument("--split", action="store_true",
                        help="also split make preview STACK=prod into SDK imports and the rest (on with --suite)")
    args = parser.parse_args()
    rows = measure([s for s in args.stacks.split(",") if s], args.synthetic, args.repeat)
    print(table(rows))
    print("\npreview: program + reports + snapshot under the mocks. plain / Bucket: as many bare "
          "pulumi.CustomResource / aws.s3.Bucket registrations under the same mocks (the SDK's "
          f"floor); ratio = preview / that floor. Best of {args.repeat} runs.")
    stacks = [s for s in args.stacks.split(",") if s]
    if stacks:
        programs = {row["case"]: row["program"] for row in rows if row["case"] in stacks}
        print("\n" + model_line(model_costs(programs, args.repeat)))
    if args.split or args.suite:
        print("\n" + split_line(preview_split(sdk_modules(), repeat=args.repeat)))
    if args.suite:
        result = suite_ratio()
        print("\n" + suite_line(result))
        return 0 if result["ok"] else 1
    return 0


if __name__ == "__main__":
    from toolkit.errors import main_guard
    main_guard(main)
