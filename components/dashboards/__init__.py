"""Grafana dashboards as code, and the metric contract they (and the alert rules) read.

The ``*.json`` files beside this module are Grafana dashboard models; ``MonitoringStack`` ships
each as a ConfigMap labelled ``grafana_dashboard: "1"``, which the chart's Grafana sidecar loads.
Edit them in Grafana, export ("Export for sharing externally" off), and replace the file.

``METRICS`` is the allow-list of every metric a dashboard panel or an alert rule may use, grouped
by the component that exposes it. A test extracts the metric names from every panel and rule
expression and fails on anything not listed here, so a dashboard never silently shows "No data"
for a metric nobody exposes. Adding a metric means adding it here, under its real source.
"""

from __future__ import annotations

import json
from pathlib import Path

DASHBOARD_DIR = Path(__file__).resolve().parent

#: Prometheus metrics by source. Histograms are listed by base name (``_bucket``/``_sum``/``_count``
#: are implied); the value says what exposes it and how Prometheus reaches it.
METRICS: dict[str, dict[str, str]] = {
    # The apps' own instrumentation: the contract frontend, backend and worker must meet.
    "apps": {
        "http_request_duration_seconds": "histogram, labels service, route, status (seconds)",
        "http_requests_total": "counter, labels service, route, status",
        "cofounder_active_agents": "gauge, agent executions in flight in this pod (the HPA's Pods metric)",
    },
    # kube-state-metrics ships with kube-prometheus-stack and is scraped by the chart's own monitor.
    "kube-state-metrics": {
        "kube_horizontalpodautoscaler_status_current_replicas": "gauge per HPA",
        "kube_horizontalpodautoscaler_status_desired_replicas": "gauge per HPA",
        "kube_horizontalpodautoscaler_spec_max_replicas": "gauge per HPA",
        "kube_pod_status_phase": "gauge per pod and phase",
        "kube_node_info": "one series per node",
        "kube_pod_info": "one series per pod, with its priority_class",
    },
    # prometheus-community/pgbouncer_exporter, a sidecar of the PgBouncer pods (port "metrics").
    "pgbouncer-exporter": {
        "pgbouncer_pools_client_active_connections": "gauge per database/user pool",
        "pgbouncer_pools_client_waiting_connections": "gauge per database/user pool",
        "pgbouncer_pools_client_maxwait_seconds": "age of the oldest waiting client",
        "pgbouncer_pools_server_active_connections": "gauge per pool",
        "pgbouncer_pools_server_idle_connections": "gauge per pool",
    },
    # The Cluster Autoscaler chart's Service, port "http" (8085).
    "cluster-autoscaler": {
        "cluster_autoscaler_nodes_count": "gauge by state (ready, unready, notStarted, ...)",
        "cluster_autoscaler_unschedulable_pods_count": "gauge",
    },
    # The KEDA operator's metrics port ("metrics", 8080; chart value prometheus.operator.enabled).
    "keda": {
        "keda_scaler_metrics_value": "the value each scaler feeds the HPA (e.g. SQS queue length)",
        "keda_scaler_active": "1 while a scaler reports activity",
    },
}

#: CloudWatch metrics by AWS namespace: the managed services Prometheus cannot scrape.
CLOUDWATCH_METRICS: dict[str, set[str]] = {
    "AWS/SQS": {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"},
    "AWS/ElastiCache": {"EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "Evictions",
                        "CurrConnections"},
    "AWS/RDS": {"CPUUtilization", "FreeableMemory", "FreeStorageSpace", "DatabaseConnections"},
}

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def allowed_metric_names() -> dict[str, str]:
    """Every Prometheus series name a panel or rule may use, mapped to its source."""
    names: dict[str, str] = {}
    for source, metrics in METRICS.items():
        for metric, doc in metrics.items():
            names[metric] = source
            if doc.startswith("histogram"):
                for suffix in _HISTOGRAM_SUFFIXES:
                    names[metric + suffix] = source
    return names


def load() -> dict[str, str]:
    """The dashboards, file stem -> JSON text (compact, key order kept), sorted by name."""
    return {path.stem: json.dumps(json.loads(path.read_text()), separators=(",", ":"))
            for path in sorted(DASHBOARD_DIR.glob("*.json"))}
