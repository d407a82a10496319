"""components/service_monitors.py: monitors select by the documented labels and port names."""

from __future__ import annotations

import pulumi
import pytest

from components import dashboards
from components.service_monitors import AppScrape, ScrapeTargets, ScrapeTargetsArgs

SM = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PM = "kubernetes:monitoring.coreos.com/v1:PodMonitor"
ENDPOINT_KEYS = {"port", "path", "interval", "honorLabels"}


def _run(run_program, **overrides):
    args = ScrapeTargetsArgs(app_namespace="cofounder", **overrides)
    return run_program(lambda: ScrapeTargets("scrape", args))


def _monitors(program):
    return {r.inputs["metadata"]["name"]: r for r in program.of_type(SM) + program.of_type(PM)}


def test_defaults_scrape_every_source_of_the_metric_contract(run_program):
    monitors = _monitors(_run(run_program))
    assert {name: m.inputs["kind"] for name, m in monitors.items()} == {
        "cofounder-frontend": "ServiceMonitor", "cofounder-backend": "ServiceMonitor",
        "cofounder-worker": "ServiceMonitor", "cofounder-pgbouncer": "PodMonitor",
        "cofounder-cluster-autoscaler": "ServiceMonitor", "cofounder-keda-operator": "ServiceMonitor"}
    # every Prometheus source of the dashboards' allow-list is scraped (kube-state-metrics by the chart)
    sources = {"apps": ["cofounder-frontend", "cofounder-backend", "cofounder-worker"],
               "pgbouncer-exporter": ["cofounder-pgbouncer"],
               "cluster-autoscaler": ["cofounder-cluster-autoscaler"], "keda": ["cofounder-keda-operator"],
               "kube-state-metrics": []}
    assert set(sources) == set(dashboards.METRICS)
    assert all(name in monitors for names in sources.values() for name in names)


def test_app_monitors_follow_the_contract(run_program):
    monitors = _monitors(_run(run_program))
    for app, port in [("frontend", "http"), ("backend", "http"), ("worker", "http")]:
        m = monitors[f"cofounder-{app}"]
        spec = m.inputs["spec"]
        assert m.inputs["apiVersion"] == "monitoring.coreos.com/v1"
        assert m.inputs["metadata"]["namespace"] == "monitoring"
        assert m.inputs["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": app,
                                                    "app.kubernetes.io/part-of": "cofounder"}}
        assert spec["namespaceSelector"] == {"matchNames": ["cofounder"]}
        key = "endpoints" if m.inputs["kind"] == "ServiceMonitor" else "podMetricsEndpoints"
        (endpoint,) = spec[key]
        assert set(endpoint) <= ENDPOINT_KEYS
        # no honorLabels: the target's namespace and pod labels, which prometheus-adapter joins on,
        # cannot be replaced by labels the app exposes
        assert endpoint == {"port": port, "path": "/metrics", "interval": "30s"}


def test_platform_monitors_use_the_charts_labels_and_ports(run_program):
    monitors = _monitors(_run(run_program))
    ca = monitors["cofounder-cluster-autoscaler"].inputs["spec"]
    assert ca["namespaceSelector"] == {"matchNames": ["kube-system"]}
    assert ca["selector"]["matchLabels"] == {"app.kubernetes.io/name": "aws-cluster-autoscaler"}
    assert ca["endpoints"][0]["port"] == "http"
    keda = monitors["cofounder-keda-operator"].inputs["spec"]
    assert keda["namespaceSelector"] == {"matchNames": ["keda"]}
    assert keda["selector"]["matchLabels"] == {"app.kubernetes.io/name": "keda-operator"}
    assert keda["endpoints"][0]["port"] == "metrics"
    pgb = monitors["cofounder-pgbouncer"].inputs["spec"]
    assert pgb["namespaceSelector"] == {"matchNames": ["cofounder"]}
    assert pgb["podMetricsEndpoints"][0]["port"] == "metrics"
    assert "honorLabels" not in keda["endpoints"][0]


@pytest.mark.parametrize("switch, monitor", [("enable_pgbouncer", "cofounder-pgbouncer"),
                                             ("enable_cluster_autoscaler", "cofounder-cluster-autoscaler"),
                                             ("enable_keda", "cofounder-keda-operator")])
def test_optional_sources_have_switches(run_program, switch, monitor):
    monitors = _monitors(_run(run_program, **{switch: False}))
    assert monitor not in monitors and len(monitors) == 5


def test_overrides_apps_interval_labels_and_ports(run_program):
    monitors = _monitors(_run(
        run_program, apps=[AppScrape(name="api", port="web", path="/internal/metrics"),
                           AppScrape(name="batch", kind="PodMonitor", port="metrics")],
        scrape_interval_seconds=15, monitor_labels={"prometheus": "main"}, keda_port="http-metrics"))
    api = monitors["cofounder-api"]
    assert api.inputs["metadata"]["labels"] == {"prometheus": "main", "app.kubernetes.io/part-of": "cofounder"}
    assert api.inputs["spec"]["endpoints"][0] == {"port": "web", "path": "/internal/metrics", "interval": "15s"}
    assert monitors["cofounder-keda-operator"].inputs["spec"]["endpoints"][0]["port"] == "http-metrics"
    batch = monitors["cofounder-batch"]
    assert batch.inputs["kind"] == "PodMonitor"
    assert batch.inputs["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert "cofounder-frontend" not in monitors


def test_apps_may_be_scraped_faster_than_the_platform(run_program):
    # the HPAs' Pods metrics come from the apps' scrapes; PgBouncer, the autoscaler and KEDA keep
    # the global interval (and Prometheus its sample volume)
    monitors = _monitors(_run(run_program, scrape_interval_seconds=15, app_interval_seconds=5))
    intervals = {name: (m.inputs["spec"].get("endpoints") or m.inputs["spec"]["podMetricsEndpoints"])[0]["interval"]
                 for name, m in monitors.items()}
    assert intervals == {"cofounder-frontend": "5s", "cofounder-backend": "5s", "cofounder-worker": "5s",
                         "cofounder-pgbouncer": "15s", "cofounder-cluster-autoscaler": "15s",
                         "cofounder-keda-operator": "15s"}


def test_monitors_wait_for_the_chart_and_hang_under_the_component(run_program):
    def program():
        crds = pulumi.CustomResource("test:index:Crds", "crds")
        ScrapeTargets("scrape", ScrapeTargetsArgs(app_namespace="cofounder"),
                      opts=pulumi.ResourceOptions(depends_on=[crds]))
    p = run_program(program)
    component = p.one("cofounder:observability:ScrapeTargets")
    crds = p.one("test:index:Crds")
    for r in p.of_type(SM) + p.of_type(PM):
        assert r.parent == component.urn and r.name.startswith("scrape-")
        assert crds.urn in r.options["dependsOn"]
