"""components/otel_collector.py: the collector (pinned chart, contrib image by digest, X-Ray only
through a one-action role), its NetworkPolicies, and the apps' SDK environment."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components import ComponentArgsError
from components.otel_collector import IMAGE_DIGEST, OtelCollector, OtelCollectorArgs, TracingSettings

OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"
NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STACKS = ["dev", "staging", "prod"]


def _collector(run_program, **overrides):
    def program():
        provider = k8s.Provider("k8s")
        args = {"app_namespace": "cofounder", "apps": ["frontend", "backend", "worker"], "environment": "prod",
                "region": "us-east-1", "oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER, **overrides}
        OtelCollector("tracing", OtelCollectorArgs(**args), opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


def _values(program) -> dict:
    return program.one("kubernetes:helm.sh/v3:Release").inputs["values"]


def test_the_pinned_chart_runs_the_contrib_image_by_digest(run_program):
    release = _collector(run_program).one("kubernetes:helm.sh/v3:Release").inputs
    assert (release["chart"], release["version"], release["namespace"]) == ("opentelemetry-collector", "0.170.0",
                                                                             "tracing")
    assert release["repositoryOpts"] == {"repo": "https://open-telemetry.github.io/opentelemetry-helm-charts"}
    values = release["values"]
    # the chart pulls repository@digest when a digest is set; the core image has no awsxray exporter
    assert values["image"]["repository"] == "otel/opentelemetry-collector-contrib"
    assert values["image"]["digest"] == IMAGE_DIGEST and IMAGE_DIGEST.startswith("sha256:") and len(IMAGE_DIGEST) == 71
    assert values["mode"] == "deployment" and values["replicaCount"] == 2
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    # restricted PSA in its namespace: non-root, no escalation, no capabilities
    assert values["securityContext"]["allowPrivilegeEscalation"] is False
    assert values["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert values["podSecurityContext"]["runAsNonRoot"] is True


def test_one_traces_pipeline_and_none_of_the_charts_default_receivers(run_program):
    values = _values(_collector(run_program))
    config = values["alternateConfig"]  # replaces the chart's config (Jaeger, Zipkin, Prometheus, debug)
    assert config["service"]["pipelines"] == {"traces": {
        "receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["awsxray"]}}
    assert config["exporters"] == {"awsxray": {"region": "us-east-1"}}
    assert set(config["receivers"]["otlp"]["protocols"]) == {"grpc", "http"}
    assert config["service"]["extensions"] == ["health_check"]  # the chart's probes call it
    assert all(values["ports"][p] == {"enabled": False}
               for p in ("jaeger-compact", "jaeger-thrift", "jaeger-grpc", "zipkin"))


def test_the_role_may_only_put_trace_segments_for_the_collectors_service_account(run_program):
    p = _collector(run_program)
    role = p.one("aws:iam/role:Role")
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert condition["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == "system:serviceaccount:tracing:otel-collector"
    policy = json.loads(p.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert policy["Statement"] == [{"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"}]
    assert _values(p)["serviceAccount"] == {"create": True, "name": "otel-collector", "annotations": {
        "eks.amazonaws.com/role-arn": role.outputs["arn"]}}


def test_an_otlp_backend_needs_no_role_and_gets_its_own_port(run_program):
    p = _collector(run_program, backend="otlp", otlp_endpoint="http://tempo.observability:4318")
    assert p.of_type("aws:iam/role:Role") == []
    config = _values(p)["alternateConfig"]
    assert config["exporters"] == {"otlphttp": {"endpoint": "http://tempo.observability:4318"}}
    assert "eks.amazonaws.com/role-arn" not in _values(p)["serviceAccount"]["annotations"]
    out = next(r for r in p.of_type(NP) if r.name == "tracing-to-backend").inputs["spec"]["egress"][0]
    assert out == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 4318}]}


@pytest.mark.parametrize("settings, key", [({"backend": "otlp"}, "otlp_endpoint"),
                                           ({"otlp_endpoint": "http://tempo:4318"}, "otlp_endpoint"),
                                           ({"sampling_ratio": 1.5}, "sampling_ratio")])
def test_inconsistent_settings_are_refused_at_their_key(run_program, settings, key):
    with pytest.raises(ComponentArgsError, match=key):
        _collector(run_program, **settings)


def test_default_deny_in_its_namespace_and_only_the_apps_may_send(run_program, validate_k8s):
    p = _collector(run_program)
    policies = {r.inputs["metadata"]["name"]: r for r in p.of_type(NP)}
    for r in policies.values():
        validate_k8s(r)
        assert r.inputs["metadata"]["namespace"] == "tracing"
    assert set(policies) == {"default-deny", "otel-collector-from-apps", "otel-collector-to-cluster-dns",
                             "otel-collector-to-backend"}
    deny = policies["default-deny"]
    assert deny.inputs["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # created last: the collector never meets the deny without its allowances
    assert {policies[n].urn for n in policies if n != "default-deny"} <= set(deny.options["dependsOn"])
    ingress = policies["otel-collector-from-apps"].inputs["spec"]["ingress"][0]
    assert ingress["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cofounder"}}}]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 4317}, {"protocol": "TCP", "port": 4318}]
    egress = policies["otel-collector-to-backend"].inputs["spec"]["egress"][0]
    assert egress["to"][0]["ipBlock"]["except"] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    assert egress["ports"] == [{"protocol": "TCP", "port": 443}]
    ns = p.one("kubernetes:core/v1:Namespace")
    validate_k8s(ns)
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_each_app_gets_the_sdk_environment_in_its_own_config_map(run_program, validate_k8s):
    maps = {r.inputs["metadata"]["name"]: r for r in _collector(run_program, sampling_ratio=0.25).of_type(
        "kubernetes:core/v1:ConfigMap")}
    assert set(maps) == {"otel-frontend", "otel-backend", "otel-worker"}
    worker = maps["otel-worker"]
    validate_k8s(worker)
    assert worker.inputs["metadata"]["namespace"] == "cofounder"
    assert worker.inputs["data"] == {
        "OTEL_SERVICE_NAME": "worker",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.tracing.svc.cluster.local:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_PROPAGATORS": "tracecontext,baggage",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,service.namespace=cofounder",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_traces_the_apps_through_the_collector(stack, stack_program):
    p = stack_program(stack)
    deployments = {r.inputs["metadata"]["name"]: r for r in p.of_type("kubernetes:apps/v1:Deployment")
                   if r.inputs["metadata"].get("namespace") == "cofounder"}
    for app in ("frontend", "backend", "worker"):
        env_from = deployments[app].inputs["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": f"otel-{app}"}} in env_from
    # the apps' side of the flow (the collector's namespace admits it on the same ports)
    policies = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in p.of_type(NP)
                if r.inputs["metadata"]["namespace"] == "cofounder"}
    for app in ("frontend", "backend", "worker"):
        egress = policies[f"{app}-to-otel-collector"]["egress"][0]
        assert egress["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "tracing"}},
                                 "podSelector": {"matchLabels": {"app.kubernetes.io/name": "opentelemetry-collector",
                                                                 "app.kubernetes.io/instance": "otel-collector"}}}]
    # the p99 alert says where the slow requests' traces are
    rule = next(r for r in p.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule"))
    alerts = {a["alert"]: a for g in rule.inputs["spec"]["groups"] for a in g["rules"] if "alert" in a}
    assert 'service("{{ $labels.service }}") AND responsetime > 0.2' in \
        alerts["CofounderP99LatencyHigh"]["annotations"]["traces"]


def test_switched_off_no_collector_no_app_environment(run_stack_with):
    p = run_stack_with("dev", {"cofounder:tracing": {"enabled": False}})
    assert p.of_type("cofounder:observability:OtelCollector") == []
    assert not [r for r in p.of_type("kubernetes:core/v1:ConfigMap") if r.inputs["metadata"].get("name", "").startswith("otel-")]
    assert not [r for r in p.of_type(NP) if r.inputs["metadata"]["name"].endswith("-to-otel-collector")]


def test_the_sampling_ratio_is_priced_as_x_ray_traces(stack_program):
    from toolkit.cost_reports import stack_estimate
    line = next(li for li in stack_estimate(stack_program("prod")).lines if li.price_key == "xray.traces-recorded-1m")
    settings = TracingSettings()
    # 30 M viewer requests a month (cofounder:cost's default) x 0.1: 3 M traces at $5 per million
    assert line.quantity_min == pytest.approx(30 * settings.sampling_ratio) and line.unit_price == 5.0
    assert line.quantity_max == pytest.approx(5 * line.quantity_min)  # maxScaleUsageMultiplier
