"""Reports on money and time: what the stack costs at both ends of its scale, and how the 5x burst plays out.

Both read the declared resources through ``capacity/fleet.py`` (node groups, Deployments and their
autoscalers, placeholders, the Cluster Autoscaler's chart values) and the stack's settings as the
program exports them: ``costAssumptions`` (``cofounder:cost`` and the region), the declared AWS
Budget's amount (derived by the program from the same estimate, components/cost_budget.py) and
``scalingTargets`` (``cofounder:scaling``). ``capacity/cost.py`` prices, ``capacity/burst.py``
simulates; the pack's ``capacity-cost-within-budget`` and ``capacity-time-to-scale`` rules call
the same functions. Each report carries its whole document under ``data``: the preview writes it
to ``build/preview/<stack>.cost.json`` / ``.burst.json`` and ``make diff`` compares it.
"""

from __future__ import annotations

import math

from capacity.burst import BurstDistribution, distribution, facts_for, headroom_to_meet, with_headroom
from capacity.cost import CostSettings, Estimate, estimate
from capacity.fleet import Declared, cluster_autoscaler, node_groups, workloads
from capacity.scale_up import ScalingSettings
from capacity.timings import AppFacts
from toolkit.harness import Program, reveal


def declared(program: Program) -> list[Declared]:
    """Every custom resource as the capacity model reads it: name, type, inputs and the fake id."""
    return [Declared(r.type, r.name, {**reveal(r.inputs), "id": r.outputs.get("id")})
            for r in program.resources if r.custom]


def cost_settings(program: Program) -> tuple[str, CostSettings]:
    exported = dict(program.outputs.get("costAssumptions") or {})
    return str(exported.pop("region", "us-east-1")), CostSettings.from_camel(exported)


def scaling(program: Program) -> ScalingSettings:
    return ScalingSettings.from_camel(program.outputs.get("scalingTargets") or {})


BUDGET = "aws:budgets/budget:Budget"


def declared_budget_usd(program: Program) -> float | None:
    """The monthly amount of the stack's COST budget (components/cost_budget.py), or None without one."""
    for r in program.of_type(BUDGET):
        if r.inputs.get("budgetType") == "COST" and r.inputs.get("limitAmount") is not None:
            return float(r.inputs["limitAmount"])
    return None


def stack_estimate(program: Program, resources: list[Declared] | None = None) -> Estimate:
    region, usage = cost_settings(program)
    return estimate(resources or declared(program), region, usage, scaling(program).node_pod_share,
                    budget_usd=declared_budget_usd(program))


def stack_burst(program: Program, resources: list[Declared] | None = None) -> BurstDistribution | None:
    """The burst distribution of the program's declared resources. It is the slowest report (some
    hundred seeded simulations) and both the burst and the time-to-scale report read it, so one
    run of the program computes it once."""
    cached = program.__dict__.get("_burst")
    if cached is not None:
        return cached[0]
    items = resources or declared(program)
    groups, pods = node_groups(items), workloads(items)
    result = None
    if groups and any(w.autoscaled for w in pods):
        result = distribution(groups, pods, scaling(program), cluster_autoscaler(items), facts_for(items, pods))
    program.__dict__["_burst"] = (result,)
    return result


def _usd(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _qty(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:,.2f}"


def cost_report(program: Program) -> dict | None:
    resources = declared(program)
    if not any(r.type.startswith("aws:") for r in resources):
        return None
    e = stack_estimate(program, resources)
    rows = [{"resource": line.resource, "item": line.item,
             "quantity (min / max)": f"{_qty(line.quantity_min)} / {_qty(line.quantity_max)} {line.unit}",
             "unit price": "MISSING" if line.unit_price is None else f"${line.unit_price:g}",
             "monthly min": _usd(line.monthly_min), "monthly max": _usd(line.monthly_max)}
            for line in e.lines]
    headroom = [line for line in e.lines if line.item.startswith("headroom")]
    u = e.usage
    # An incomplete estimate says so before any total, and its totals say they are the priced lines':
    # a line without a price counts nothing, so the total alone would read as a cheaper stack.
    priced = "priced lines only: " if e.incomplete else ""
    notes = [f"{e.incomplete}: the totals below count the priced lines only."] if e.incomplete else []
    notes += [
        f"Monthly, {e.currency}, on-demand list prices of {e.region} read {e.prices_as_of} "
        f"(capacity/prices/{e.region}.yaml and capacity/instance-classes.yaml, each with its source): {priced}"
        f"minimum scale {_usd(e.monthly_min)}, maximum scale {_usd(e.monthly_max)}.",
        "Minimum: every autoscaler at its minimum, nodes that needs (at least minSize). Maximum: every "
        "autoscaler at its maximum, nodes capped by maxSize, RDS storage at its autoscaling maximum, "
        f"usage x {u.max_scale_usage_multiplier:g}.",
        "Headroom placeholders: " + (", ".join(f"{_usd(line.monthly_min)} / {_usd(line.monthly_max)} ({line.resource})"
                                               for line in headroom) or "no nodes of their own at either scale")
        + " at minimum / maximum scale.",
        f"Usage assumed (cofounder:cost): {u.requests_millions_per_month:g}M requests, {u.cdn_gb_per_month:g} GB to "
        f"viewers, {u.origin_gb_per_month:g} GB through the ALB, {u.nat_gb_per_month:g} GB through NAT, "
        f"{u.queue_messages_millions_per_month:g}M queue messages, {u.default_log_gb_per_month:g} GB per log group"
        f"{' (some set per group)' if u.log_gb_per_month else ''}, {u.s3_storage_gb:g} GB in S3, "
        f"{u.cross_az_gb_per_month:g} GB across zones, {u.cloudwatch_custom_metrics} custom metrics, "
        f"{u.rds_backup_changed_gb_per_day:g} GB of database changes a day, cache {u.cache_fill_fraction:.0%} full, "
        f"per month; CloudFront's free 1 TB and 10 M requests {'' if u.cloudfront_free_tier else 'not '}deducted.",
    ]
    if e.capped_groups:
        notes.append(f"CAP BITES at maximum scale: {', '.join(e.capped_groups)} at maxSize with pods left without a "
                     "node; the maximum is what the cap allows, not what the autoscalers ask for.")
    for key, what in sorted(e.missing.items()):
        notes.append(f"MISSING PRICE {key} ({what}): add it to capacity/prices/{e.region}.yaml with its source "
                     "and read date; its lines count as nothing in the totals above.")
    for type_ in e.unclassified:
        notes.append(f"UNPRICED TYPE {type_}: price it in capacity/cost.py PRICERS or list it in FREE_TYPES.")
    notes += [f"PROBLEM: {p}" for p in e.problems]
    if e.budget_usd is not None:
        verdict = "within" if e.within_budget else "OVER"
        notes.append(f"Budget (the declared AWS Budget: this maximum x (1 + cofounder:budget.marginPercent)) "
                     f"{_usd(e.budget_usd)}: maximum scale {'of the priced lines ' if e.incomplete else ''}is "
                     f"{verdict} it.")
    title = "Monthly cost at minimum and maximum scale"
    if e.incomplete:
        title = f"{e.incomplete}. {title}, priced lines only"
    return {"title": title, "key": ["resource", "item"], "rows": rows, "notes": notes,
            "ok": e.complete and e.within_budget is not False, "data": e.as_dict()}


def _s(value: int | None) -> str:
    return "never" if value is None else f"{value}s"


def burst_report(program: Program) -> dict | None:
    resources = declared(program)
    d = stack_burst(program, resources)
    if d is None:
        return None
    t = scaling(program)
    b = d.worst_case
    spread = {a.name: a for a in d.apps}
    rows = []
    for a in b.apps:
        r, s = a.result, spread[a.name]
        rows.append({
            "app": a.name, "min": r.min_replicas, "peak needs": r.needed_replicas, "max": r.max_replicas,
            "ready p50": _s(s.p50), "ready p95": _s(s.p95), "worst": _s(s.worst), "goal (p95)": f"{d.target_seconds}s",
            "ok": s.p95 is not None and s.p95 <= d.target_seconds,
        })
    late = max(d.apps, key=lambda a: math.inf if a.p95 is None else a.p95)
    cs = b.settings
    notes = [
        f"Slowest app at p95: {late.name}, Ready at {_s(late.p95)} (goal {d.target_seconds}s, readyGoalSeconds; "
        f"p50/p95 over {d.samples} seeded draws of every timing, worst: every timing at its high end).",
        f"Step to {t.peak_multiplier:g}x at t=0 from rest. Timings from capacity/timings.yaml (read {d.timings_as_of}) "
        "and the declared resources: the HPA's 15 s sync at a random phase, each metric's lag (CPU through "
        "metrics-server, saturating at limit/request; the Prometheus gauge at its scrape interval; the queue through "
        "KEDA), the new pods on free room or preempted placeholders, else the Cluster Autoscaler (scan every "
        f"{cs['scanIntervalSeconds']}s, from its chart values) and an EC2 node; then scheduling, the image pull "
        "(cached on a node that ran the app), the declared probes, and behind the ALB's readiness gate one health "
        "check at the target group's interval.",
        "Apps' timing paths: " + "; ".join(_facts_text(name, f) for name, f in sorted(d.facts.items())) + ".",
        "Worst case, nodes at rest: " + ", ".join(f"{g} {n}" for g, n in b.nodes_before.items())
        + "; after the burst: " + ", ".join(f"{g} {n}" for g, n in b.nodes_after.items()) + ".",
    ]
    if b.capped_groups:
        notes.append(f"CAP BITES: {', '.join(b.capped_groups)} reached maxSize with pods still Pending.")
    advice = None
    if not d.ok:
        advice = _headroom_advice(program, resources, d)
        notes.append(advice["text"])
    data = {"targetSeconds": d.target_seconds, "judged": "p95", "readySeconds": d.p95_seconds(),
            "distribution": d.as_dict(), "samples": d.samples, "seed": d.seed, "timingsAsOf": d.timings_as_of,
            "worstApp": late.name, "nodesAtRest": b.nodes_before, "nodesAfter": b.nodes_after,
            "cappedNodeGroups": b.capped_groups, "settings": b.settings, "headroomToMeet": advice,
            "series": b.series}
    return {"title": f"5x burst: seconds until the peak's replicas are Ready, p50/p95/worst (goal p95 <= "
                     f"{d.target_seconds}s)",
            "key": ["app"], "rows": rows, "notes": notes, "ok": d.ok, "data": data}


def _facts_text(name: str, f: AppFacts) -> str:
    metrics = ", ".join(f"{m.kind}" + (f" every {m.interval_seconds:g}s" if m.interval_seconds else "")
                        + (f" (saturates at {float(m.cap):.2g}x)" if m.cap is not None else "") for m in f.metrics)
    probes = ", ".join(f"{what} every {p.period_seconds}s" for what, p in (("startup", f.startup),
                                                                           ("readiness", f.readiness)) if p)
    alb = f", ALB check every {f.alb_interval_seconds}s" if f.alb_interval_seconds else ""
    return f"{name}: {metrics}; {probes or 'no probes'}{alb}"


def _headroom_advice(program: Program, resources: list[Declared], d: BurstDistribution) -> dict:
    """How many more placeholders would bring every p95 within the goal, and what they cost per month."""
    items = resources
    groups, pods, ca = node_groups(items), workloads(items), cluster_autoscaler(items)
    t = scaling(program)
    extra = headroom_to_meet(groups, pods, t, ca, d.facts)
    placeholders = [w for w in pods if w.placeholder]
    if extra is None:
        why = ("no amount of placeholders up to 256 does: the decision plus start-up alone is late (faster "
               "metrics or scale-up behavior, quicker probes) or maxReplicas is below the peak")
        if not placeholders:
            why = "no headroom placeholder is declared (cofounder:cluster.headroom)"
        return {"extraPlaceholders": None, "text": f"More headroom cannot meet the goal: {why}."}
    region, usage = cost_settings(program)
    before = estimate(items, region, usage, t.node_pod_share, apps=pods)
    more = with_headroom(pods, extra)
    assert more is not None
    after = estimate(items, region, usage, t.node_pod_share, apps=more)
    dmin, dmax = after.monthly_min - before.monthly_min, after.monthly_max - before.monthly_max
    p = placeholders[0].pod
    text = (f"To meet {d.target_seconds}s at p95: {extra} more headroom placeholders of "
            f"{p.cpu_millicores}m/{p.memory_mib}Mi (cofounder:cluster.headroom.replicas {placeholders[0].replicas} -> "
            f"{placeholders[0].replicas + extra}), costing {_usd(dmin)} more per month at minimum scale and "
            f"{_usd(dmax)} at maximum scale.")
    return {"extraPlaceholders": extra, "replicas": placeholders[0].replicas + extra,
            "monthlyMinScale": round(dmin, 2), "monthlyMaxScale": round(dmax, 2), "text": text}
