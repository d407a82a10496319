"""The timings of a burst, as data: the sourced table (``capacity/timings.yaml``) and what each app declares.

``load_timings`` reads the table: every figure a range ``[low, high]`` with its source and read
date. ``app_facts`` reads, per autoscaled app, what its declared resources fix (pure functions over
``capacity/fleet.py`` ``Declared``, the same list the reports and the pack build):
- the metrics its autoscaler reads, each as a path with its own lag: CPU/memory through
  metrics-server (a rate over one resolution: the step shows in full one resolution plus the
  scrape phase later; a saturated pod reports at most limit/request), a Pods metric through the
  Prometheus adapter (a gauge: the scrape phase of the app's ServiceMonitor), an External metric
  through KEDA (the scaler's query; plus the polling phase when ``useCachedMetrics``);
- its startup and readiness probes (Kubernetes' defaults where a field is unset);
- whether it waits for the ALB: the namespace injects the AWS Load Balancer Controller's readiness
  gate and a TargetGroupBinding serves its Service; then the target group's health-check interval.

``Draw`` is one realisation of every phase: ``sampled`` draws each range uniformly from a seeded
``random.Random`` (the burst simulation runs many), ``worst`` puts every range and phase at its
high end, and ``fixed`` takes point values (the hand-computed tests).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:  # capacity.fleet imports this module
    from capacity.fleet import PodShape

TIMINGS_PATH = Path(__file__).with_name("timings.yaml")

NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
TARGET_GROUP_BINDING = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
DAEMON_SET = "kubernetes:apps/v1:DaemonSet"
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
APP_LABEL = "app.kubernetes.io/name"


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    source: str
    assumption: bool = False

    def draw(self, rng: random.Random | None) -> float:
        return self.high if rng is None else rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class TimingTable:
    as_of: str
    ranges: dict[str, Range]
    probe_defaults: dict[str, int]
    hpa_default_behavior: dict[str, dict]
    expendable_cutoff: int

    def __getitem__(self, key: str) -> Range:
        return self.ranges[key]

    def high(self, key: str) -> int:
        return math.ceil(self.ranges[key].high)

    def as_dict(self) -> dict:
        return {"asOf": self.as_of, "ranges": {k: [r.low, r.high] for k, r in sorted(self.ranges.items())},
                "assumptions": sorted(k for k, r in self.ranges.items() if r.assumption)}


@lru_cache(maxsize=4)
def load_timings(path: Path = TIMINGS_PATH) -> TimingTable:
    doc = yaml.safe_load(path.read_text()) or {}
    entries = doc.get("timings") or {}
    ranges = {k: Range(float(v["range"][0]), float(v["range"][1]), str(v.get("source", "")),
                       bool(v.get("assumption", False)))
              for k, v in entries.items() if "range" in v}
    probes = entries["probeDefaults"]
    behavior = entries["hpaDefaultBehavior"]
    return TimingTable(as_of=str(doc.get("asOf")), ranges=ranges,
                       probe_defaults={k: int(probes[k]) for k in ("initialDelaySeconds", "periodSeconds",
                                                                  "successThreshold")},
                       hpa_default_behavior={"scaleUp": behavior["scaleUp"], "scaleDown": behavior["scaleDown"]},
                       expendable_cutoff=int(entries["clusterAutoscalerExpendableCutoff"]["value"]))


# --- what the apps declare --------------------------------------------------------------------


@dataclass(frozen=True)
class MetricPath:
    """One metric an autoscaler reads: how its lag is made, and the most it can report."""

    #: ``resource`` (metrics-server), ``pods`` (Prometheus adapter), ``external`` (KEDA).
    kind: str
    #: The scrape (or polling) interval behind the lag, seconds.
    interval_seconds: float
    #: Most pods' worth of load at the target one ready pod can report (limit / request over the
    #: target); None when the metric does not saturate (a gauge or a queue length).
    cap: Fraction | None = None
    #: Seconds a rate query adds before a step shows in full (``irate``: one scrape; ``rate[w]``: w).
    window_seconds: float = 0.0


@dataclass(frozen=True)
class Probe:
    initial_delay_seconds: int
    period_seconds: int
    success_threshold: int = 1


@dataclass(frozen=True)
class AppFacts:
    metrics: tuple[MetricPath, ...]
    startup: Probe | None
    readiness: Probe | None
    #: The target group's health-check interval when the pod waits for the ALB's readiness gate.
    alb_interval_seconds: int | None = None
    #: Where a DaemonSet keeps the app's image (components/image_prepuller.py): the pod shapes
    #: (selector, tolerations) of the DaemonSets whose init containers pull it. A node at rest
    #: that one of them admits has the image.
    prepulled_on: tuple[PodShape, ...] = ()


def _seconds(value, default: float) -> float:
    text = str(value or "").strip()
    if not text:
        return default
    units = {"s": 1, "m": 60, "h": 3600}
    if text[-1] in units:
        return float(text[:-1]) * units[text[-1]]
    return float(text)


def _probe(spec: dict | None, defaults: dict[str, int]) -> Probe | None:
    if not spec:
        return None
    return Probe(int(spec.get("initialDelaySeconds", defaults["initialDelaySeconds"])),
                 max(1, int(spec.get("periodSeconds", defaults["periodSeconds"]))),
                 max(1, int(spec.get("successThreshold", defaults["successThreshold"]))))


def _resource_cap(container_resources: dict, name: str, target: dict) -> Fraction | None:
    from capacity.hpa import quantity

    request = (container_resources.get("requests") or {}).get(name)
    limit = (container_resources.get("limits") or {}).get(name)
    if request is None or limit is None:
        return None  # no limit: a pod may use what the node has; treated as not saturating
    if target.get("averageUtilization") is not None or target.get("type") == "Utilization":
        utilization = Fraction(str(target.get("averageUtilization", target.get("value", 100)))) / 100
        return (quantity(limit) / quantity(request)) / utilization
    if target.get("averageValue") is not None:
        return quantity(limit) / quantity(target["averageValue"])
    return None


def _selects(monitor: dict, app: str) -> bool:
    return (((monitor.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}).get(APP_LABEL) == app


def _adapter_queries(items: list) -> dict[str, str]:
    """The declared prometheus-adapter rules' metricsQuery by the metric name they serve."""
    out: dict[str, str] = {}
    for r in items:
        if r.type == HELM_RELEASE and str(r.props.get("chart", "")).rsplit("/", 1)[-1] == "prometheus-adapter":
            for rule in ((r.props.get("values") or {}).get("rules") or {}).get("custom") or []:
                out[str((rule.get("name") or {}).get("as"))] = str(rule.get("metricsQuery") or "")
    return out


def _query_window(query: str, scrape_seconds: float) -> float:
    """A gauge shows a step at the next scrape; ``irate`` needs the scrape after that one too (its
    last two samples both after the step); ``rate(...[w])`` reaches the full rate after ``w``."""
    if "irate(" in query:
        return scrape_seconds
    match = re.search(r"rate\([^\]]*\[([0-9]+[smh]?)\]", query)
    return _seconds(match.group(1), 0.0) if match else 0.0


def app_facts(declared: Iterable, app: str, namespace: str | None, autoscaler_key: Hashable,
              deployment: dict, table: TimingTable | None = None) -> AppFacts:
    """What ``app``'s declared resources fix about its burst timings (see the module docstring)."""
    table = table or load_timings()
    items = list(declared)
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    container = (pod.get("containers") or [{}])[0]
    resources = container.get("resources") or {}
    default_scrape = float(table.high("prometheusScrapeIntervalSeconds"))
    monitors = [r.props for r in items if r.type == SERVICE_MONITOR and _selects(r.props, app)]
    scrape = (_seconds(((monitors[0].get("spec") or {}).get("endpoints") or [{}])[0].get("interval"), default_scrape)
              if monitors else default_scrape)
    queries = _adapter_queries(items)
    resolution = float(table.high("metricsServerResolutionSeconds"))
    autoscaler = next((r for r in items if r.key == autoscaler_key), None)
    props = autoscaler.props if autoscaler else {}
    spec = props.get("spec") or {}
    paths: list[MetricPath] = []
    for metric in spec.get("metrics") or []:  # an HPA
        kind = metric.get("type")
        if kind == "Resource":
            res = metric.get("resource") or {}
            paths.append(MetricPath("resource", resolution,
                                    _resource_cap(resources, res.get("name", "cpu"), res.get("target") or {})))
        elif kind in ("Pods", "Object"):
            name = str(((metric.get("pods") or metric.get("object") or {}).get("metric") or {}).get("name", ""))
            paths.append(MetricPath("pods", scrape, None, _query_window(queries.get(name, ""), scrape)))
        elif kind == "External":
            paths.append(MetricPath("external", 0.0))
    for trigger in spec.get("triggers") or []:  # a ScaledObject: cpu/memory become Resource metrics
        kind = trigger.get("type")
        if kind in ("cpu", "memory"):
            target = {"type": trigger.get("metricType", "Utilization"),
                      "value": (trigger.get("metadata") or {}).get("value")}
            paths.append(MetricPath("resource", resolution, _resource_cap(resources, kind, target)))
        else:
            cached = bool(trigger.get("useCachedMetrics"))
            polling = float(spec.get("pollingInterval", table.high("kedaPollingIntervalSeconds")))
            paths.append(MetricPath("external", polling if cached else 0.0))
    if not paths:  # autoscaling/v2 without metrics: 80% CPU (the API default)
        paths.append(MetricPath("resource", resolution,
                                _resource_cap(resources, "cpu", {"averageUtilization": 80})))
    defaults = table.probe_defaults
    alb = None
    gated = any(r.type == NAMESPACE and (r.props.get("metadata") or {}).get("name") == namespace
                and ((r.props.get("metadata") or {}).get("labels") or {}).get(READINESS_GATE_LABEL) == "enabled"
                for r in items)
    binding = next((r for r in items if r.type == TARGET_GROUP_BINDING
                    and (r.props.get("metadata") or {}).get("namespace") == namespace
                    and ((r.props.get("spec") or {}).get("serviceRef") or {}).get("name") == app), None)
    if gated and binding is not None:
        arn = str((binding.props.get("spec") or {}).get("targetGroupARN") or "")
        group = next((r for r in items if r.type == TARGET_GROUP
                      and ((r.props.get("tags") or {}).get("app") == app or (arn and r.props.get("arn") == arn))),
                     None)
        health = (group.props.get("healthCheck") or {}) if group else {}
        alb = int(health.get("interval") or table.high("albHealthCheckIntervalSeconds"))
    return AppFacts(metrics=tuple(paths), startup=_probe(container.get("startupProbe"), defaults),
                    readiness=_probe(container.get("readinessProbe"), defaults), alb_interval_seconds=alb,
                    prepulled_on=_prepulled_on(items, container.get("image")))


def _prepulled_on(items: list, image: str | None) -> tuple[PodShape, ...]:
    """The pod shapes of the DaemonSets whose init containers pull ``image``."""
    from capacity.fleet import pod_shape  # capacity.fleet imports this module

    shapes = []
    for r in items:
        pod = ((r.props.get("spec") or {}).get("template") or {}).get("spec") or {}
        if r.type == DAEMON_SET and image and image in {c.get("image") for c in pod.get("initContainers") or []}:
            shapes.append(pod_shape({k: v for k, v in pod.items() if k != "initContainers"}))
    return tuple(shapes)


# --- one realisation of every phase -----------------------------------------------------------


@dataclass
class Draw:
    """Every phase of one simulated burst. ``rng`` None with ``fixed`` None: every range at its high end."""

    table: TimingTable
    rng: random.Random | None = None
    #: Point values for the hand-computed cases: metric lag, pod start-up, node provisioning.
    fixed: tuple[int, int, int] | None = None
    facts: dict[str, AppFacts] = field(default_factory=dict)
    label: str = "sampled"

    @classmethod
    def sampled(cls, table: TimingTable, facts: dict[str, AppFacts], seed: int) -> Draw:
        return cls(table, random.Random(seed), None, facts)

    @classmethod
    def worst(cls, table: TimingTable, facts: dict[str, AppFacts]) -> Draw:
        return cls(table, None, None, facts, "worst")

    @classmethod
    def point(cls, metric_lag_seconds: int, pod_startup_seconds: int, node_provisioning_seconds: int,
              table: TimingTable | None = None) -> Draw:
        return cls(table or load_timings(), None, (metric_lag_seconds, pod_startup_seconds,
                                                    node_provisioning_seconds), {}, "point")

    def _u(self, low: float, high: float) -> float:
        return high if self.rng is None else self.rng.uniform(low, high)

    def _r(self, key: str) -> float:
        return self.table[key].draw(self.rng)

    @property
    def sync_period_seconds(self) -> int:
        return self.table.high("hpaSyncPeriodSeconds")

    def sync_offset_seconds(self) -> int:
        """Where the HPA controller's 15 s clock stands at the load step (the first sync at or after it)."""
        if self.fixed is not None:
            return 0
        period = self.sync_period_seconds
        return min(period - 1, int(self._u(0, period)))

    def scan_offset_seconds(self, scan_seconds: int) -> int:
        if self.fixed is not None:
            return 0
        return min(scan_seconds - 1, int(self._u(0, scan_seconds)))

    def metric_lags(self, app: str) -> list[tuple[int, Fraction | None]]:
        """``(seconds until the peak shows in full, cap)`` per metric the app's autoscaler reads."""
        if self.fixed is not None:
            return [(self.fixed[0], None)]
        out = []
        for m in self.facts[app].metrics if app in self.facts else (MetricPath("resource", 15.0),):
            if m.kind == "resource":
                lag = m.interval_seconds + self._u(0, m.interval_seconds)
            elif m.kind == "pods":
                lag = self._u(0, m.interval_seconds) + m.window_seconds + self._r("prometheusAdapterQuerySeconds")
            else:
                lag = self._u(0, m.interval_seconds) + self._r("kedaScalerQuerySeconds")
            out.append((math.ceil(lag), m.cap))
        return out

    def registration_seconds(self) -> float:
        """The ALB registration of one decision's new pods (the controller registers them in one call)."""
        return self._r("albTargetRegistrationSeconds")

    def pod_startup_seconds(self, app: str, cached: bool, registration_seconds: float) -> int:
        """From scheduling to Ready (and, behind the ALB's gate, healthy in the target group)."""
        if self.fixed is not None:
            return self.fixed[1]
        t = self._r("schedulingAndContainerStartSeconds")
        if cached:
            t += self._r("imagePullCachedSeconds")
        else:
            t += self._r("imagePullUncachedFixedSeconds") + self._r("appImageSizeGib") * self._r(
                "imagePullUncachedSecondsPerGib")
        facts = self.facts.get(app)
        boot = self._r("appBootSeconds")
        ready = _probes_pass(boot, facts.startup if facts else None, facts.readiness if facts else None,
                             self.table.probe_defaults)
        t += ready
        if facts is not None and facts.alb_interval_seconds:
            interval = facts.alb_interval_seconds
            # Registered once the containers are ready; healthy after one check (ALB docs).
            t += registration_seconds + min(interval - 1e-9, self._u(0, interval))
        return math.ceil(t)

    def node_provisioning_seconds(self) -> int:
        if self.fixed is not None:
            return self.fixed[2]
        return math.ceil(self._r("ec2LaunchToNodeReadySeconds"))


def _probes_pass(boot: float, startup: Probe | None, readiness: Probe | None, defaults: dict[str, int]) -> float:
    """Seconds from container start until the readiness probe has passed: probes run on their grid
    (initialDelaySeconds, then every periodSeconds); readiness probes count only after the startup
    probe has passed; ``successThreshold`` consecutive passes."""
    def first_run_at_or_after(t: float, p: Probe) -> float:
        if t <= p.initial_delay_seconds:
            return float(p.initial_delay_seconds)
        return p.initial_delay_seconds + math.ceil((t - p.initial_delay_seconds) / p.period_seconds) * p.period_seconds

    started = first_run_at_or_after(boot, startup) if startup else boot
    if readiness is None:  # no readiness probe: Ready once the containers run (and started)
        return started
    first = first_run_at_or_after(max(started, boot), readiness)
    return first + (readiness.success_threshold - 1) * readiness.period_seconds
