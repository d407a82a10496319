"""Time-to-scale of a whole stack: every autoscaled Deployment against the stack's scaling targets.

The preview's ``time-to-scale`` report and the pack's ``capacity-time-to-scale`` rule both call
``evaluate`` on the same declared objects, so the two can never disagree. Inputs are plain
manifests shaped like the Kubernetes objects the engine sees (``{"metadata": ..., "spec": ...}``,
camelCase); each caller passes its own key with every object (a resource name, a URN) and gets it
back on the result, to point at the offending resource.

What ``evaluate`` decides, per app (``capacity/hpa.py`` ``time_to_scale`` does the arithmetic):
- not ok when ``maxReplicas`` is below the replicas the peak needs, when the HPA never asks for
  them, when the first scale-up step comes after ``scaleUpWithinSeconds``, or when a goal app
  decides after ``timeToScaleGoalSeconds``;
and for the stack: the first step of every app at once must fit the pre-warmed headroom (the
placeholder pods of ``capacity/headroom.py`` ``placeholders``), packing each pod into one
placeholder; a stack may opt out with ``requireHeadroomCoverage: false``. Without any placeholder
declared, coverage is not checked.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Annotated

from capacity.headroom import HeadroomFigures
from capacity.hpa import ScaleUpResult, hpa_spec_from_scaled_object, pod_requests, scaled_object_floor, time_to_scale
from capacity.schema import Between, CamelCase
from capacity.timings import load_timings

HPA_KIND = "HorizontalPodAutoscaler"
#: The decision check's metric lag: one metrics-server resolution (capacity/timings.yaml), on the
#: sync grid. The burst simulation (capacity/burst.py) draws every metric's own lag instead.
DECISION_LAG_SECONDS = load_timings().high("metricsServerResolutionSeconds")
SCALED_OBJECT_KIND = "ScaledObject"


@dataclass(frozen=True, kw_only=True)
class ScalingSettings(CamelCase):
    """``cofounder:scaling``: the stack-wide scaling targets the time-to-scale report and rule check."""

    #: Peak load to absorb, as a multiple of today's peak.
    peak_multiplier: Annotated[float, Between(1, 50)] = 5.0
    #: The HPA must have decided the full peak replica count within this many seconds (goal apps).
    time_to_scale_goal_seconds: Annotated[int, Between(15, 900)] = 45
    #: The first scale-up decision must come within this many seconds of the load step (every app).
    scale_up_within_seconds: Annotated[int, Between(15, 900)] = 60
    #: p99 latency target per service (seed: under 200 ms): the alert threshold and the load test's pass mark.
    p99_latency_ms: Annotated[int, Between(10, 10000)] = 200
    #: Most pods any app's autoscaler (HPA or KEDA ScaledObject) may scale to: bounds cost and
    #: database connections. Every ``cofounder:apps.<name>.maxReplicas`` must stay at or below it,
    #: and the pack's ``k8s-hpa-max-replicas-bounded`` checks the declared autoscalers against it.
    max_replicas_per_app: Annotated[int, Between(1, None)] = 50
    #: Every app must have the peak's replicas Ready within this many seconds of the load step at the
    #: 95th percentile of the simulated bursts (the seed's 60 s scale-up criterion, end to end: metric
    #: lag, HPA, headroom or a new node, start-up; every timing from capacity/timings.yaml).
    ready_goal_seconds: Annotated[int, Between(15, 1800)] = 60
    #: Share of a node's allocatable CPU and memory the declared pods may use; the rest is left to
    #: DaemonSets and the pods Helm charts add (the capacity-node-groups-hold-hpa-max rule's 0.9).
    node_pod_share: Annotated[float, Between(0.1, 1)] = 0.9
    #: Replicas each app runs at today's peak; missing apps default to their minReplicas.
    baseline_replicas: dict[str, Annotated[int, Between(1, None)]] = field(default_factory=dict)
    #: Apps held to ``timeToScaleGoalSeconds``.
    goal_apps: list[str] = field(default_factory=lambda: ["backend", "worker"])
    #: The time-to-scale report fails when the pre-warmed headroom cannot hold the first scale-up
    #: step of every app at once (``cofounder:cluster.headroom``); a small dev stack may opt out.
    require_headroom_coverage: bool = True
    #: Today's peak concurrent users: the load test (loadtest/) runs peakMultiplier times as many.
    #: Every stack declares it; null leaves it to the load test's --peak-users.
    peak_users: Annotated[int | None, Between(1, None)] = None
    #: Today's peak requests per second: the load test targets peakMultiplier times this and fails
    #: below 95 % of it. Every stack declares it; null leaves it to --peak-rps.
    peak_rps: Annotated[float | None, Between(0.1, None)] = None



#: What the time-to-scale verdict reads of the settings (the rest is for the load test).
ScalingTargets = ScalingSettings


@dataclass(frozen=True)
class Autoscaled:
    """One autoscaled Deployment: the HPA spec that drives it and the Deployment ({} if not declared)."""

    key: Hashable
    app: str
    kind: str
    hpa_spec: dict
    deployment: dict
    #: Fewest pods the autoscaler leaves: the HPA's minReplicas, or what a ScaledObject scales to
    #: when idle (``capacity/hpa.py`` ``scaled_object_floor``), which can be below its HPA's.
    min_pods: int = 1

    @property
    def pod_template(self) -> dict:
        return ((self.deployment.get("spec") or {}).get("template")) or {}

    @property
    def pod_spec(self) -> dict:
        return self.pod_template.get("spec") or {}


def autoscaled(deployments: Iterable[dict], autoscalers: Iterable[tuple[Hashable, str, dict]]) -> list[Autoscaled]:
    """Each autoscaler ``(key, kind, manifest)`` with the Deployment its scaleTargetRef names.

    ``kind`` is ``HorizontalPodAutoscaler`` or ``ScaledObject`` (turned into the HPA KEDA
    generates). The Deployment is matched by namespace and name. Sorted by app.
    """
    by_name = {(_meta(d).get("namespace"), _meta(d).get("name")): d for d in deployments}
    found = []
    for key, kind, manifest in autoscalers:
        spec = declared = manifest.get("spec") or {}
        if kind == SCALED_OBJECT_KIND:
            spec = hpa_spec_from_scaled_object(declared)
            min_pods = scaled_object_floor(declared)
        else:
            min_pods = 1 if spec.get("minReplicas") is None else int(spec["minReplicas"])
        app = (spec.get("scaleTargetRef") or {}).get("name")
        deployment = by_name.get((_meta(manifest).get("namespace"), app), {})
        found.append(Autoscaled(key, str(app or ""), kind, spec, deployment, min_pods))
    return sorted(found, key=lambda a: (str(a.app), a.kind))


def _meta(manifest: dict) -> dict:
    return manifest.get("metadata") or {}


def pack_into_headroom(pods: list[tuple[int, int]], headroom: Iterable[HeadroomFigures]) -> bool:
    """Whether pods ``(cpu m, memory MiB)`` fit the placeholders, first-fit decreasing.

    A pod only takes the room of placeholders on one node, so each pod must fit inside one
    placeholder's remaining share; several small pods may share one placeholder.
    """
    slots = [[h.cpu_millicores, h.memory_mib] for h in headroom for _ in range(h.replicas)]
    for cpu, mem in sorted(pods, reverse=True):
        slot = next((s for s in slots if s[0] >= cpu and s[1] >= mem), None)
        if slot is None:
            return False
        slot[0] -= cpu
        slot[1] -= mem
    return True


@dataclass(frozen=True)
class AppScaleUp:
    """One app's simulated scale-up and its verdict against the targets."""

    autoscaled: Autoscaled
    result: ScaleUpResult
    #: ``timeToScaleGoalSeconds`` for a goal app, None for the others.
    goal_seconds: int | None
    scale_up_within_seconds: int

    @property
    def late_first_step(self) -> bool:
        return (self.result.first_step_seconds or 0) > self.scale_up_within_seconds

    @property
    def missed_goal(self) -> bool:
        decided = self.result.decided_at_seconds
        return self.goal_seconds is not None and decided is not None and decided > self.goal_seconds

    @property
    def ok(self) -> bool:
        return not (self.result.capped_by_max or self.result.decided_at_seconds is None
                    or self.late_first_step or self.missed_goal)


@dataclass(frozen=True)
class StackScaleUp:
    apps: list[AppScaleUp]
    #: ``(cpu m, memory MiB)`` of every pod the apps' first steps add, all at once.
    first_step_pods: list[tuple[int, int]]
    headroom: list[HeadroomFigures]
    #: Whether the first steps fit the headroom (False when the stack declares none).
    covered: bool
    require_coverage: bool

    @property
    def headroom_short(self) -> bool:
        return self.covered is False and self.require_coverage

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.apps) and not self.headroom_short


def evaluate(apps: list[Autoscaled], targets: ScalingTargets, headroom: list[HeadroomFigures]) -> StackScaleUp:
    """Every app's time to scale under the peak and the headroom check (see the module docstring)."""
    results, first_step_pods = [], []
    for app in apps:
        result = time_to_scale(app.hpa_spec, baseline_replicas=targets.baseline_replicas.get(app.app),
                               peak_multiplier=targets.peak_multiplier, metric_lag_seconds=DECISION_LAG_SECONDS)
        first_step_pods += [pod_requests(app.pod_spec) if app.pod_spec else (0, 0)] * result.first_step_pods
        goal = targets.time_to_scale_goal_seconds if app.app in targets.goal_apps else None
        results.append(AppScaleUp(app, result, goal, targets.scale_up_within_seconds))
    # A stack with no placeholders has nothing pre-warmed: any first step waits for a node.
    covered = pack_into_headroom(first_step_pods, headroom)
    return StackScaleUp(results, first_step_pods, list(headroom), covered, targets.require_headroom_coverage)

