"""The 5x burst, second by second: when are the replicas the peak needs actually Ready?

From the declared state (``capacity/fleet.py`` reads it) and the timing table
(``capacity/timings.yaml``, through ``capacity/timings.py``); one ``simulate`` is one realisation
of every timing (a ``Draw``), ``distribution`` runs many seeded ones and the worst case:
- t=0: the load steps to ``peakMultiplier`` x the baseline; the cluster is at rest, as the cost
  model's minimum scale: every app at its autoscaler's minimum, fixed Deployments at their
  replicas, the headroom placeholders, packed on the node groups (at least their minSize).
- Each app's HPA decides as ``capacity/hpa.py`` ``time_to_scale`` computes, with the draw's sync
  phase and each metric's own lag (CPU saturates at limit/request; a gauge or a queue does not).
  Each decision creates its new pods at once.
- A new pod is scheduled where it fits: free room on a running node first; else it preempts
  placeholder pods on one node (they run at a negative priority and leave at once: grace period
  0); else it is Pending. Evicted placeholders are Pending too.
- The Cluster Autoscaler scans every ``scan-interval`` (from its declared chart values, at the
  draw's phase); a scan sees the pods Pending since before it, at or above
  ``expendable-pods-priority-cutoff``, fits them on the nodes already being provisioned and asks for
  more in the admitting group with the fewest nodes (``balance-similar-node-groups``), up to
  maxSize. Each node is Ready after its own draw of EC2 launch to node Ready; Pending pods then
  schedule on it, real pods first.
- A scheduled pod is Ready after its own draw of scheduling and container start, the image pull
  (cached when the node has run that app before, else by image size), the declared startup and
  readiness probes over the app's boot, and, behind the ALB's readiness gate, the target
  registration and one health check at the declared interval.
An app's Ready time is the first second at which as many replicas are Ready as the HPA settles on
for the peak; ``None`` when that never happens (maxReplicas below the peak, or a group at maxSize).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from capacity.fleet import AutoscalerSettings, Declared, Node, NodeGroup, PodShape, Workload, new_node, open_node, pack
from capacity.hpa import ScaleUpResult, time_to_scale
from capacity.scale_up import ScalingSettings
from capacity.timings import AppFacts, Draw, app_facts, load_timings

HORIZON_SECONDS = 900
SAMPLE_SECONDS = 5
#: Seeded draws per distribution (the percentiles' resolution), and the seed of the first.
SAMPLES = 200
SEED = 22


@dataclass(frozen=True)
class AppBurst:
    name: str
    result: ScaleUpResult
    #: Replicas the HPA settles on for the peak (None: it never gets there).
    target_replicas: int | None
    ready_seconds: int | None
    pod: PodShape


@dataclass
class Burst:
    target_seconds: int
    apps: list[AppBurst]
    #: ``{"t": s, "apps": {app: {"demand", "ready", "starting", "pending"}}, "nodes": {group: n}}``.
    series: list[dict]
    #: Nodes per group at rest and at the end of the simulation.
    nodes_before: dict[str, int]
    nodes_after: dict[str, int]
    #: Groups that reached maxSize with pods still Pending.
    capped_groups: list[str]
    settings: dict = field(default_factory=dict)

    @property
    def worst(self) -> AppBurst | None:
        if not self.apps:
            return None
        return max(self.apps, key=lambda a: math.inf if a.ready_seconds is None else a.ready_seconds)

    @property
    def ok(self) -> bool:
        worst = self.worst
        return worst is None or (worst.ready_seconds is not None and worst.ready_seconds <= self.target_seconds)

    def ready_seconds(self) -> dict[str, int | None]:
        return {a.name: a.ready_seconds for a in self.apps}


@dataclass
class _Pending:
    name: str
    priority: int
    pod: PodShape
    since: int


def simulate(groups: list[NodeGroup], workloads: list[Workload], targets: ScalingSettings,
             autoscaler: AutoscalerSettings, draw: Draw, horizon_seconds: int = HORIZON_SECONDS,
             sample_seconds: int = SAMPLE_SECONDS) -> Burst:
    """One burst under one realisation of every timing (``draw``)."""
    share = targets.node_pod_share
    at_rest = [(w.name, w.priority, w.pod) for w in workloads for _ in range(w.replicas)]
    placement = pack(groups, at_rest, share)
    nodes: list[Node] = placement.nodes
    nodes_before = {g.name: placement.count(g) for g in groups}
    pending = [_Pending(name, prio, pod, 0) for name, prio, pod in placement.unplaced]
    upcoming: list[tuple[int, NodeGroup]] = []

    # A node at rest has the images of the pods it runs, and those a prepuller DaemonSet it admits
    # keeps there (components/image_prepuller.py); a node that joins during the burst has none yet.
    prepulled = {app: f.prepulled_on for app, f in draw.facts.items() if f.prepulled_on}
    images = {id(n): {name for name, _, _ in n.pods}
              | {app for app, shapes in prepulled.items() if any(s.admitted_by(n.group) for s in shapes)}
              for n in nodes}
    apps = [w for w in workloads if w.autoscaled is not None]
    offset = draw.sync_offset_seconds()
    results = {}
    for w in apps:
        assert w.autoscaled is not None
        # Saturated metrics grow with the ready pods: a typical start-up of this draw says when.
        startup = draw.pod_startup_seconds(w.name, True, draw.registration_seconds())
        results[w.name] = time_to_scale(
            w.autoscaled.hpa_spec, baseline_replicas=targets.baseline_replicas.get(w.name),
            peak_multiplier=targets.peak_multiplier, sync_offset_seconds=offset,
            sync_period_seconds=draw.sync_period_seconds, metric_lags=draw.metric_lags(w.name),
            startup_seconds=startup)
    registrations: dict[tuple[str, int], float] = {}
    creations: dict[int, list[tuple[Workload, int]]] = {}
    for w in apps:
        previous = results[w.name].min_replicas
        for at, replicas in results[w.name].steps:
            creations.setdefault(at, []).append((w, replicas - previous))
            previous = replicas
    running_at_rest = {w.name: w.replicas - sum(1 for p in pending if p.name == w.name) for w in apps}
    ready_at: dict[str, list[int]] = {w.name: [0] * running_at_rest[w.name] for w in apps}
    targets_for = {w.name: (results[w.name].reached_replicas if results[w.name].decided_at_seconds is not None
                            else None) for w in apps}
    ready_when: dict[str, int | None] = {n: (0 if t is not None and len(ready_at[n]) >= t else None)
                                         for n, t in targets_for.items()}
    app_names = {w.name for w in apps}
    scan = max(1, autoscaler.scan_interval_seconds)
    scan_offset = draw.scan_offset_seconds(scan)
    last_creation = max(creations, default=0)
    series: list[dict] = []
    capped: set[str] = set()
    last_change = 0

    admitted: dict[tuple[PodShape, int], bool] = {}  # a pod shape on a node group: asked per node, per tick

    def admits(pod: PodShape, group: NodeGroup) -> bool:
        key = (pod, id(group))
        if key not in admitted:
            admitted[key] = pod.admitted_by(group)
        return admitted[key]

    latest_ready = max((r for ready in ready_at.values() for r in ready), default=0)

    def schedule(p: _Pending, now: int, preempt: bool) -> bool:
        nonlocal latest_ready
        node = next((n for n in nodes if admits(p.pod, n.group) and n.fits(p.pod)), None)
        if node is None and preempt:
            node = _preempt(nodes, p.pod, p.priority, now, pending)
        if node is None:
            return False
        cached = p.name in images.setdefault(id(node), set())
        node.place(p.name, p.priority, p.pod)
        images[id(node)].add(p.name)
        if p.name in app_names:
            batch = (p.name, now)  # the controller registers one batch of new endpoints at a time
            if batch not in registrations:
                registrations[batch] = draw.registration_seconds()
            ready = now + draw.pod_startup_seconds(p.name, cached, registrations[batch])
            ready_at[p.name].append(ready)
            latest_ready = max(latest_ready, ready)
        return True

    t = 0
    while t <= horizon_seconds:
        # 1. Nodes whose provisioning ends now join; Pending pods schedule, real pods first.
        joined = [g for at, g in upcoming if at == t]
        if joined:
            last_change = t
            upcoming = [(at, g) for at, g in upcoming if at != t]
            nodes.extend(new_node(g, share) for g in joined)
        if joined or t == 0:
            for p in sorted(pending, key=lambda p: (-p.priority, p.since)):
                if p in pending and schedule(p, t, preempt=p.priority >= 0):
                    pending.remove(p)
        # 2. The Cluster Autoscaler scans the pods Pending since before now.
        if t > 0 and (t - scan_offset) % scan == 0:
            seen = [p for p in pending if p.since < t and p.priority >= autoscaler.expendable_cutoff]
            for group in _scale_up(groups, nodes, upcoming, seen, share, capped):
                upcoming.append((t + draw.node_provisioning_seconds(), group))
                last_change = t
        # 3. The HPAs' decisions create pods.
        for workload, count in creations.get(t, []):
            for _ in range(count):
                p = _Pending(workload.name, workload.priority, workload.pod, t)
                if not schedule(p, t, preempt=True):
                    pending.append(p)
        for name, target in targets_for.items():
            if ready_when[name] is None and target is not None and sum(1 for r in ready_at[name] if r <= t) >= target:
                ready_when[name] = t
        if t % sample_seconds == 0:
            series.append(_sample(t, apps, results, ready_at, pending, nodes, groups))
        starting = latest_ready > t
        if not upcoming and not starting and t >= last_creation and t - last_change > scan \
                and t % sample_seconds == 0:
            break  # nothing more will happen: every app is Ready, or what is Pending can get no node
        t += 1

    bursts = [AppBurst(w.name, results[w.name], targets_for[w.name], ready_when[w.name], w.pod) for w in apps]
    return Burst(
        target_seconds=targets.ready_goal_seconds, apps=sorted(bursts, key=lambda a: a.name), series=series,
        nodes_before=nodes_before,
        nodes_after={g.name: sum(1 for n in nodes if n.group is g) for g in groups},
        capped_groups=sorted(capped),
        settings={"peakMultiplier": targets.peak_multiplier, "draw": draw.label,
                  "scanIntervalSeconds": autoscaler.scan_interval_seconds,
                  "expendablePodsPriorityCutoff": autoscaler.expendable_cutoff,
                  "nodePodShare": targets.node_pod_share})


def _preempt(nodes: list[Node], pod: PodShape, priority: int, now: int, pending: list[_Pending]) -> Node | None:
    """The first node where evicting the fewest lower-priority placeholders makes room; they go Pending."""
    best: tuple[int, Node, list[int]] | None = None
    for node in nodes:
        if not pod.admitted_by(node.group):
            continue
        victims = sorted((i for i, (_, prio, _) in enumerate(node.pods) if prio < min(priority, 0)),
                         key=lambda i: (node.pods[i][1], -node.pods[i][2].cpu_millicores))
        cpu, mem, slots, chosen = node.free_cpu, node.free_mem, node.free_pods, []
        for i in victims:
            if cpu >= pod.cpu_millicores and mem >= pod.memory_mib and slots >= 1:
                break
            shape = node.pods[i][2]
            cpu, mem, slots = cpu + shape.cpu_millicores, mem + shape.memory_mib, slots + 1
            chosen.append(i)
        if chosen and cpu >= pod.cpu_millicores and mem >= pod.memory_mib and slots >= 1 \
                and (best is None or len(chosen) < best[0]):
            best = (len(chosen), node, chosen)
    if best is None:
        return None
    _, node, chosen = best
    for i in sorted(chosen, reverse=True):
        name, prio, shape = node.evict(i)
        pending.append(_Pending(name, prio, shape, now))
    return node


def _scale_up(groups: list[NodeGroup], nodes: list[Node], upcoming: list[tuple[int, NodeGroup]],
              pods: list[_Pending], share: float, capped: set[str]) -> list[NodeGroup]:
    """The nodes one scan asks for: the pods fill the nodes already on their way first."""
    shadow = [new_node(g, share) for _, g in upcoming]
    added: list[Node] = []
    for p in sorted(pods, key=lambda p: (-p.priority, -p.pod.cpu_millicores, p.since)):
        node = next((n for n in shadow + added if p.pod.admitted_by(n.group) and n.fits(p.pod)), None)
        if node is None:
            extra: dict[int, int] = {}
            for n in shadow + added:
                extra[id(n.group)] = extra.get(id(n.group), 0) + 1
            node = open_node(nodes, groups, p.pod, share, extra)
            if node is None:
                capped.update(g.name for g in groups if p.pod.admitted_by(g) and p.priority >= 0)
                continue
            added.append(node)
        node.place(p.name, p.priority, p.pod)
    return [n.group for n in added]


def _sample(t: int, apps: list[Workload], results: dict[str, ScaleUpResult], ready_at: dict[str, list[int]],
            pending: list[_Pending], nodes: list[Node], groups: list[NodeGroup]) -> dict:
    out = {}
    for w in apps:
        ready = sum(1 for r in ready_at[w.name] if r <= t)
        starting = sum(1 for r in ready_at[w.name] if r > t)
        out[w.name] = {"demand": results[w.name].needed_replicas, "ready": ready, "starting": starting,
                       "pending": sum(1 for p in pending if p.name == w.name)}
    return {"t": t, "apps": out, "nodes": {g.name: sum(1 for n in nodes if n.group is g) for g in groups}}


def with_headroom(workloads: list[Workload], extra_replicas: int) -> list[Workload] | None:
    """The workloads with ``extra_replicas`` more of the (first) placeholder; None if none is declared."""
    placeholders = [w for w in workloads if w.placeholder]
    if not placeholders:
        return None
    first = placeholders[0]
    return [replace(w, replicas=w.replicas + extra_replicas) if w is first else w for w in workloads]


@dataclass(frozen=True)
class AppSpread:
    """One app's time to Ready over the draws: ``None`` where some draw never gets there."""

    name: str
    p50: int | None
    p95: int | None
    worst: int | None


@dataclass
class BurstDistribution:
    """``samples`` seeded bursts and the worst case (every timing at its high end)."""

    target_seconds: int
    samples: int
    seed: int
    apps: list[AppSpread]
    #: The worst-case burst: its series, nodes and caps are what the report and the chart show.
    worst_case: Burst
    timings_as_of: str
    facts: dict[str, AppFacts] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every app's 95th percentile within the goal: what capacity-time-to-scale judges."""
        return all(a.p95 is not None and a.p95 <= self.target_seconds for a in self.apps)

    def p95_seconds(self) -> dict[str, int | None]:
        return {a.name: a.p95 for a in self.apps}

    def as_dict(self) -> dict[str, dict[str, int | None]]:
        return {a.name: {"p50": a.p50, "p95": a.p95, "worst": a.worst} for a in self.apps}


def _percentile(values: list[float], q: float) -> int | None:
    """The nearest-rank percentile; None when it falls on a draw that never got there."""
    ordered = sorted(values)
    value = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    return None if value == math.inf else int(value)


def facts_for(declared: list[Declared], workloads: list[Workload]) -> dict[str, AppFacts]:
    """What each autoscaled app's declared resources fix about its timings (``capacity/timings.py``)."""
    out = {}
    for w in workloads:
        if w.autoscaled is None:
            continue
        meta = w.autoscaled.deployment.get("metadata") or {}
        out[w.name] = app_facts(declared, w.name, meta.get("namespace"), w.autoscaled.key, w.autoscaled.deployment)
    return out


def distribution(groups: list[NodeGroup], workloads: list[Workload], targets: ScalingSettings,
                 autoscaler: AutoscalerSettings, facts: dict[str, AppFacts], samples: int = SAMPLES,
                 seed: int = SEED) -> BurstDistribution:
    """p50, p95 and the worst case of every app's time to Ready over ``samples`` seeded draws."""
    table = load_timings()
    worst_case = simulate(groups, workloads, targets, autoscaler, Draw.worst(table, facts))
    runs = [simulate(groups, workloads, targets, autoscaler, Draw.sampled(table, facts, seed + i))
            for i in range(samples)]
    spreads = []
    for app in worst_case.apps:
        values = [math.inf if (r := run.ready_seconds()[app.name]) is None else float(r) for run in runs]
        top = max(values + [math.inf if app.ready_seconds is None else float(app.ready_seconds)])
        spreads.append(AppSpread(app.name, _percentile(values, 0.5), _percentile(values, 0.95),
                                 None if top == math.inf else int(top)))
    return BurstDistribution(targets.ready_goal_seconds, samples, seed, spreads, worst_case, table.as_of, facts)


def headroom_to_meet(groups: list[NodeGroup], workloads: list[Workload], targets: ScalingSettings,
                     autoscaler: AutoscalerSettings, facts: dict[str, AppFacts] | None = None,
                     limit: int = 256, samples: int = SAMPLES, point: Draw | None = None) -> int | None:
    """The fewest extra placeholder replicas (at the declared size) that bring every app's p95 within
    the Ready goal (with ``point``: that one draw within it); None if no amount up to ``limit`` does
    (the decision plus start-up alone is late, or no placeholder)."""
    def meets(k: int) -> bool:
        candidate = with_headroom(workloads, k)
        if candidate is None:
            return False
        if point is not None:
            return simulate(groups, candidate, targets, autoscaler, point).ok
        return distribution(groups, candidate, targets, autoscaler, facts or {}, samples).ok

    if not meets(limit):
        return None
    lo, hi = 0, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi
