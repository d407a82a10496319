"""ScrapeTargets: the ServiceMonitors and PodMonitors that tell Prometheus what to scrape.

One monitor per source of the metric contract (``components/dashboards``): the apps (frontend,
backend, worker), the PgBouncer exporter sidecar, the Cluster Autoscaler and the KEDA operator.
Each selects its pods or Service by label and its endpoint by port *name*, never by number, so
the components that expose the metrics only have to honour the contract documented in the
docs/observability.md ("Metric and scrape contract"):

- apps: ``app.kubernetes.io/name: <app>`` + ``app.kubernetes.io/part-of: cofounder`` in the app
  namespace, metrics on the Service's named port ``http`` (AppService's), path ``/metrics``; an
  app without a Service can be scraped with a PodMonitor on a named container port;
- PgBouncer: pods labelled ``app.kubernetes.io/name: pgbouncer`` + part-of, exporter container
  port named ``metrics``;
- Cluster Autoscaler: its chart's Service in ``kube-system`` (``app.kubernetes.io/name:
  aws-cluster-autoscaler``, port ``http`` = 8085);
- KEDA: the operator Service in ``keda`` (``app.kubernetes.io/name: keda-operator``, port
  ``metrics``; chart value ``prometheus.operator.enabled: true``).

The monitor objects live in the monitoring namespace and reach the targets through
``namespaceSelector``. No endpoint sets ``honorLabels``: the target's ``namespace`` and ``pod``
labels are what prometheus-adapter joins the per-pod metrics on, and an app must not be able to
replace them. The target's ``service`` label is the app's Service name, which is the app's name,
so dashboards group by app; an app's own ``service`` label is kept as ``exported_service``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_kubernetes as k8s

from components import Between, Matches, require_valid

API_VERSION = "monitoring.coreos.com/v1"
PART_OF = "cofounder"


@dataclass(frozen=True, kw_only=True)
class AppScrape:
    """One application's ``/metrics`` endpoint (the scrape contract in docs/observability.md)."""

    #: The app's ``app.kubernetes.io/name`` label (frontend, backend, worker).
    name: Annotated[str, Matches(r"[a-z][a-z0-9-]{0,40}", "a value matching [a-z][a-z0-9-]{0,40}")]
    #: ServiceMonitor (through the app's Service) or PodMonitor (pods directly, no Service port needed).
    kind: Literal["ServiceMonitor", "PodMonitor"] = "ServiceMonitor"
    #: Port *name* (Service port for a ServiceMonitor, container port for a PodMonitor).
    port: Annotated[str, Matches(r"[a-z][a-z0-9-]{0,14}", "a value matching [a-z][a-z0-9-]{0,14}")] = "http"
    #: HTTP path that serves the metrics.
    path: Annotated[str, Matches(r"/[A-Za-z0-9/_.-]*", "a value matching /[A-Za-z0-9/_.-]*")] = "/metrics"


def default_apps() -> list[AppScrape]:
    """AppService gives every app (the worker too) a Service whose port "http" serves /metrics."""
    return [AppScrape(name="frontend"), AppScrape(name="backend"), AppScrape(name="worker")]


@dataclass(frozen=True, kw_only=True)
class ScrapeTargetsSettings:
    """``cofounder:scrape``: what Prometheus scrapes from the app namespace."""

    #: The apps' metrics endpoints.
    apps: list[AppScrape] = field(default_factory=default_apps)
    #: Scrape interval of the apps' monitors, seconds; unset: the monitoring stack's
    #: ``scrapeIntervalSeconds``. The HPAs' Pods metrics (active agents, requests per second) are
    #: read from these scrapes, so a burst shows in them one interval after it starts
    #: (docs/cost-and-burst.md); the other targets keep the global interval.
    app_interval_seconds: Annotated[int | None, Between(1, 300)] = None

    def checks(self):
        names = [a.name for a in self.apps]
        if len(set(names)) != len(names):
            yield "apps", names, "distinct app names"


@dataclass(frozen=True, kw_only=True)
class ScrapeTargetsArgs(ScrapeTargetsSettings):
    """Settings plus the wiring. Each optional source has an ``enable_*`` switch."""

    #: Namespace of the app workloads and PgBouncer (EksCluster.app_namespace).
    app_namespace: pulumi.Input[str]
    #: Where the monitor objects are created (the monitoring namespace).
    namespace: pulumi.Input[str] = "monitoring"
    #: Labels Prometheus selects monitors by (MonitoringStack.monitor_labels).
    monitor_labels: Mapping[str, str] = field(default_factory=lambda: {"release": "kube-prometheus-stack"})
    scrape_interval_seconds: int = 30
    enable_pgbouncer: bool = True
    pgbouncer_name: str = "pgbouncer"
    pgbouncer_port: str = "metrics"
    enable_cluster_autoscaler: bool = True
    cluster_autoscaler_namespace: str = "kube-system"
    cluster_autoscaler_name: str = "aws-cluster-autoscaler"
    cluster_autoscaler_port: str = "http"
    enable_keda: bool = True
    keda_namespace: str = "keda"
    keda_name: str = "keda-operator"
    keda_port: str = "metrics"


class ScrapeTargets(pulumi.ComponentResource):
    """ServiceMonitors/PodMonitors for the apps, PgBouncer, the Cluster Autoscaler and KEDA.

    Pass ``depends_on=[monitoring_stack.release]`` in ``opts``: the monitors are custom resources
    whose CRDs the chart installs, and every monitor waits on what the component waits on.
    """

    monitor_names: list[str]

    def __init__(self, name: str, args: ScrapeTargetsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:observability:ScrapeTargets", name, None, opts)
        require_valid(f"ScrapeTargets {name}", args)
        child = pulumi.ResourceOptions(parent=self, depends_on=(opts.depends_on if opts else None))
        interval = f"{args.scrape_interval_seconds}s"
        app_interval = f"{args.app_interval_seconds or args.scrape_interval_seconds}s"
        self.monitor_names = []

        def monitor(kind: str, target: str, target_namespace: pulumi.Input[str],
                    match_labels: dict, endpoint: dict) -> None:
            object_name = f"{PART_OF}-{target}"
            k8s.apiextensions.CustomResource(
                f"{name}-{target}",
                api_version=API_VERSION,
                kind=kind,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=object_name,
                    namespace=args.namespace,
                    labels={**args.monitor_labels, "app.kubernetes.io/part-of": PART_OF},
                ),
                spec={
                    "selector": {"matchLabels": match_labels},
                    "namespaceSelector": {"matchNames": [target_namespace]},
                    ("endpoints" if kind == "ServiceMonitor" else "podMetricsEndpoints"): [endpoint],
                },
                opts=child,
            )
            self.monitor_names.append(f"{kind}/{object_name}")

        for app in args.apps:
            monitor(app.kind, app.name, args.app_namespace,
                    {"app.kubernetes.io/name": app.name, "app.kubernetes.io/part-of": PART_OF},
                    {"port": app.port, "path": app.path, "interval": app_interval})
        if args.enable_pgbouncer:
            monitor("PodMonitor", "pgbouncer", args.app_namespace,
                    {"app.kubernetes.io/name": args.pgbouncer_name, "app.kubernetes.io/part-of": PART_OF},
                    {"port": args.pgbouncer_port, "path": "/metrics", "interval": interval})
        if args.enable_cluster_autoscaler:
            monitor("ServiceMonitor", "cluster-autoscaler", args.cluster_autoscaler_namespace,
                    {"app.kubernetes.io/name": args.cluster_autoscaler_name},
                    {"port": args.cluster_autoscaler_port, "path": "/metrics", "interval": interval})
        if args.enable_keda:
            monitor("ServiceMonitor", "keda-operator", args.keda_namespace,
                    {"app.kubernetes.io/name": args.keda_name},
                    {"port": args.keda_port, "path": "/metrics", "interval": interval})

        self.register_outputs({"monitor_names": self.monitor_names})
