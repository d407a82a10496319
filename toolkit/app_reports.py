"""Reports on the app tier: time-to-scale of every app autoscaler under the peak load, and the
agent queues the worker consumes.

Time to scale is computed from the captured HPA / KEDA ScaledObject and headroom placeholder
inputs (what the program declares) by ``capacity/scale_up.py`` ``evaluate`` -- the same function
the pack's ``capacity-time-to-scale`` rule calls -- with the targets of ``cofounder:scaling`` (the
``scalingTargets`` stack output). The agent-queues report reads the declared SQS queues, the
worker's ScaledObject (its triggers and scalingModifiers formula, through
``capacity/queue_scaling.py`` as the pack's rules do) and the ``cofounder-queue`` ConfigMap.
"""

from __future__ import annotations

import json

from capacity import queue_scaling
from capacity.numbers import plain
from capacity.scale_up import (
    DECISION_LAG_SECONDS,
    HPA_KIND,
    SCALED_OBJECT_KIND,
    Autoscaled,
    ScalingTargets,
    autoscaled,
    evaluate,
)
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
    ready = burst.p95_seconds() if burst else {}
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
            "pods ready (p95)": _seconds(ready.get(app.autoscaled.app), burst is not None),
            "goal": "-" if app.goal_seconds is None else f"{app.goal_seconds}s",
            "ok": app.ok and (burst is None or _in_time(ready.get(app.autoscaled.app), t.ready_goal_seconds)),
        })
    notes = [
        f"Load steps at t=0 to {t.peak_multiplier:g}x the baseline (the replicas at today's peak, default "
        "minReplicas), starting from minReplicas. HPA syncs every 15 s from the first one after "
        f"the metric lag (one metrics-server resolution, {DECISION_LAG_SECONDS} s, capacity/timings.yaml); "
        "desired = ceil(current x metric/target), "
        "0.1 tolerance, scale-up stabilization, policies per period with selectPolicy, capped by maxReplicas.",
        "'decided' is when the HPA has asked for the needed replicas; 'pods ready (p95)' is when they are Ready "
        "at the 95th percentile of the burst report's seeded draws (every timing from capacity/timings.yaml), within "
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
    return {"title": "Time to scale to the peak (HPA behavior as declared)", "key": ["app"], "rows": rows,
            "notes": notes, "ok": verdict.ok and (burst is None or burst.ok)}


QUEUE = "aws:sqs/queue:Queue"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def _agent_settings(program: Program) -> dict:
    """The ``AGENT_*`` data of the ConfigMap the apps load (``Queue.app_settings``), or {}."""
    for cm in program.of_type(CONFIG_MAP):
        data = reveal(cm.inputs).get("data") or {}
        if "AGENT_QUEUE_TIERS" in data:
            return data
    return {}


def _redrive(queue) -> dict:
    raw = reveal(queue.inputs).get("redrivePolicy")
    return json.loads(raw) if isinstance(raw, str) else (raw or {})


def _burst_example(rows: list[dict], weights: dict[str, float], spec: dict, per_pod: int) -> str:
    """A low-tier burst, then high-tier runs on top: what the composite asks for, and what the
    HPA's max over one metric per tier would ask for."""
    high, low = rows[0]["scaler trigger"], rows[-1]["scaler trigger"]
    lo, hi = int(spec.get("minReplicaCount") or 1), int(spec.get("maxReplicaCount") or 100)
    low_runs, high_runs = hi * per_pod // 2, 2 * per_pod
    alone = queue_scaling.desired_replicas({low: low_runs}, weights, per_pod, lo, hi)
    both = queue_scaling.desired_replicas({low: low_runs, high: high_runs}, weights, per_pod, lo, hi)
    per_metric = max(alone, min(hi, -(-high_runs // per_pod)))
    return (f"Example: {low_runs} {rows[-1]['tier']} runs ask for {alone} pods; {high_runs} {rows[0]['tier']} runs "
            f"on top ask for {both} (one metric per tier, the HPA's max, would stay at {per_metric} while the "
            f"{rows[-1]['tier']} runs hold every slot).")


def _scalers(program: Program) -> list[tuple[dict, dict, dict[str, float] | None]]:
    """Each ScaledObject's spec, its aws-sqs-queue triggers (queue URL -> trigger name) and the
    weights of its scalingModifiers formula (None without one, or of a shape not ours)."""
    found = []
    for so in program.of_type(SCALED_OBJECT):
        spec = reveal(so.inputs).get("spec") or {}
        urls = {(t.get("metadata") or {}).get("queueURL"): t.get("name")
                for t in spec.get("triggers") or [] if t.get("type") == "aws-sqs-queue"}
        text = ((spec.get("advanced") or {}).get("scalingModifiers") or {}).get("formula")
        found.append((spec, urls, queue_scaling.formula_weights(text) if text else None))
    return found


def _tier_rows(program: Program, queues: list, order: list[str], scalers: list) -> tuple[list[dict], bool]:
    by_arn = {q.outputs.get("arn"): q for q in program.of_type(QUEUE)}
    rows, ok = [], True
    for q in queues:
        inputs, url, redrive = reveal(q.inputs), q.outputs.get("url"), _redrive(q)
        tier = (inputs.get("tags") or {}).get("agent-tier") or inputs.get("name")
        dlq = by_arn.get(redrive.get("deadLetterTargetArn"))
        trigger, weights = next(((urls[url], w) for _, urls, w in scalers if url in urls), (None, None))
        weight = (weights or {}).get(trigger) if trigger else None
        ok = ok and trigger is not None and (weights is None or weight is not None)
        shown = plain(weight) if weight is not None else ("-" if trigger and weights is None else "NOT IN FORMULA")
        rows.append({
            "priority": order.index(tier) + 1 if tier in order else "-", "tier": tier, "queue": inputs.get("name"),
            "dlq": dlq.inputs.get("name") if dlq else "-", "attempts": redrive.get("maxReceiveCount"),
            "visibility": f"{inputs.get('visibilityTimeoutSeconds')}s",
            "retention": f"{inputs.get('messageRetentionSeconds')}s",
            "scaler trigger": trigger or "NONE", "weight (slots/message)": shown,
        })
    rows.sort(key=lambda r: r["priority"] if isinstance(r["priority"], int) else len(order) + 1)
    return rows, ok


def _contract_notes(program: Program, settings: dict, scalers: list) -> tuple[list[str], bool]:
    """The ConfigMap's run contract, and each consumer's grace period against the longest run."""
    longest, attempts = int(settings["AGENT_MAX_RUN_SECONDS"]), int(settings["AGENT_MAX_ATTEMPTS"])
    base = int(settings["AGENT_RETRY_BACKOFF_BASE_SECONDS"])
    visibility = int(settings["AGENT_VISIBILITY_TIMEOUT_SECONDS"])
    delays = " ".join(f"{base * 2 ** (n - 1)}s" for n in range(1, attempts)) or "none"
    notes = [f"Worker contract (ConfigMap): tiers {settings['AGENT_QUEUE_TIERS']} (poll in this order), "
             f"{settings['AGENT_CONCURRENCY']} runs per pod, {attempts} attempts, retry delays "
             f"(ChangeMessageVisibility) {delays}, longest run {longest}s, visibility timeout {visibility}s, "
             f"results kept {settings['AGENT_RESULT_TTL_SECONDS']}s."]
    ok = visibility > longest
    deployments = {(d.inputs.get("metadata") or {}).get("name"): reveal(d.inputs) for d in program.of_type(DEPLOYMENT)}
    for spec, _, _ in scalers:
        name = (spec.get("scaleTargetRef") or {}).get("name")
        if name not in deployments:
            continue
        pod = ((deployments[name].get("spec") or {}).get("template") or {}).get("spec") or {}
        grace, pause = pod.get("terminationGracePeriodSeconds", 30), queue_scaling.pre_stop_seconds(pod)
        fits = grace >= pause + longest
        ok = ok and fits
        notes.append(f"{name}: terminationGracePeriodSeconds {grace}s {'>=' if fits else '< ** TARGET MISSED **'} "
                     f"preStop {pause}s + longest run {longest}s: a stopped pod finishes the runs it holds.")
    return notes, ok


def agent_queues_report(program: Program) -> dict | None:
    """Each priority tier in the order the worker gets it, its queue, DLQ and attempts, and the
    weight the worker's ScaledObject gives its backlog; the run-time limits that must agree."""
    queues = [q for q in program.of_type(QUEUE) if _redrive(q)]
    if not queues:
        return None
    settings, scalers = _agent_settings(program), _scalers(program)
    rows, ok = _tier_rows(program, queues, (settings.get("AGENT_QUEUE_TIERS") or "").split(","), scalers)
    notes = []
    for spec, _, weights in scalers:
        modifiers = (spec.get("advanced") or {}).get("scalingModifiers") or {}
        if not modifiers:
            continue
        bounds = f"{spec.get('minReplicaCount')}..{spec.get('maxReplicaCount')}"
        notes.append(f"Scaler: replicas = max(cpu, memory, ceil(({modifiers.get('formula')}) / "
                     f"{modifiers.get('target')})) within {bounds}; "
                     "a tier's backlog is its visible + in-flight messages (scaleOnInFlight), so every waiting or "
                     "running run holds its weight in agent slots.")
        if weights and len(rows) > 1:
            notes.append(_burst_example(rows, weights, spec, int(float(modifiers["target"]))))
    if settings:
        contract, fits = _contract_notes(program, settings, scalers)
        notes, ok = notes + contract, ok and fits
    return {"title": "Agent queues (priority tiers, attempts, the worker's scaler)", "key": ["tier"], "rows": rows,
            "notes": notes,
            "ok": ok}


def _in_time(ready: int | None, goal: int) -> bool:
    return ready is not None and ready <= goal


def _seconds(value: int | None, simulated: bool) -> str:
    if not simulated:
        return "-"
    return "never" if value is None else f"{value}s"
