"""components/prometheus_adapter.py: only custom.metrics.k8s.io, only cofounder_active_agents."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.prometheus_adapter import PrometheusAdapter, PrometheusAdapterArgs

URL = "http://kube-prometheus-stack-prometheus.monitoring.svc"


def _adapter(run_program, **overrides):
    def program():
        provider = k8s.Provider("k8s")
        PrometheusAdapter("prometheus-adapter", PrometheusAdapterArgs(prometheus_url=URL, **overrides),
                          opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program).one("kubernetes:helm.sh/v3:Release").inputs


def test_pinned_official_chart_in_monitoring(run_program):
    release = _adapter(run_program)
    assert release["chart"] == "prometheus-adapter"
    assert release["version"] == "5.2.0"
    assert release["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert release["namespace"] == "monitoring"
    assert release["values"]["image"]["tag"] == "v0.12.0"
    assert release["values"]["prometheus"] == {"url": URL, "port": 9090}


def test_serves_only_the_two_per_pod_custom_metrics(run_program):
    rules = _adapter(run_program)["values"]["rules"]
    # The chart registers v1beta1.external.metrics.k8s.io only for non-empty rules.external and
    # v1beta1.metrics.k8s.io only for rules.resource: KEDA and metrics-server own those.
    assert not rules.get("external")
    assert "resource" not in rules
    assert rules["default"] is False
    rule, requests = rules["custom"]
    # The request rate: irate of the histogram count every app exports, so a step shows one scrape
    # after it is scraped (capacity/timings.py reads the query to time it).
    assert requests["name"] == {"matches": "^http_request_duration_seconds_count$",
                                "as": "cofounder_http_requests_per_second"}
    assert requests["metricsQuery"].startswith("sum(irate(<<.Series>>")
    assert rule["seriesQuery"] == 'cofounder_active_agents{namespace!="",pod!=""}'
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert rule["name"] == {"matches": "^cofounder_active_agents$", "as": "cofounder_active_agents"}
    assert "<<.GroupBy>>" in rule["metricsQuery"]


def test_single_replica_has_no_pdb(run_program):
    values = _adapter(run_program, replicas=1, prometheus_port=80)["values"]
    assert values["replicas"] == 1 and values["podDisruptionBudget"]["enabled"] is False
    assert values["prometheus"]["port"] == 80
