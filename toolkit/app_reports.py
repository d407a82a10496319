"""Reports on the app tier: time-to-scale of every app autoscaler under the peak load.

Computed from the captured HPA / KEDA ScaledObject and headroom placeholder inputs (what the
program declares) by ``capacity/scale_up.py`` ``evaluate`` -- the same function the pack's
``capacity-time-to-scale`` rule calls -- with the targets of ``cofounder:scaling`` (the
``scalingTargets`` stack output).
"""

from __future__ import annotations

from capacity.scale_up import HPA_KIND, SCALED_OBJECT_KIND, Autoscaled, ScalingTargets, autoscaled, evaluate
from toolkit.cluster_reports import headroom_figures
from toolkit.cost_reports import stack_burst
from toolkit.harness import Program, reveal

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def autoscaled_apps(program: Program) -> list[Autoscaled]:
    """Every HPA-like object in the program with the Deployment it scales."""
    return autoscaled([reveal(d.inputs) for d in program.of_type(DEPLOYMENT)],
                      [(r.name, kind, reveal(r.inputs))
                       for kind, type_ in ((HPA_KIND, HPA), (SCALED_OBJECT_KIND, SCALED_OBJECT))
                       for r in program.of_type(type_)])


def scaling_targets(program: Program) -> ScalingTargets:
    """The stack's ``cofounder:scaling`` targets, as the program exports them."""
    return ScalingTargets.from_camel(program.outputs.get("scalingTargets") or {})


def time_to_scale_report(program: Program) -> dict | None:
    found = autoscaled_apps(program)
    if not found:
        return None
    t = scaling_targets(program)
    verdict = evaluate(found, t, [f for _, f in headroom_figures(program)])
    burst = stack_burst(program)
    ready = burst.ready_seconds() if burst else {}
    rows = []
    for app in verdict.apps:
        result, decided = app.result, app.result.decided_at_seconds
        rows.append({
            "app": app.autoscaled.app, "autoscaler": app.autoscaled.kind, "min": result.min_replicas,
            "max": result.max_replicas, "baseline": result.baseline_replicas, "needed": result.needed_replicas,
            "steps (s:replicas)": " ".join(f"{s}:{n}" for s, n in result.steps) or "-",
            "first step": f"+{result.first_step_pods} @ {result.first_step_seconds}s" if result.steps else "-",
            "decided": "never" if decided is None else f"{decided}s",
            # End to end, from the burst simulation: free room, headroom or a new node, then start-up.
            "pods ready": _seconds(ready.get(app.autoscaled.app), burst is not None),
            "goal": "-" if app.goal_seconds is None else f"{app.goal_seconds}s",
            "ok": app.ok and (burst is None or _in_time(ready.get(app.autoscaled.app), t.ready_goal_seconds)),
        })
    notes = [
        f"Load steps at t=0 to {t.peak_multiplier:g}x the baseline (the replicas at today's peak, default "
        "minReplicas), starting from minReplicas. HPA syncs every 15 s from the first one after "
        f"the metric lag ({t.metric_lag_seconds} s); desired = ceil(current x metric/target), "
        "0.1 tolerance, scale-up stabilization, policies per period with selectPolicy, capped by maxReplicas.",
        f"'decided' is when the HPA has asked for the needed replicas; 'pods ready' is when they are Ready "
        f"(the burst report: {t.pod_startup_seconds} s start-up after a place on a node), within "
        f"readyGoalSeconds ({t.ready_goal_seconds} s) for every app. Goal apps must decide within "
        f"{t.time_to_scale_goal_seconds} s; every app's first step must come within {t.scale_up_within_seconds} s.",
    ]
    pods = verdict.first_step_pods
    first = (f"First step of all apps at once: {len(pods)} pods, {sum(c for c, _ in pods)}m CPU, "
             f"{sum(m for _, m in pods)}Mi; ")
    room = " + ".join(f"{h.replicas} x {h.cpu_millicores}m/{h.memory_mib}Mi" for h in verdict.headroom)
    notes.append(first + (f"pre-warmed headroom {room}: " if room else "no pre-warmed headroom declared: ")
                 + ("covered, they start on running nodes." if verdict.covered else
                    "NOT covered: the rest waits for a new node (60-120 s)."
                    + ("" if t.require_headroom_coverage else
                       " This stack does not require coverage (requireHeadroomCoverage: false).")))
    return {"title": "Time to scale to the peak (HPA behavior as declared)", "rows": rows,
            "notes": notes, "ok": verdict.ok and (burst is None or burst.ok)}


def _in_time(ready: int | None, goal: int) -> bool:
    return ready is not None and ready <= goal


def _seconds(value: int | None, simulated: bool) -> str:
    if not simulated:
        return "-"
    return "never" if value is None else f"{value}s"
