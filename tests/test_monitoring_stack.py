"""components/monitoring_stack.py: the pinned chart, its values, Grafana's secret, dashboards, IRSA."""

from __future__ import annotations

import json

from components import dashboards
from components.monitoring_stack import CLOUDWATCH_DATASOURCE_UID, MonitoringStack, MonitoringStackArgs
from toolkit.harness import is_secret

RELEASE = "kubernetes:helm.sh/v3:Release"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"


def _stack(run_program, **overrides):
    args = MonitoringStackArgs(region="us-east-1", dashboards=dashboards.load(), **overrides)
    return run_program(lambda: MonitoringStack("mon", args))


def test_defaults_pin_the_official_chart_with_retention_and_storage(run_program):
    release = _stack(run_program).one(RELEASE)
    i = release.inputs
    assert (i["chart"], i["version"], i["name"], i["namespace"]) == (
        "kube-prometheus-stack", "79.7.1", "kube-prometheus-stack", "monitoring")
    assert i["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    spec = i["values"]["prometheus"]["prometheusSpec"]
    assert (spec["retention"], spec["retentionSize"], spec["scrapeInterval"]) == ("15d", "45GB", "30s")
    assert spec["storageSpec"]["volumeClaimTemplate"]["spec"] == {
        "storageClassName": "gp3", "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "50Gi"}}}
    # the project's monitors and rules are picked up wherever they are
    for key in ("serviceMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues",
                "ruleSelectorNilUsesHelmValues"):
        assert spec[key] is False
    assert spec["nodeSelector"] == {}
    # EKS hides the control plane: no scrapers that could only ever be "down"
    for component in ("kubeEtcd", "kubeScheduler", "kubeControllerManager", "kubeProxy"):
        assert i["values"][component] == {"enabled": False}


def test_grafana_password_is_generated_and_only_in_a_secret(run_program, validate_k8s):
    p = _stack(run_program)
    secret = p.one("kubernetes:core/v1:Secret")
    assert is_secret(secret.inputs["stringData"])
    validate_k8s(secret)
    password = p.one("random:index/randomPassword:RandomPassword")
    assert password.inputs["length"] >= 32
    grafana = p.one(RELEASE).inputs["values"]["grafana"]
    assert grafana["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user",
                                "passwordKey": "admin-password"}
    assert "adminPassword" not in grafana
    assert password.outputs["result"] not in json.dumps(p.one(RELEASE).inputs)
    assert "stringData" in secret.options["additionalSecretOutputs"]


def test_dashboards_are_configmaps_for_the_sidecar(run_program, validate_k8s):
    p = _stack(run_program)
    sidecar = p.one(RELEASE).inputs["values"]["grafana"]["sidecar"]["dashboards"]
    assert sidecar == {"enabled": True, "label": "grafana_dashboard", "labelValue": "1"}
    maps = p.of_type("kubernetes:core/v1:ConfigMap")
    assert sorted(m.inputs["metadata"]["name"] for m in maps) == [
        "grafana-dashboard-data-tier", "grafana-dashboard-scaling", "grafana-dashboard-traffic"]
    for m in maps:
        validate_k8s(m)
        assert m.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        (body,) = m.inputs["data"].values()
        assert json.loads(body)["uid"].startswith("cofounder-")


def test_namespace_admits_node_exporter(run_program, validate_k8s):
    ns = _stack(run_program).one("kubernetes:core/v1:Namespace")
    validate_k8s(ns)
    assert ns.inputs["metadata"]["name"] == "monitoring"
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_without_oidc_there_is_no_aws_access(run_program):
    p = _stack(run_program)
    assert not p.of_type("aws:iam/role:Role")
    grafana = p.one(RELEASE).inputs["values"]["grafana"]
    assert "additionalDataSources" not in grafana and "annotations" not in grafana["serviceAccount"]


def test_oidc_gives_grafana_cloudwatch_through_irsa(run_program):
    p = _stack(run_program, oidc_provider_arn=OIDC_ARN, oidc_issuer_url=ISSUER)
    role = p.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Condition"]["StringEquals"][
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == "system:serviceaccount:monitoring:grafana"
    policy = json.loads(p.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    actions = policy["Statement"][0]["Action"]
    assert all(a.split(":")[1].startswith(("Get", "List", "Describe")) for a in actions)
    grafana = p.one(RELEASE).inputs["values"]["grafana"]
    assert grafana["serviceAccount"] == {"create": True, "name": "grafana",
                                         "annotations": {"eks.amazonaws.com/role-arn": role.outputs["arn"]}}
    (ds,) = grafana["additionalDataSources"]
    assert (ds["type"], ds["uid"]) == ("cloudwatch", CLOUDWATCH_DATASOURCE_UID)
    assert ds["jsonData"] == {"authType": "default", "defaultRegion": "us-east-1"}


def test_overrides_storage_retention_and_node_selector(run_program):
    p = _stack(run_program, chart_version="80.0.0", retention_days=30, retention_size_gib=180,
               storage_gib=200, storage_class="gp3-encrypted", scrape_interval_seconds=15,
               node_selector={"role": "system"})
    values = p.one(RELEASE).inputs["values"]
    spec = values["prometheus"]["prometheusSpec"]
    assert p.one(RELEASE).inputs["version"] == "80.0.0"
    assert (spec["retention"], spec["retentionSize"], spec["scrapeInterval"]) == ("30d", "180GB", "15s")
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "gp3-encrypted"
    assert claim["resources"]["requests"]["storage"] == "200Gi"
    for selector in (spec["nodeSelector"], values["alertmanager"]["alertmanagerSpec"]["nodeSelector"],
                     values["prometheusOperator"]["nodeSelector"], values["kube-state-metrics"]["nodeSelector"],
                     values["grafana"]["nodeSelector"]):
        assert selector == {"role": "system"}


def test_grafana_can_be_switched_off(run_program):
    p = _stack(run_program, grafana_enabled=False, oidc_provider_arn=OIDC_ARN, oidc_issuer_url=ISSUER)
    assert p.one(RELEASE).inputs["values"]["grafana"] == {"enabled": False}
    assert not p.of_type("kubernetes:core/v1:Secret") and not p.of_type("kubernetes:core/v1:ConfigMap")
    assert not p.of_type("aws:iam/role:Role")


def test_every_child_is_parented_and_named_after_the_component(run_program):
    p = _stack(run_program, oidc_provider_arn=OIDC_ARN, oidc_issuer_url=ISSUER)
    component = p.one("cofounder:observability:MonitoringStack")
    for r in p.resources:
        if r is not component:
            assert p.component_of(r) == component and r.name.startswith("mon-"), r.urn


def test_tolerations_follow_the_node_selector(run_program):
    taint = {"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}
    values = _stack(run_program, node_selector={"node-pool": "system"}, tolerations=[taint]).one(
        RELEASE).inputs["values"]
    for placed in (values["prometheus"]["prometheusSpec"], values["alertmanager"]["alertmanagerSpec"],
                   values["prometheusOperator"], values["prometheusOperator"]["admissionWebhooks"]["patch"],
                   values["kube-state-metrics"], values["grafana"]):
        assert placed["nodeSelector"] == {"node-pool": "system"} and placed["tolerations"] == [taint]
    assert "prometheus-node-exporter" not in values  # it must keep running on every node
