"""PrometheusAdapter: serves ``cofounder_active_agents`` and ``cofounder_http_requests_per_second`` per pod
on custom.metrics.k8s.io.

The app HPAs scale on the Pods metrics ``cofounder_active_agents`` (a gauge, average per pod) and,
where an app sets ``requestsPerSecondTarget``, ``cofounder_http_requests_per_second`` (the irate of
its request-duration histogram's count); the adapter turns the Prometheus series (scraped from the
app pods, labels ``namespace`` and ``pod``) into that API. Installed from the official
prometheus-community chart with only those rules: the chart's default rules are off, no ``rules.external`` (KEDA owns
``v1beta1.external.metrics.k8s.io``; two claimants of one APIService break each other) and no
``rules.resource`` (metrics-server already serves ``metrics.k8s.io``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s

from components import Between, Matches, require_valid

CHART_REPO = "https://prometheus-community.github.io/helm-charts"
ACTIVE_AGENTS_METRIC = "cofounder_active_agents"
#: Requests per second per pod, from the request-duration histogram every app exports (the p99
#: alerts read it too): ``irate`` over the last two scrapes, so a step shows one scrape after it is
#: scraped (capacity/timings.py), where a ``rate`` over a window would take the window.
REQUESTS_METRIC = "cofounder_http_requests_per_second"
REQUESTS_SERIES = "http_request_duration_seconds_count"
#: kube-prometheus-stack's Prometheus, which the monitoring component installs in ``monitoring``.
IN_CLUSTER_PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc"


def active_agents_rule(metric: str = ACTIVE_AGENTS_METRIC) -> dict:
    """The adapter rule exposing ``metric`` per pod (and namespace) as a custom metric."""
    return {
        "seriesQuery": f'{metric}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                    "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{metric}$", "as": metric},
        "metricsQuery": "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }


def requests_per_second_rule() -> dict:
    """The adapter rule exposing each pod's request rate as ``cofounder_http_requests_per_second``."""
    return {
        "seriesQuery": f'{REQUESTS_SERIES}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                    "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{REQUESTS_SERIES}$", "as": REQUESTS_METRIC},
        "metricsQuery": "sum(irate(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)",
    }


@dataclass(frozen=True, kw_only=True)
class PrometheusAdapterSettings:
    """``cofounder:prometheusAdapter``: the custom-metrics API and the Prometheus behind the autoscalers."""

    #: Prometheus that prometheus-adapter and KEDA query, without port (kube-prometheus-stack in ``monitoring``).
    prometheus_url: Annotated[str, Matches(r"https?://[^\s:/]+", "a value matching https?://[^\\s:/]+")] = \
        IN_CLUSTER_PROMETHEUS
    #: Port of that Prometheus.
    prometheus_port: Annotated[int, Between(1, 65535)] = 9090
    #: Replicas of prometheus-adapter; the custom-metrics API is on every HPA's path.
    replicas: Annotated[int, Between(1, 5)] = 2

    @property
    def prometheus_address(self) -> str:
        return f"{self.prometheus_url}:{self.prometheus_port}"


@dataclass(frozen=True, kw_only=True)
class PrometheusAdapterArgs(PrometheusAdapterSettings):
    """Settings plus the component's fixed choices."""

    #: ``monitoring``, shared with kube-prometheus-stack; created by Helm if missing.
    namespace: str = "monitoring"
    chart_version: str = "5.2.0"
    #: By tag only: no public source gave the v0.12.0 digest (docs/images.md).
    image_tag: str = "v0.12.0"


class PrometheusAdapter(pulumi.ComponentResource):
    """prometheus-adapter with one custom-metrics rule and no external or resource metrics."""

    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: PrometheusAdapterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:autoscaling:PrometheusAdapter", name, None, opts)
        require_valid(f"PrometheusAdapter {name}", args)
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="prometheus-adapter",
            chart="prometheus-adapter",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=args.namespace,
            # kube-prometheus-stack shares the namespace; Helm creates it only if it is missing.
            create_namespace=True,
            atomic=True,
            timeout=600,
            values={
                "image": {"tag": args.image_tag},
                "replicas": args.replicas,
                "prometheus": {"url": args.prometheus_url, "port": args.prometheus_port},
                "rules": {"default": False, "custom": [active_agents_rule(), requests_per_second_rule()],
                          "external": []},
                "podDisruptionBudget": {"enabled": args.replicas > 1, "maxUnavailable": 1},
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus-adapter"}}}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"memory": "256Mi"}},
            },
            # The component waits for what it depends on (the monitoring stack): so does its release.
            opts=pulumi.ResourceOptions(parent=self, depends_on=(opts.depends_on if opts else None)),
        )
        self.register_outputs({"release_status": self.release.status})
