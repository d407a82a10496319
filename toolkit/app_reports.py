"""Reports on the app tier: time-to-scale of every app autoscaler under the peak load.

Computed from the captured HPA / KEDA ScaledObject inputs (what the program declares) with the
pure arithmetic of ``capacity/hpa.py``, the targets of ``cofounder:scaling`` (the ``scalingTargets``
stack output) and the pre-warmed headroom the EKS platform exports as the
``headroom`` stack output.
"""

from __future__ import annotations

import json

from capacity.hpa import hpa_spec_from_scaled_object, pod_requests, time_to_scale
from toolkit.harness import Program, reveal
from toolkit.reports import report

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SCALING_DEFAULTS = {"peakMultiplier": 5, "timeToScaleGoalSeconds": 45, "scaleUpWithinSeconds": 60,
                    "metricLagSeconds": 15, "podStartupSeconds": 30, "baselineReplicas": {},
                    "goalApps": ["backend", "worker"], "requireHeadroomCoverage": True}


def autoscaled(program: Program) -> list[tuple[str, str, dict, dict]]:
    """``(deployment, kind, hpa spec, pod spec)`` for every HPA-like object in the program."""
    deployments = {}
    for dep in program.of_type(DEPLOYMENT):
        inputs = reveal(dep.inputs)
        meta = inputs.get("metadata", {})
        deployments[(meta.get("namespace"), meta.get("name"))] = inputs["spec"]["template"]["spec"]
    found = []
    for kind, type_ in (("HorizontalPodAutoscaler", HPA), ("ScaledObject", SCALED_OBJECT)):
        for r in program.of_type(type_):
            inputs = reveal(r.inputs)
            spec = inputs["spec"] if kind == "HorizontalPodAutoscaler" else hpa_spec_from_scaled_object(inputs["spec"])
            target = spec["scaleTargetRef"]["name"]
            pod = deployments.get((inputs.get("metadata", {}).get("namespace"), target), {})
            found.append((target, kind, spec, pod))
    return sorted(found)


def scaling_targets(program: Program) -> dict:
    """The stack's ``cofounder:scaling`` targets, as the program exports them."""
    return {**SCALING_DEFAULTS, **{k: v for k, v in (program.outputs.get("scalingTargets") or {}).items()
                                   if v is not None}}


def pack_into_headroom(pods: list[tuple[int, int]], headroom: dict) -> bool:
    """Whether pods ``(cpu m, memory MiB)`` fit the placeholders, first-fit decreasing.

    A pod only takes the room of placeholders on one node, so each pod must fit inside one
    placeholder's remaining share; several small pods may share one placeholder.
    """
    slots = [[int(headroom["cpuMillicores"]), int(headroom["memoryMib"])]
             for _ in range(int(headroom["replicas"]))]
    for cpu, mem in sorted(pods, reverse=True):
        slot = next((s for s in slots if s[0] >= cpu and s[1] >= mem), None)
        if slot is None:
            return False
        slot[0] -= cpu
        slot[1] -= mem
    return True


@report("time-to-scale")
def time_to_scale_report(program: Program) -> dict | None:
    found = autoscaled(program)
    if not found:
        return None
    t = scaling_targets(program)
    headroom = program.outputs.get("headroom")
    rows, first_step_pods, ok = [], [], True
    for app, kind, spec, pod in found:
        result = time_to_scale(spec, baseline_replicas=t["baselineReplicas"].get(app),
                               peak_multiplier=t["peakMultiplier"], metric_lag_seconds=t["metricLagSeconds"])
        cpu, mem = pod_requests(pod) if pod else (0, 0)
        first_step_pods += [(cpu, mem)] * result.first_step_pods
        goal = app in t["goalApps"]
        decided = result.decided_at_seconds
        app_ok = (not result.capped_by_max and decided is not None
                  and (result.first_step_seconds or 0) <= t["scaleUpWithinSeconds"]
                  and (not goal or decided <= t["timeToScaleGoalSeconds"]))
        ok = ok and app_ok
        rows.append({
            "app": app, "autoscaler": kind, "min": result.min_replicas, "max": result.max_replicas,
            "baseline": result.baseline_replicas, "needed": result.needed_replicas,
            "steps (s:replicas)": " ".join(f"{s}:{n}" for s, n in result.steps) or "-",
            "first step": f"+{result.first_step_pods} @ {result.first_step_seconds}s" if result.steps else "-",
            "decided": "never" if decided is None else f"{decided}s",
            "pods ready": "-" if decided is None else f"{decided + t['podStartupSeconds']}s",
            "goal": f"{t['timeToScaleGoalSeconds']}s" if goal else "-",
            "ok": app_ok,
        })
    notes = [
        f"Load steps at t=0 to {t['peakMultiplier']}x the baseline (the replicas at today's peak, default "
        "minReplicas), starting from minReplicas. HPA syncs every 15 s from the first one after "
        f"the metric lag ({t['metricLagSeconds']} s); desired = ceil(current x metric/target), "
        "0.1 tolerance, scale-up stabilization, policies per period with selectPolicy, capped by maxReplicas.",
        f"'decided' is when the HPA has asked for the needed replicas; 'pods ready' adds "
        f"{t['podStartupSeconds']} s of pod start-up. Goal apps must decide within "
        f"{t['timeToScaleGoalSeconds']} s; every app's first step must come within {t['scaleUpWithinSeconds']} s.",
    ]
    cpu_total = sum(c for c, _ in first_step_pods)
    mem_total = sum(m for _, m in first_step_pods)
    if headroom:
        covered = pack_into_headroom(first_step_pods, headroom)
        ok = ok and (covered or not t["requireHeadroomCoverage"])
        notes.append(f"First step of all apps at once: {len(first_step_pods)} pods, {cpu_total}m CPU, "
                     f"{mem_total}Mi; pre-warmed headroom {headroom['replicas']} x "
                     f"{headroom['cpuMillicores']}m/{headroom['memoryMib']}Mi: "
                     + ("covered, they start on running nodes." if covered else
                        "NOT covered: the rest waits for a new node (60-120 s)."
                        + ("" if t["requireHeadroomCoverage"] else
                           " This stack does not require coverage (requireHeadroomCoverage: false).")))
    else:
        notes.append(f"First step of all apps at once: {len(first_step_pods)} pods, {cpu_total}m CPU, "
                     f"{mem_total}Mi; no 'headroom' stack output, so coverage is not checked.")
    return {"title": "Time to scale to the peak (HPA behavior as declared)", "rows": rows,
            "notes": notes, "ok": ok}
