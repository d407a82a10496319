"""components/dashboards: valid Grafana JSON reading only metrics the project exposes or scrapes."""

from __future__ import annotations

import json

import pytest

from components import dashboards
from components.monitoring_stack import CLOUDWATCH_DATASOURCE_UID
from tests.promql import label_values_metric, metric_names

FILES = sorted(dashboards.DASHBOARD_DIR.glob("*.json"))
ALLOWED = dashboards.allowed_metric_names()


def _targets(doc: dict):
    for panel in doc["panels"]:
        for target in panel["targets"]:
            yield panel, target


def test_there_are_dashboards_and_load_returns_them_all():
    assert [f.stem for f in FILES] == ["data-tier", "scaling", "traffic"]
    loaded = dashboards.load()
    assert list(loaded) == ["data-tier", "scaling", "traffic"]
    assert all(json.loads(text)["uid"] for text in loaded.values())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_dashboard_is_valid_grafana_json(path):
    doc = json.loads(path.read_text())
    assert doc["uid"].startswith("cofounder-") and doc["title"].startswith("CoFounder / ")
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in doc["panels"]:
        assert panel["type"] == "timeseries" and panel["targets"], panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in {"prometheus", CLOUDWATCH_DATASOURCE_UID}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_metric_a_dashboard_reads_is_in_the_allow_list(path):
    doc = json.loads(path.read_text())
    unknown = []
    for panel, target in _targets(doc):
        if target["datasource"]["type"] == "prometheus":
            unknown += [(panel["title"], m) for m in metric_names(target["expr"]) if m not in ALLOWED]
        else:
            metrics = dashboards.CLOUDWATCH_METRICS.get(target["namespace"], set())
            if target["metricName"] not in metrics:
                unknown.append((panel["title"], f'{target["namespace"]}/{target["metricName"]}'))
    for variable in doc["templating"]["list"]:
        query = variable["query"]
        if variable["datasource"]["type"] == "prometheus":
            metric = label_values_metric(query["query"])
            assert metric is not None, query
            if metric not in ALLOWED:
                unknown.append((variable["name"], metric))
        elif query["metricName"] not in dashboards.CLOUDWATCH_METRICS.get(query["namespace"], set()):
            unknown.append((variable["name"], query["metricName"]))
    assert not unknown, f"metrics nobody exposes (add them to METRICS under their source): {unknown}"


def test_the_allow_list_check_catches_an_unknown_metric():
    assert "http_request_duration_seconds_bucket" in ALLOWED
    assert metric_names('sum(rate(http_requests_totl{namespace="x"}[5m]))') - set(ALLOWED) == {"http_requests_totl"}


def test_dashboards_cover_the_seed_success_criteria():
    exprs = " ".join(t.get("expr", "") for f in FILES for _, t in _targets(json.loads(f.read_text())))
    cloudwatch = {t.get("metricName") for f in FILES for _, t in _targets(json.loads(f.read_text()))}
    for needed in ["histogram_quantile(0.99", "histogram_quantile(0.95", "histogram_quantile(0.5",
                   "rate(http_requests_total", "kube_horizontalpodautoscaler_status_current_replicas",
                   "kube_horizontalpodautoscaler_status_desired_replicas",
                   "kube_horizontalpodautoscaler_spec_max_replicas", "cofounder_active_agents",
                   "kube_node_info", 'phase="Pending"', "pgbouncer_pools_client_active_connections",
                   "pgbouncer_pools_client_waiting_connections"]:
        assert needed in exprs, needed
    assert {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage",
            "EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "Evictions"} <= cloudwatch
