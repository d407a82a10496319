"""Stack rules on the capacity arithmetic: can the cluster actually reach what the HPAs allow?

The arithmetic itself lives in the top-level pure package ``capacity`` (shared with the program
and the preview reports), installed into the pack's environment from policies/requirements.txt.
"""

from __future__ import annotations

import base64

from capacity import connections
from capacity.burst import distribution, facts_for
from capacity.cost import CostSettings, estimate
from capacity.fleet import Declared, cluster_autoscaler, node_groups, workloads
from capacity.headroom import placeholders
from capacity.hpa import pod_requests
from capacity.nodes import INSTANCE_TYPES, allocatable
from capacity.scale_up import AppScaleUp, ScalingTargets, evaluate
from cofounder_policies.cluster import CLUSTER, LAUNCH_TEMPLATE, NODE_GROUP
from cofounder_policies.rules import ADVISORY, MANDATORY, get, items, known, of_type, plain, stack_rule
from cofounder_policies.settings import setting
from cofounder_policies.workloads import DEPLOYMENT, HPA, autoscalers, scaled_deployments

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
RDS_INSTANCE = "aws:rds/instance:Instance"
BUDGET = "aws:budgets/budget:Budget"
SECRET = "kubernetes:core/v1:Secret"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
PGBOUNCER_INI = "pgbouncer.ini"
EKS_ADDON = "aws:eks/addon:Addon"
CUSTOM_METRIC_TYPES = {"Pods", "Object", "External"}


def _charts(resources) -> set[str]:
    charts = {str(get(r.props, "chart", "")).rsplit("/", 1)[-1] for r in of_type(resources, HELM_RELEASE)}
    return charts | {str(get(r.props, "addonName")) for r in of_type(resources, EKS_ADDON)}


def _autoscalers_present(resources, settings):
    charts = _charts(resources)
    if of_type(resources, CLUSTER) and not charts & set(settings["clusterAutoscalerCharts"]):
        yield ("the stack declares an EKS cluster but no Cluster Autoscaler release "
               f"(chart one of {settings['clusterAutoscalerCharts']})"), None
    hpas = of_type(resources, HPA)
    metric_types = {get(m, "type") for h in hpas for m in items(get(h.props, "spec.metrics"))}
    if "Resource" in metric_types and not charts & set(settings["resourceMetricsCharts"]):
        yield ("an HPA scales on CPU/memory but no metrics-server is declared "
               f"(Helm chart or EKS add-on one of {settings['resourceMetricsCharts']})"), None
    if metric_types & CUSTOM_METRIC_TYPES and not charts & set(settings["customMetricsCharts"]):
        yield ("an HPA scales on a custom metric but no metrics adapter is declared "
               f"(chart one of {settings['customMetricsCharts']})"), None


def _pod_requests(deployment) -> tuple[int, int]:
    # The same sum the time-to-scale verdict uses, so both rules size a pod alike.
    return pod_requests(plain(get(deployment.props, "spec.template.spec", {})) or {})


def _node_group_instance_type(group, launch_templates) -> str | None:
    types = items(get(group.props, "instanceTypes"))
    if types:
        return types[0]
    ref = get(group.props, "launchTemplate.id")
    for lt in launch_templates:
        if ref in (get(lt.props, "id"), get(lt.props, "name")) or lt.urn in {
                d.urn for d in (group.property_dependencies or {}).get("launchTemplate", [])}:
            return get(lt.props, "instanceType")
    return None


def _nodes_hold_hpa_max(resources, settings):
    pairs = [(a, d) for a, d in scaled_deployments(resources) if d is not None]
    if not pairs:
        return
    need_cpu = need_mem = 0
    for autoscaler, deployment in pairs:
        cpu, mem = _pod_requests(deployment)
        need_cpu += int(autoscaler.hpa_spec.get("maxReplicas") or 0) * cpu
        need_mem += int(autoscaler.hpa_spec.get("maxReplicas") or 0) * mem
    have_cpu = have_mem = 0
    launch_templates = of_type(resources, LAUNCH_TEMPLATE)
    for group in of_type(resources, NODE_GROUP):
        instance_type = _node_group_instance_type(group, launch_templates)
        if instance_type not in INSTANCE_TYPES:
            yield (f"instance type {instance_type!r} is not in the pack's table (capacity/nodes.py); "
                   f"add it so node capacity can be checked"), group.urn
            continue
        nodes = int(get(group.props, "scalingConfig.maxSize", 0))
        have_cpu += nodes * allocatable(instance_type).cpu_millicores
        have_mem += nodes * allocatable(instance_type).memory_mib
    share = float(settings["maximumShare"])
    if need_cpu > have_cpu * share or need_mem > have_mem * share:
        yield (f"every autoscaler at maxReplicas requests {need_cpu}m CPU and {need_mem} MiB, but the node "
               f"groups at maxSize offer {have_cpu}m and {have_mem} MiB allocatable "
               f"(limit {share:.0%} of it, the rest is for daemonsets and system pods)"), None


def _app_problem(app: AppScaleUp) -> str:
    r, a = app.result, app.autoscaled
    decided = "never" if r.decided_at_seconds is None else f"at {r.decided_at_seconds}s"
    goal = f"goal {app.goal_seconds}s" if app.goal_seconds is not None else "no goal (not a goal app)"
    first = f"+{r.first_step_pods} at {r.first_step_seconds}s" if r.steps else "none"
    found, fixes = [], []
    if r.capped_by_max:
        found.append(f"maxReplicas {r.max_replicas} is below the {r.needed_replicas} replicas the peak needs")
        fixes.append(f"raise maxReplicas to at least {r.needed_replicas} (within the connection budget)")
    if app.missed_goal or (r.decided_at_seconds is None and not r.capped_by_max):
        found.append("the scale-up policies reach the peak too slowly")
    if app.late_first_step:
        found.append(f"the first step comes after {app.scale_up_within_seconds}s")
    if len(fixes) < len(found):
        fixes.append("allow more pods per period in behavior.scaleUp.policies (e.g. Percent 100 and "
                     "Pods 4+ per 15 s, selectPolicy Max) with a short scale-up stabilization window")
    return (f"{a.app} ({a.kind}): decided {decided} for {r.needed_replicas} replicas from {r.min_replicas}, "
            f"{goal}; first step {first}: {'; '.join(found)}. Fix: {'; '.join(fixes)}.")


def _declared(resources) -> list[Declared]:
    return [Declared(r.resource_type, r.urn, plain(r.props) or {}) for r in resources]


def _ready_in_time(resources, targets: ScalingTargets, flagged: set[str]):
    """The 5x burst to Ready (capacity/burst.py), the preview's burst report's very simulation, judged
    at the 95th percentile of its seeded draws; apps already ``flagged`` for their decision are not
    reported twice."""
    items = _declared(resources)
    groups, pods = node_groups(items), workloads(items)
    if not groups:
        return
    d = distribution(groups, pods, targets, cluster_autoscaler(items), facts_for(items, pods))
    burst = d.worst_case
    for app in d.apps:
        if app.name in flagged or (app.p95 is not None and app.p95 <= d.target_seconds):
            continue
        w = next(w for w in pods if w.name == app.name)
        sim = next(a for a in burst.apps if a.name == app.name)
        when = "never" if app.p95 is None else f"at {app.p95}s"
        capped = f"; {', '.join(burst.capped_groups)} reached maxSize" if burst.capped_groups else ""
        yield (f"{app.name} has the {sim.target_replicas or sim.result.needed_replicas} replicas the peak needs "
               f"Ready {when} at p95 (p50 {app.p50}s, worst {app.worst}s), goal {d.target_seconds}s "
               f"(readyGoalSeconds){capped}: the metric lag, the HPA's sync, a node when the free room and the "
               "headroom are short, the image pull, the probes and the ALB's health check add up (timings: "
               "capacity/timings.yaml; the burst report shows each app's path). Fix: a faster metric or scale-up "
               "behavior that reaches the peak in one decision, quicker probes and health checks, more headroom "
               "placeholders (cofounder:cluster.headroom; the burst report says how many and what they cost), or a "
               "larger node group maxSize."), w.autoscaled.key if w.autoscaled else None


def _time_to_scale(resources, settings):
    deployments = [(d.urn, plain(d.props)) for d in of_type(resources, DEPLOYMENT)]
    apps = autoscalers(resources)
    if not apps:
        return
    targets = ScalingTargets.from_camel(plain(dict(settings)))
    headroom = placeholders([plain(p.props) for p in of_type(resources, PRIORITY_CLASS)], deployments)
    verdict = evaluate(apps, targets, [f for _, f in headroom])
    for app in verdict.apps:
        if not app.ok:
            yield _app_problem(app), app.autoscaled.key
    if verdict.headroom_short:
        pods = verdict.first_step_pods
        room = " + ".join(f"{h.replicas} x {h.cpu_millicores}m/{h.memory_mib}Mi" for h in verdict.headroom)
        yield (f"the first scale-up step of every app at once ({len(pods)} pods, {sum(c for c, _ in pods)}m CPU, "
               f"{sum(m for _, m in pods)}Mi) does not fit the pre-warmed headroom ({room or 'none declared'}), "
               "each pod inside one placeholder: the rest waits 60-120 s for a new node. Fix: more or larger "
               "headroom placeholders (cofounder:cluster.headroom), or requireHeadroomCoverage: false "
               "where that wait is acceptable."), (headroom[0][0] if headroom else verdict.apps[0].autoscaled.key)
    yield from _ready_in_time(resources, targets, {a.autoscaled.app for a in verdict.apps if not a.ok})


def _declared_budget(resources) -> tuple[float, str] | None:
    """(amount in USD, URN) of the stack's COST budget; None without one or while its amount is unknown."""
    for r in of_type(resources, BUDGET):
        amount = known(r.props, "limitAmount")
        if known(r.props, "budgetType") == "COST" and amount is not None:
            return float(amount), r.urn
    return None


def _cost_within_budget(resources, settings):
    found = _declared_budget(resources)
    if found is None:
        return  # budgets-cost-budget-with-alerts requires the budget
    budget, urn = found
    usage = CostSettings.from_camel(plain(dict(settings.get("usage") or {})))
    e = estimate(_declared(resources), str(settings.get("region") or "us-east-1"), usage,
                 float(settings.get("nodePodShare") or 0.9), budget_usd=budget)
    top = sorted(e.lines, key=lambda line: -(line.monthly_max or 0))[:3]
    biggest = ", ".join(f"{line.resource} {line.item} ${line.monthly_max:,.0f}" for line in top if line.monthly_max)
    unknown = sorted(e.missing) + e.unclassified + e.problems
    if not e.within_budget:
        # An incomplete estimate leads with what it lacks, and its total says it is the priced lines'.
        lead = f"{e.incomplete} ({', '.join(unknown)}); " if e.incomplete else ""
        what = "the priced lines alone cost" if e.incomplete else "the stack costs"
        yield (f"{lead}at maximum scale {what} ${e.monthly_max:,.2f} per month, over its declared AWS Budget of "
               f"${budget:,.2f}; the largest lines: {biggest}. The program derives the budget from this very "
               "estimate (components/cost_budget.py), so a budget below it was set by hand or from other "
               "inputs than the stack declares. Fix: let cofounder:budget derive it; to spend less, lower "
               "maxReplicas or node group maxSize, or choose smaller classes."), urn

def _pgbouncer_configs(resources) -> dict[tuple, str | None]:
    """``pgbouncer.ini`` text by (type, namespace, name) of its Secret or ConfigMap; None if unknown."""
    found = {}
    for r in of_type(resources, SECRET, CONFIG_MAP):
        props = plain(r.props)
        meta, string_data, data = (props.get(k) or {} for k in ("metadata", "stringData", "data"))
        if PGBOUNCER_INI in string_data:
            text = string_data[PGBOUNCER_INI]
        elif PGBOUNCER_INI in data:
            text = data[PGBOUNCER_INI]
            if text is not None and r.resource_type == SECRET:
                text = base64.b64decode(text).decode()
        else:
            continue
        found[(r.resource_type, meta.get("namespace"), meta.get("name"))] = text
    return found


def _pgbouncers(deployments, configs):
    """(urn, replicas, pgbouncer.ini text) of every Deployment that mounts a pgbouncer.ini."""
    for urn, d in deployments:
        namespace = (d.get("metadata") or {}).get("namespace")
        for volume in items(get(d, "spec.template.spec.volumes")):
            key = ((SECRET, namespace, get(volume, "secret.secretName")) if get(volume, "secret")
                   else (CONFIG_MAP, namespace, get(volume, "configMap.name")))
            if key in configs:
                yield urn, int(get(d, "spec.replicas", 1)), configs[key]
                break


def _connection_budget(resources, settings):
    deployments = [(d.urn, plain(d.props)) for d in of_type(resources, DEPLOYMENT)]
    bouncers = list(_pgbouncers(deployments, _pgbouncer_configs(resources)))
    if not bouncers:
        return
    instances = [plain(r.props) for r in of_type(resources, RDS_INSTANCE)
                 if str(plain(r.props).get("engine") or "").startswith("postgres")]
    clients = [(a.app, int(a.hpa_spec["maxReplicas"]), connections.pool_per_pod(a.pod_template))
               for a in autoscalers(resources)]
    for urn, replicas, ini in bouncers:
        if ini is None:
            continue  # a preview that creates the database: the program's own check still runs
        pgbouncer = connections.parse_pgbouncer_ini(ini)
        matching = [i for i in instances if i.get("address") == pgbouncer.db_host] or \
            (instances if len(instances) == 1 else [])
        if not matching or matching[0].get("instanceClass") is None:
            continue
        instance_class = matching[0]["instanceClass"]
        if instance_class not in connections.INSTANCE_MEMORY_GIB:
            yield (f"RDS instance class {instance_class!r} is not in capacity/connections.py; add its "
                   "memory so the connection budget can be checked"), urn
            continue
        budget = connections.budget(
            instance_class=instance_class, reserve=int(settings["reservedConnections"]),
            pgbouncer_replicas=replicas, pool_size=pgbouncer.pool_size,
            reserve_pool_size=pgbouncer.reserve_pool_size, max_client_conn=pgbouncer.max_client_conn,
            clients=[c for c in clients if c[2] > 0])
        for problem in connections.check(budget):
            yield problem, urn


#: The cofounder:scaling settings capacity-time-to-scale reads (its config keys, by the same names).
TIME_TO_SCALE_SETTINGS = ("peakMultiplier", "timeToScaleGoalSeconds", "scaleUpWithinSeconds", "goalApps",
                          "baselineReplicas", "requireHeadroomCoverage", "readyGoalSeconds", "nodePodShare")


POLICIES = [
    stack_rule(
        "capacity-autoscalers-present",
        "HPAs and node groups only scale if their controllers exist: the Cluster Autoscaler for "
        "nodes, metrics-server for CPU/memory metrics and an adapter (prometheus-adapter or KEDA) "
        "for custom metrics. Fix: install the missing Helm release (pinned chart version).",
        ADVISORY, _autoscalers_present,
        config={
            "clusterAutoscalerCharts": {"type": "array", "items": {"type": "string"},
                                        "default": ["cluster-autoscaler", "karpenter"]},
            "resourceMetricsCharts": {"type": "array", "items": {"type": "string"},
                                      "default": ["metrics-server"]},
            "customMetricsCharts": {"type": "array", "items": {"type": "string"},
                                    "default": ["prometheus-adapter", "keda"]},
        }),
    stack_rule(
        "capacity-node-groups-hold-hpa-max",
        "If every autoscaler (HPA or KEDA ScaledObject) reaches maxReplicas, the pods must fit on the "
        "node groups at maxSize, or the burst ends with Pending pods. Fix: raise node group maxSize "
        "(or the instance size), or lower the autoscalers' maxReplicas / pod requests.",
        ADVISORY, _nodes_hold_hpa_max,
        config={"maximumShare": {"type": "number", "minimum": 0.1, "maximum": 1, "default": 0.9,
                                 "description": "Share of allocatable the app pods may need"}}),
    stack_rule(
        "capacity-time-to-scale",
        "A burst to the peak must be met in time: each autoscaled Deployment (HPA or KEDA "
        "ScaledObject) must reach the replicas the peak needs, with its first scale-up step within "
        "scaleUpWithinSeconds and, for goal apps, the full count decided within "
        "timeToScaleGoalSeconds; the first step of all apps must fit the pre-warmed headroom; and the "
        "replicas the peak needs must be Ready, end to end, within readyGoalSeconds at the 95th "
        "percentile of the seeded burst draws (metric lag, HPA sync, free room, placeholder preemption, "
        "Cluster Autoscaler scan, node provisioning, image pull, probes, ALB health check; timings from "
        "capacity/timings.yaml and the declared resources). Same "
        "arithmetic as the preview's time-to-scale and burst reports (capacity/scale_up.py, "
        "capacity/burst.py). Fix: faster behavior.scaleUp policies, a higher maxReplicas, more headroom "
        "or a larger node group maxSize.",
        ADVISORY, _time_to_scale,
        # Each key is the cofounder:scaling setting of its name, as ScalingSettings defines it
        # (capacity/scale_up.py); `make docs` writes each stack's values into
        # policies/config/<stack>.json (toolkit/docs.py DERIVED).
        config={key: setting(f"scaling.{key}") for key in TIME_TO_SCALE_SETTINGS}),
    stack_rule(
        "capacity-cost-within-budget",
        "Over-scaling is the seed's cost risk: at maximum scale (every autoscaler at its maximum, node "
        "groups up to maxSize, usage at its peak multiple) the stack's monthly cost must stay within its "
        "declared AWS Budget. The program derives that budget from the same estimate plus a margin "
        "(components/cost_budget.py, cofounder:budget.marginPercent), so this rule checks the pack's own "
        "estimate against it: the same model as the preview's cost report (capacity/cost.py, prices in "
        "capacity/prices/<region>.yaml); prices the table lacks count no amount and are named. Quiet "
        "without a budget (budgets-cost-budget-with-alerts requires one). Fix: let cofounder:budget "
        "derive the amount; lower maxReplicas or maxSize, or smaller classes, to spend less.",
        ADVISORY, _cost_within_budget,
        # Written into policies/config/<stack>.json by `make docs` from the stack's cofounder:cost,
        # its region and cofounder:scaling.nodePodShare (toolkit/docs.py DERIVED).
        config={
            "region": {"type": "string", "default": "us-east-1", "description": "The price table's region"},
            "usage": {"type": "object", "default": {},
                      "description": "cofounder:cost's usage assumptions (camelCase)"},
            "nodePodShare": setting("scaling.nodePodShare"),
        }),
    stack_rule(
        "capacity-connection-budget",
        "Every app at its autoscaler's maximum must get its database pool through PgBouncer, and "
        "PgBouncer's server pools must fit RDS max_connections minus the reserved connections, or a "
        "burst ends in refused connections. Computed from the declared resources with "
        "capacity/connections.py: the RDS instance class, the PgBouncer Deployment's replicas and "
        "its pgbouncer.ini, each app's HPA or ScaledObject maximum x its cofounder.dev/db-pool-size "
        "pod annotation. Fix: a larger RDS class or fewer/smaller PgBouncer pools (server side); "
        "more PgBouncer replicas or max_client_conn, or lower maxReplicas / dbPoolSize (client side).",
        MANDATORY, _connection_budget,
        config={"reservedConnections": setting("postgres.reservedConnections")}),
]
