"""Time-to-scale of a HorizontalPodAutoscaler, from its declared spec and the documented algorithm.

Everything here takes plain dicts shaped like the HPA ``spec`` the engine sees (camelCase:
``minReplicas``, ``maxReplicas``, ``behavior.scaleUp.policies[].{type,value,periodSeconds}``,
``selectPolicy``, ``stabilizationWindowSeconds``), so the preview report and the policy pack use
the very same arithmetic. A KEDA ScaledObject is turned into the HPA spec KEDA generates with
``hpa_spec_from_scaled_object``.

The model (what ``time_to_scale`` computes):
- The load steps at t=0 from quiet to ``peak_multiplier`` x the baseline load, where the baseline
  load is what ``baseline_replicas`` pods carry at exactly the metric target. The deployment
  starts at ``minReplicas`` (quiet before the burst: the worst case).
- The HPA controller syncs every ``hpaSyncPeriodSeconds`` of the timing table (15 s,
  kube-controller-manager's ``--horizontal-pod-autoscaler-sync-period``), at
  ``sync_offset_seconds`` + k x period. Each metric shows the peak from its own lag on
  (``metric_lags``; one ``metric_lag_seconds`` for all otherwise); a sync reads the metrics whose
  lag has passed and takes the largest proposal (the controller's max over metrics).
- Saturation: a metric with a ``cap`` (CPU or memory with a limit: limit/request over the target
  utilization) reports at most ``cap`` pods' worth of load per ready pod, so a 5x step can read as
  less and take several decisions; pods count as ready ``startup_seconds`` after the decision that
  made them (the controller counts unready pods at zero usage when scaling up). A metric without a
  cap (a gauge, a queue length) reports the whole load.
- Each sync: ``desired = ceil(current x metric / target)``, skipped while
  ``|metric/target - 1| <= 0.1`` (the controller's tolerance). With a step load, every metric
  that tracks load gives the same desired count, and pods that are not yet ready do not change it
  (the controller counts them at zero usage, so ``ceil(ratio x pods)`` is still the total load
  over the target). Memory is assumed to follow load like the others.
- Scale-up stabilization: the recommendation is the minimum of the recommendations recorded in
  the last ``stabilizationWindowSeconds`` (pre-burst ones were ``minReplicas``).
- Rate limit: per policy, ``Pods``: period-start replicas + value; ``Percent``:
  ``ceil(period-start x (1 + value/100))``, where period-start = current minus the replicas added
  within the policy's ``periodSeconds``; ``selectPolicy`` Max takes the largest, Min the smallest,
  Disabled forbids scaling up; never above ``maxReplicas``.
- Pod start-up (image pull, probes) is not part of the decision time; the report adds a
  configured start-up time separately.
These are the rules of ``pkg/controller/podautoscaler`` (``calculateScaleUpLimitWithScalingRules``,
``stabilizeRecommendationWithBehaviors``) as documented for autoscaling/v2.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from capacity.timings import load_timings

_TABLE = load_timings()
SYNC_PERIOD_SECONDS = _TABLE.high("hpaSyncPeriodSeconds")
TOLERANCE = 0.1
#: Kubernetes' defaults when ``behavior`` (or one of its directions) is not declared (the table's).
DEFAULT_SCALE_UP = _TABLE.hpa_default_behavior["scaleUp"]
DEFAULT_SCALE_DOWN = _TABLE.hpa_default_behavior["scaleDown"]
#: KEDA's defaults for a ScaledObject without minReplicaCount / maxReplicaCount.
KEDA_DEFAULT_MIN, KEDA_DEFAULT_MAX = 0, 100


def scaling_rules(hpa_spec: dict, direction: str) -> dict:
    """The effective ``scaleUp`` or ``scaleDown`` rules, with Kubernetes' defaults filled in."""
    default = DEFAULT_SCALE_UP if direction == "scaleUp" else DEFAULT_SCALE_DOWN
    declared = ((hpa_spec.get("behavior") or {}).get(direction)) or {}
    return {
        "stabilizationWindowSeconds": int(declared.get("stabilizationWindowSeconds",
                                                       default["stabilizationWindowSeconds"])),
        "selectPolicy": declared.get("selectPolicy") or "Max",
        "policies": declared.get("policies") or default["policies"],
    }


def hpa_spec_from_scaled_object(scaled_object_spec: dict) -> dict:
    """The HPA spec that KEDA generates for a ScaledObject (replica bounds and behavior)."""
    advanced = (scaled_object_spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}
    spec = {
        "scaleTargetRef": scaled_object_spec.get("scaleTargetRef", {}),
        # KEDA scales 0 <-> 1 itself; the HPA it owns never goes below one replica.
        "minReplicas": max(1, int(scaled_object_spec.get("minReplicaCount", KEDA_DEFAULT_MIN))),
        "maxReplicas": int(scaled_object_spec.get("maxReplicaCount", KEDA_DEFAULT_MAX)),
    }
    if advanced.get("behavior"):
        spec["behavior"] = advanced["behavior"]
    return spec


def scaled_object_floor(scaled_object_spec: dict) -> int:
    """Fewest pods a ScaledObject leaves its Deployment with: KEDA itself scales below the floor of
    the HPA it generates (which never goes under one), to ``idleReplicaCount`` while no trigger is
    active when that is set, else to ``minReplicaCount`` (default 0). Field defaults as documented
    in the ScaledObject specification (kedacore/keda-docs content/docs/2.15/reference/scaledobject-spec.md)."""
    idle = scaled_object_spec.get("idleReplicaCount")
    if idle is not None:
        return int(idle)
    return int(scaled_object_spec.get("minReplicaCount", KEDA_DEFAULT_MIN))


def scale_up_limit(current: int, events: list[tuple[int, int]], rules: dict, now: int) -> int:
    """Most replicas the scale-up policies allow at ``now``, given earlier (time, added) events."""
    select = rules["selectPolicy"]
    if select == "Disabled":
        return current
    result: int | None = None
    for policy in rules["policies"]:
        period = int(policy["periodSeconds"])
        added = sum(n for at, n in events if at > now - period)
        start = current - added
        if policy["type"] == "Pods":
            proposed = start + int(policy["value"])
        else:
            proposed = math.ceil(Fraction(start) * (1 + Fraction(int(policy["value"]), 100)))
        result = proposed if result is None else min(result, proposed) if select == "Min" else max(result, proposed)
    return current if result is None else max(result, current)


@dataclass(frozen=True)
class ScaleUpResult:
    """Outcome of ``time_to_scale``. Times are seconds after the load step."""

    min_replicas: int
    max_replicas: int
    baseline_replicas: int
    #: Replicas the peak load needs at the metric target (``ceil(baseline x multiplier)``).
    needed_replicas: int
    #: Replica count after each scaling decision: ``(seconds, replicas)``.
    steps: list[tuple[int, int]] = field(default_factory=list)
    #: Replicas reached when the controller stopped scaling (or at the horizon).
    reached_replicas: int = 0
    #: When the last decision needed for the peak was taken; None if it never is.
    decided_at_seconds: int | None = None

    @property
    def capped_by_max(self) -> bool:
        return self.needed_replicas > self.max_replicas

    @property
    def first_step_seconds(self) -> int | None:
        return self.steps[0][0] if self.steps else None

    @property
    def first_step_pods(self) -> int:
        return self.steps[0][1] - self.min_replicas if self.steps else 0


def time_to_scale(hpa_spec: dict, *, baseline_replicas: int | None = None,
                  peak_multiplier: float = 5.0, metric_lag_seconds: int = 0,
                  sync_period_seconds: int = SYNC_PERIOD_SECONDS, tolerance: float = TOLERANCE,
                  horizon_seconds: int = 1800, sync_offset_seconds: int = 0,
                  metric_lags: list[tuple[int, Fraction | None]] | None = None,
                  startup_seconds: int = 0) -> ScaleUpResult:
    """Simulate the controller from ``minReplicas`` under a step to ``peak_multiplier`` x baseline."""
    min_r = int(hpa_spec.get("minReplicas", 1))
    max_r = int(hpa_spec["maxReplicas"])
    baseline = int(baseline_replicas or min_r)
    load = Fraction(baseline) * Fraction(str(peak_multiplier))  # pods' worth of work at target
    needed = math.ceil(load)
    rules = scaling_rules(hpa_spec, "scaleUp")
    window = rules["stabilizationWindowSeconds"]
    tol = Fraction(str(tolerance))

    lags = metric_lags or [(metric_lag_seconds, None)]
    earliest = min(lag for lag, _ in lags)
    first_sync = sync_offset_seconds + max(0, math.ceil((earliest - sync_offset_seconds) / sync_period_seconds)) \
        * sync_period_seconds
    # Before the burst the controller recommended minReplicas at every sync.
    history = [(first_sync - k * sync_period_seconds, min_r)
               for k in range(1, window // sync_period_seconds + 2)]
    events: list[tuple[int, int]] = []
    steps: list[tuple[int, int]] = []
    current = min_r
    decided_at = 0 if current * (1 + tol) >= load else None

    t = first_sync
    while decided_at is None and t <= first_sync + horizon_seconds:
        ready = min_r + sum(n for at, n in events if at + startup_seconds <= t)
        seen = [load if cap is None else min(load, ready * cap) for lag, cap in lags if lag <= t]
        observed = max(seen, default=Fraction(0))
        ratio = observed / current
        raw = current if ratio <= 1 or abs(ratio - 1) <= tol else math.ceil(observed)
        stabilized = raw
        for at, recommendation in history:
            if at > t - window:
                stabilized = min(stabilized, recommendation)
        history.append((t, raw))
        new = current
        if stabilized > current:
            new = min(stabilized, max_r, scale_up_limit(current, events, rules, t))
        new = max(new, min_r)
        if new > current:
            events.append((t, new - current))
            steps.append((t, new))
            current = new
        if current * (1 + tol) >= load or current >= max_r:
            decided_at = t if current * (1 + tol) >= load else None
            break
        t += sync_period_seconds
    return ScaleUpResult(min_replicas=min_r, max_replicas=max_r, baseline_replicas=baseline,
                         needed_replicas=needed, steps=steps, reached_replicas=current,
                         decided_at_seconds=decided_at)


# --- pod requests -----------------------------------------------------------------------------

_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIX: dict[str, Fraction | int] = {"": 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity(value: Any) -> Fraction:
    """A Kubernetes resource quantity (``"250m"``, ``"1"``, ``"512Mi"``) as an exact number."""
    if isinstance(value, (int, float)):
        return Fraction(str(value))
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return Fraction(match.group(1)) * _SUFFIX[match.group(2)]


def pod_requests(pod_spec: dict) -> tuple[int, int]:
    """CPU millicores and memory MiB that one pod requests (sum over its containers)."""
    cpu = mem = Fraction(0)
    for container in pod_spec.get("containers", []):
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += quantity(requests.get("cpu", 0))
        mem += quantity(requests.get("memory", 0))
    return math.ceil(cpu * 1000), math.ceil(mem / 2**20)
