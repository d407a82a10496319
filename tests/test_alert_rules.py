"""components/alert_rules.py: a valid PrometheusRule whose expressions parse and read known metrics."""

from __future__ import annotations

import jsonschema
import pulumi
import pytest

from components import dashboards
from components.alert_rules import AlertRules, AlertRulesArgs, rule_groups
from tests.promql import metric_names, parse

PR = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
# The constraints of the monitoring.coreos.com/v1 PrometheusRule CRD (prometheus-operator), strict.
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name", "namespace"],
                     "properties": {"name": {"type": "string"}, "namespace": {"type": "string"},
                                    "labels": STRINGS}},
        "spec": {"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
            "groups": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {"type": "array", "minItems": 1, "items": {
                        "type": "object", "additionalProperties": False, "required": ["expr"],
                        "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                        "properties": {
                            "alert": {"type": "string"}, "record": {"type": "string"},
                            "expr": {"type": "string"},
                            "for": {"type": "string", "pattern": DURATION},
                            "keep_firing_for": {"type": "string", "pattern": DURATION},
                            "labels": STRINGS, "annotations": STRINGS}}}}}}}},
    },
}


def _rule(run_program, **overrides):
    args = AlertRulesArgs(app_namespace=pulumi.Output.from_input("cofounder"), **overrides)
    return run_program(lambda: AlertRules("alerts", args)).one(PR)


def _alerts(resource) -> dict:
    return {r["alert"]: r for g in resource.inputs["spec"]["groups"] for r in g["rules"]}


def test_the_rule_is_a_valid_prometheus_rule(run_program):
    resource = _rule(run_program)
    doc = resource.inputs
    jsonschema.validate(doc, PROMETHEUS_RULE)
    assert doc["metadata"] == {"name": "cofounder-slo", "namespace": "monitoring",
                               "labels": {"release": "kube-prometheus-stack",
                                          "app.kubernetes.io/part-of": "cofounder"}}


def test_the_schema_rejects_a_broken_rule():
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
           "metadata": {"name": "x", "namespace": "y"},
           "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "5 minutes"}]}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, PROMETHEUS_RULE)


def test_every_expression_parses_and_reads_only_known_metrics():
    allowed = dashboards.allowed_metric_names()
    for group in rule_groups(AlertRulesArgs(app_namespace="cofounder"), "cofounder"):
        for rule in group["rules"]:
            parse(rule["expr"])
            assert metric_names(rule["expr"]) <= set(allowed), rule["alert"]
            assert 'namespace="cofounder"' in rule["expr"]
    with pytest.raises(ValueError):
        parse("histogram_quantile(0.99, sum by (le) (rate(x[5m]))")


def test_defaults_encode_the_seed_targets(run_program):
    alerts = _alerts(_rule(run_program))
    assert set(alerts) == {"CofounderP99LatencyHigh", "CofounderLatencyMetricsAbsent",
                           "CofounderHpaAtMaxReplicas", "CofounderPodsPendingTooLong",
                           "CofounderPgbouncerClientsWaiting"}
    p99 = alerts["CofounderP99LatencyHigh"]
    assert p99["expr"].startswith("histogram_quantile(0.99, sum by (service, le)")
    assert p99["expr"].endswith("> 0.2") and p99["for"] == "5m"
    assert alerts["CofounderHpaAtMaxReplicas"]["for"] == "10m"
    assert "kube_horizontalpodautoscaler_spec_max_replicas" in alerts["CofounderHpaAtMaxReplicas"]["expr"]
    assert alerts["CofounderPodsPendingTooLong"]["for"] == "60s"
    assert alerts["CofounderPgbouncerClientsWaiting"]["expr"].endswith("> 0")
    for name, alert in alerts.items():
        annotations = alert["annotations"]
        assert annotations["summary"] and annotations["runbook"], name
        assert "\n" not in annotations["runbook"], name
        assert alert["labels"]["severity"] in {"critical", "warning"}


def test_thresholds_come_from_the_arguments(run_program):
    alerts = _alerts(_rule(run_program, latency_p99_ms=350, latency_for_minutes=3, hpa_at_max_minutes=20,
                           pod_pending_seconds=90, pgbouncer_waiting_clients=5, pgbouncer_waiting_minutes=4))
    assert alerts["CofounderP99LatencyHigh"]["expr"].endswith("> 0.35")
    assert alerts["CofounderP99LatencyHigh"]["for"] == "3m"
    assert "350 ms" in alerts["CofounderP99LatencyHigh"]["annotations"]["summary"]
    assert alerts["CofounderHpaAtMaxReplicas"]["for"] == "20m"
    assert alerts["CofounderPodsPendingTooLong"]["for"] == "90s"
    assert alerts["CofounderPgbouncerClientsWaiting"]["expr"].endswith("> 5")
    assert alerts["CofounderPgbouncerClientsWaiting"]["for"] == "4m"


def test_the_rule_waits_for_the_chart(run_program):
    def program():
        crds = pulumi.CustomResource("test:index:Crds", "crds")
        AlertRules("alerts", AlertRulesArgs(app_namespace="apps"), opts=pulumi.ResourceOptions(depends_on=[crds]))
    p = run_program(program)
    rule = p.one(PR)
    assert p.one("test:index:Crds").urn in rule.options["dependsOn"]
    assert rule.parent == p.one("cofounder:observability:AlertRules").urn
    assert 'namespace="apps"' in rule.inputs["spec"]["groups"][0]["rules"][0]["expr"]


def test_headroom_placeholders_waiting_is_not_an_alert():
    (group,) = rule_groups(AlertRulesArgs(app_namespace="cofounder"), "cofounder")
    pending = next(r for r in group["rules"] if r["alert"] == "CofounderPodsPendingTooLong")
    assert pending["expr"].endswith(
        'unless on (namespace, pod) kube_pod_info{namespace="cofounder", priority_class=~".*headroom.*"}')
    assert metric_names(pending["expr"]) == {"kube_pod_status_phase", "kube_pod_info"}
