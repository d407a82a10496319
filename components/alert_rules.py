"""AlertRules: the seed's success criteria as one PrometheusRule.

The scaling plan's targets, each an alert with a ``summary``, a ``description`` and a one-line
``runbook`` annotation (expanded in docs/observability.md, "Runbooks"):

- ``CofounderP99LatencyHigh``: a service's p99 above ``latency_p99_ms`` for ``latency_for_minutes``;
- ``CofounderLatencyMetricsAbsent``: no latency histogram at all, so the p99 alert would be blind;
- ``CofounderHpaAtMaxReplicas``: an HPA pinned at maxReplicas for ``hpa_at_max_minutes``;
- ``CofounderPodsPendingTooLong``: an app pod pending longer than ``pod_pending_seconds``
  (scale-up missed the 60 s target: no headroom, Cluster Autoscaler slow or capped); the
  headroom placeholders, pending by design once evicted, are left out;
- ``CofounderPgbouncerClientsWaiting``: clients queueing for a database connection.

SQS queue age and the DLQ are not in Prometheus (KEDA only reports queue length): they are
CloudWatch alarms (``CloudWatchAlarms``), as are RDS and ElastiCache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_kubernetes as k8s

from components import Between, require_valid

API_VERSION = "monitoring.coreos.com/v1"


@dataclass(frozen=True, kw_only=True)
class AlertRulesSettings:
    """``cofounder:alertRules``: when the seed's targets count as missed (Prometheus alerts)."""

    #: How long a service's p99 may exceed ``cofounder:scaling.p99LatencyMs`` before it alerts.
    latency_for_minutes: Annotated[int, Between(1, 60)] = 5
    #: How long an HPA may sit at maxReplicas before someone must raise the ceiling.
    hpa_at_max_minutes: Annotated[int, Between(1, 120)] = 10
    #: App pods pending longer than this mean scale-up missed the seed's 60 s target.
    pod_pending_seconds: Annotated[int, Between(15, 3600)] = 60
    #: Alert when more PgBouncer clients than this wait for a server connection...
    pgbouncer_waiting_clients: Annotated[int, Between(0, 10000)] = 0
    #: ...for this long.
    pgbouncer_waiting_minutes: Annotated[int, Between(1, 60)] = 2


@dataclass(frozen=True, kw_only=True)
class AlertRulesArgs(AlertRulesSettings):
    """Settings plus the wiring."""

    #: Namespace of the app workloads and PgBouncer (EksCluster.app_namespace).
    app_namespace: pulumi.Input[str]
    #: Where the PrometheusRule is created (the monitoring namespace).
    namespace: pulumi.Input[str] = "monitoring"
    #: Labels Prometheus selects rules by (MonitoringStack.monitor_labels).
    monitor_labels: Mapping[str, str] = field(default_factory=lambda: {"release": "kube-prometheus-stack"})
    #: The p99 target (cofounder:scaling.p99LatencyMs).
    latency_p99_ms: int = 200
    #: PriorityClasses whose pods are *meant* to wait (the headroom placeholders, evicted so a
    #: burst gets their room): regex on kube-state-metrics' ``priority_class`` label.
    pending_ignore_priority_classes: str = ".*headroom.*"
    #: Where the apps' traces go (OtelCollector's backend), for the p99 alert's ``traces`` link;
    #: None: no tracing, no link.
    traces_backend: Literal["xray", "otlp"] | None = None


def traces_annotation(backend: str | None, seconds: float) -> dict[str, str]:
    """From the p99 alert to the slow requests' traces: the X-Ray filter expression (X-Ray developer
    guide, "Using filter expressions": ``service("name")``, ``responsetime > n``) to paste in the
    CloudWatch console's Traces query, or the same question for an OTLP backend."""
    if backend == "xray":
        return {"traces": (f'X-Ray (CloudWatch console, Traces): service("{{{{ $labels.service }}}}") '
                           f"AND responsetime > {seconds:g}")}
    if backend == "otlp":
        return {"traces": (f"the OTLP backend: service.name={{{{ $labels.service }}}} and duration > "
                           f"{seconds:g}s")}
    return {}


def rule_groups(args: AlertRulesArgs, app_namespace: str) -> list[dict]:
    """The PrometheusRule ``spec.groups`` for one app namespace (pure: tests parse every expr)."""
    ns = f'namespace="{app_namespace}"'
    return [{
        "name": "cofounder.slo",
        "rules": [
            _p99_latency_high(args, ns),
            _latency_metrics_absent(ns, app_namespace),
            _hpa_at_max_replicas(args, ns),
            _pods_pending_too_long(args, ns),
            _pgbouncer_clients_waiting(args, ns),
        ],
    }]


def _p99_latency_high(args: AlertRulesArgs, ns: str) -> dict:
    """A service's p99 above the target for ``latency_for_minutes``."""
    seconds = args.latency_p99_ms / 1000
    return {
        "alert": "CofounderP99LatencyHigh",
        "expr": (f"histogram_quantile(0.99, sum by (service, le) "
                 f"(rate(http_request_duration_seconds_bucket{{{ns}}}[5m]))) > {seconds:g}"),
        "for": f"{args.latency_for_minutes}m",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": f"{{{{ $labels.service }}}} p99 latency above {args.latency_p99_ms} ms",
            "description": (f"p99 of {{{{ $labels.service }}}} is {{{{ $value | humanizeDuration }}}} "
                            f"(target {args.latency_p99_ms} ms) for {args.latency_for_minutes} minutes."),
            "runbook": ("Check the Autoscaling dashboard: HPA at max or pods pending means capacity; "
                        "PgBouncer waiting clients or Redis CPU means a slow dependency; the "
                        "slow requests' traces show which hop took the time."),
            **traces_annotation(args.traces_backend, seconds),
        },
    }


def _latency_metrics_absent(ns: str, app_namespace: str) -> dict:
    """No latency histogram at all: the p99 alert would be blind."""
    return {
        "alert": "CofounderLatencyMetricsAbsent",
        "expr": f"absent(http_request_duration_seconds_bucket{{{ns}}})",
        "for": "15m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "No request latency metrics from the apps: the p99 alert is blind",
            "description": f"No http_request_duration_seconds series in namespace {app_namespace}.",
            "runbook": ("Check Prometheus targets for the cofounder-* monitors; the apps must "
                        "expose /metrics on the named port of the scrape contract."),
        },
    }


def _hpa_at_max_replicas(args: AlertRulesArgs, ns: str) -> dict:
    """An HPA pinned at maxReplicas for ``hpa_at_max_minutes``."""
    return {
        "alert": "CofounderHpaAtMaxReplicas",
        "expr": (f"max by (namespace, horizontalpodautoscaler) "
                 f"(kube_horizontalpodautoscaler_status_current_replicas{{{ns}}}) >= "
                 f"max by (namespace, horizontalpodautoscaler) "
                 f"(kube_horizontalpodautoscaler_spec_max_replicas{{{ns}}})"),
        "for": f"{args.hpa_at_max_minutes}m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "HPA {{ $labels.horizontalpodautoscaler }} pinned at maxReplicas",
            "description": (f"{{{{ $labels.horizontalpodautoscaler }}}} has run at its ceiling for "
                            f"{args.hpa_at_max_minutes} minutes: demand exceeds the planned 5x peak."),
            "runbook": ("Raise the HPA's maxReplicas in the stack config after checking the "
                        "connection budget (PgBouncer and RDS max_connections) still fits."),
        },
    }


def _pods_pending_too_long(args: AlertRulesArgs, ns: str) -> dict:
    """An app pod (not a headroom placeholder) pending longer than ``pod_pending_seconds``."""
    return {
        "alert": "CofounderPodsPendingTooLong",
        "expr": (f'(max by (namespace, pod) (kube_pod_status_phase{{{ns}, phase="Pending"}}) > 0) '
                 f'unless on (namespace, pod) '
                 f'kube_pod_info{{{ns}, priority_class=~"{args.pending_ignore_priority_classes}"}}'),
        "for": f"{args.pod_pending_seconds}s",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Pod {{ $labels.pod }} pending: scale-up slower than the target",
            "description": (f"{{{{ $labels.pod }}}} has been Pending for over {args.pod_pending_seconds} s; "
                            "the seed requires scale-up within 60 s."),
            "runbook": ("kubectl describe pod: if unschedulable, check Cluster Autoscaler logs "
                        "and node group max size, and raise the headroom placeholder pods."),
        },
    }


def _pgbouncer_clients_waiting(args: AlertRulesArgs, ns: str) -> dict:
    """Clients queueing for a PgBouncer server connection."""
    return {
        "alert": "CofounderPgbouncerClientsWaiting",
        "expr": (f"sum by (namespace) (pgbouncer_pools_client_waiting_connections{{{ns}}}) "
                 f"> {args.pgbouncer_waiting_clients}"),
        "for": f"{args.pgbouncer_waiting_minutes}m",
        "labels": {"severity": "warning"},
        "annotations": {
            "summary": "Clients waiting for a PgBouncer server connection",
            "description": ("{{ $value }} clients queue for a database connection: the server pool "
                            "is exhausted."),
            "runbook": ("Look for slow queries (pg_stat_statements); raise the PgBouncer pool only "
                        "within RDS max_connections (the connection-budget report)."),
        },
    }


class AlertRules(pulumi.ComponentResource):
    """One PrometheusRule with the seed's targets.

    Pass ``depends_on=[monitoring_stack.release]`` in ``opts`` (the CRD comes with the chart).
    """

    rule_name: pulumi.Output[str]

    def __init__(self, name: str, args: AlertRulesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:observability:AlertRules", name, None, opts)
        require_valid(f"AlertRules {name}", args)
        rule = k8s.apiextensions.CustomResource(
            f"{name}-slo",
            api_version=API_VERSION,
            kind="PrometheusRule",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="cofounder-slo",
                namespace=args.namespace,
                labels={**args.monitor_labels, "app.kubernetes.io/part-of": "cofounder"},
            ),
            spec=pulumi.Output.from_input(args.app_namespace).apply(
                lambda ns: {"groups": rule_groups(args, ns)}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=(opts.depends_on if opts else None)),
        )
        self.rule_name = rule.metadata.apply(lambda m: m["name"])
        self.register_outputs({"rule_name": self.rule_name})
