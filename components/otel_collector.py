"""OtelCollector: the OpenTelemetry Collector that takes the apps' traces to AWS X-Ray (or an OTLP backend).

The seed's enqueue code carries a trace context into every agent job; this is the other half, so
a p99 above the target can be followed from the API through the queue to the worker:

- the official chart (https://open-telemetry.github.io/opentelemetry-helm-charts, pinned) in its
  own ``tracing`` namespace (PSA ``restricted``), as a Deployment of ``replicas`` pods on the
  system nodes, with a PodDisruptionBudget from two replicas;
- the contrib distribution by digest (it carries the ``awsxray`` exporter; the core image does not);
- one pipeline, OTLP (gRPC 4317, HTTP 4318) -> ``memory_limiter`` -> ``batch`` -> ``awsxray``,
  set through the chart's ``alternateConfig`` so none of the chart's default receivers (Jaeger,
  Zipkin, Prometheus) or debug exporters is started;
- an IRSA role that may only ``xray:PutTraceSegments`` (the exporter's one call; the action has no
  resource type, hence ``*``); with ``backend: otlp`` no role, the exporter posts to ``otlpEndpoint``;
- NetworkPolicies in its namespace: default deny, OTLP in from the app namespace only, DNS, and
  HTTPS out to X-Ray and STS (or the OTLP endpoint's port);
- per app a ConfigMap ``otel-<app>`` in the app namespace with the OpenTelemetry SDK's standard
  environment (endpoint, service name, sampler, propagators, resource attributes), which the app
  loads through ``envFrom``.

The trace contract on SQS (message attributes ``traceparent``/``tracestate``) is in
docs/observability.md ("Traces").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from capacity.cost import SAMPLING_ANNOTATION
from capacity.numbers import plain
from components import Between, Matches, require_valid, restricted_container
from components.app_network_policies import (
    DEFAULT_DENY,
    NAMESPACE_NAME_LABEL,
    REASON_ANNOTATION,
    Allowance,
    PeerPods,
    outside,
    pods_in,
    tcp,
)
from components.eks_cluster import CLUSTER_DNS_NAMESPACE, CLUSTER_DNS_PORT, CLUSTER_DNS_SELECTOR, RFC1918
from components.irsa_role import IrsaRole, IrsaRoleArgs

CHART_REPO = "https://open-telemetry.github.io/opentelemetry-helm-charts"
#: 0.170.0 ships the collector 0.158.0 (its Chart.yaml appVersion;
#: open-telemetry/opentelemetry-helm-charts@opentelemetry-collector-0.170.0).
CHART_VERSION = "0.170.0"
IMAGE_REPOSITORY = "otel/opentelemetry-collector-contrib"
#: 0.158.0's multi-platform index, as pinned identically by several public repositories in the
#: stored code index (no release record of the project lists it); check it with
#: ``docker buildx imagetools inspect otel/opentelemetry-collector-contrib:0.158.0`` before a bump.
#: The chart pulls ``repository@digest`` when ``image.digest`` is set (templates/_pod.tpl).
IMAGE_DIGEST = "sha256:c5918f78992ee73b0d6f0e599423ac5ec52dd5d9726733114d6eca53d5a32ed5"
IMAGE_TAG = "0.158.0"
RELEASE = "otel-collector"
SERVICE_ACCOUNT = "otel-collector"
HTTPS = 443
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
#: The chart's selector labels (templates/_helpers.tpl, selectorLabels): chart name, release name.
SELECTOR = {"app.kubernetes.io/name": "opentelemetry-collector", "app.kubernetes.io/instance": RELEASE}
_URL = r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9/._-]*)?"


def xray_write_policy() -> str:
    """IAM policy: upload trace segments, nothing else. PutTraceSegments takes no resource type, so
    ``*`` is the only resource it can name (the awsxray exporter calls nothing else unless its
    ``telemetry`` option is on, which this config leaves off)."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"}]})


@dataclass(frozen=True, kw_only=True)
class TracingSettings:
    """``cofounder:tracing``: the OpenTelemetry Collector and what the apps are told about it."""

    #: Deploy the collector and give every app the OpenTelemetry SDK's environment (``otel-<app>``).
    enabled: bool = True
    #: Share of new traces the apps record: the service that starts a trace decides, every later
    #: hop follows its decision (``parentbased_traceidratio``). X-Ray bills each recorded trace.
    sampling_ratio: Annotated[float, Between(0, 1)] = 0.1
    #: Where the collector sends traces: AWS X-Ray through its IRSA role, or ``otlpEndpoint``.
    backend: Literal["xray", "otlp"] = "xray"
    #: The OTLP/HTTP endpoint with ``backend: otlp`` (a Tempo or Jaeger in the VPC, no credentials).
    otlp_endpoint: Annotated[str | None, Matches(_URL, "an http(s) URL such as http://tempo.tracing:4318")] = None
    #: Collector replicas (two or more get a PodDisruptionBudget).
    replicas: Annotated[int, Between(1, 10)] = 2

    def checks(self):
        if self.backend == "otlp" and not self.otlp_endpoint:
            yield "otlp_endpoint", self.otlp_endpoint, "an http(s) URL, since backend is otlp"
        if self.backend == "xray" and self.otlp_endpoint:
            yield "otlp_endpoint", self.otlp_endpoint, "null with backend xray"


@dataclass(frozen=True, kw_only=True)
class OtelCollectorArgs(TracingSettings):
    """Settings plus the wiring. Pass the cluster's Kubernetes provider through ``opts``."""

    #: The app namespace: where the apps' ConfigMaps go and the only one whose pods may send OTLP.
    app_namespace: pulumi.Input[str]
    #: The apps that get an ``otel-<app>`` ConfigMap (cofounder:apps).
    apps: Sequence[str]
    #: ``deployment.environment.name`` on every span (the stack's environment).
    environment: str
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    namespace: str = "tracing"
    #: Where the collector runs (the system node group), and the tolerations to get there.
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: Sequence[dict] = ()
    #: CoreDNS, for the DNS egress allowance.
    dns_namespace: str = CLUSTER_DNS_NAMESPACE
    dns_selector: dict[str, str] = field(default_factory=lambda: dict(CLUSTER_DNS_SELECTOR))
    dns_port: int = CLUSTER_DNS_PORT
    chart_version: str = CHART_VERSION
    tags: dict[str, str] = field(default_factory=dict)


def endpoint(namespace: str) -> str:
    """The OTLP/HTTP endpoint the apps export to: the chart's Service, in-cluster DNS."""
    return f"http://{RELEASE}.{namespace}.svc.cluster.local:{OTLP_HTTP_PORT}"


def sdk_environment(args: OtelCollectorArgs, app: str) -> dict[str, str]:
    """The OpenTelemetry SDK's standard variables for one app (opentelemetry.io, "SDK Environment
    Variables" and "OTLP Exporter Configuration"): every SDK reads them, so no app code names the
    collector. Metrics stay on Prometheus and logs on stdout: only traces go to the collector."""
    return {
        "OTEL_SERVICE_NAME": app,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint(args.namespace),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": plain(args.sampling_ratio),
        "OTEL_PROPAGATORS": "tracecontext,baggage",
        "OTEL_RESOURCE_ATTRIBUTES": f"deployment.environment.name={args.environment},service.namespace=cofounder",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }


def collector_config(args: OtelCollectorArgs) -> dict:
    """The collector's whole configuration (the chart's ``alternateConfig``: not merged with its defaults)."""
    # The SDKs' random W3C trace IDs reach X-Ray as they are: the exporter's feature gate
    # exporter.awsxray.skiptimestampvalidation (beta, so on by default since it left alpha:
    # open-telemetry/opentelemetry-collector-contrib exporter/awsxrayexporter/factory.go) skips
    # the old check that the first 32 bits are a recent timestamp, so the apps need no X-Ray ID
    # generator.
    exporter: dict[str, Any] = ({"awsxray": {"region": args.region}} if args.backend == "xray"
                                else {"otlphttp": {"endpoint": args.otlp_endpoint}})
    return {
        # The chart's probes call the health_check extension (values.yaml: "mandatory for this chart").
        "extensions": {"health_check": {"endpoint": "${env:MY_POD_IP}:13133"}},
        "receivers": {"otlp": {"protocols": {
            "grpc": {"endpoint": f"${{env:MY_POD_IP}}:{OTLP_GRPC_PORT}"},
            "http": {"endpoint": f"${{env:MY_POD_IP}}:{OTLP_HTTP_PORT}"}}}},
        "processors": {
            # First in the pipeline: refuse data before the pod runs out of memory (80 % of its limit).
            "memory_limiter": {"check_interval": "5s", "limit_percentage": 80, "spike_limit_percentage": 25},
            "batch": {"timeout": "5s"},
        },
        "exporters": exporter,
        "service": {
            "extensions": ["health_check"],
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"],
                                     "exporters": list(exporter)}},
        },
    }


def chart_values(args: OtelCollectorArgs, role_arn: pulumi.Input[str] | None) -> dict:
    """The chart's values: a Deployment of the contrib image by digest, restricted, on the system nodes."""
    disabled = {"enabled": False}
    values: dict[str, Any] = {
        "mode": "deployment",
        "fullnameOverride": RELEASE,
        "replicaCount": args.replicas,
        "image": {"repository": IMAGE_REPOSITORY, "tag": IMAGE_TAG, "digest": IMAGE_DIGEST},
        "alternateConfig": collector_config(args),
        "ports": {"jaeger-compact": disabled, "jaeger-thrift": disabled, "jaeger-grpc": disabled,
                  "zipkin": disabled},
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT,
                           "annotations": {"eks.amazonaws.com/role-arn": role_arn} if role_arn else {}},
        "podSecurityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": restricted_container(),
        # GOMEMLIMIT (the chart's useGOMEMLIMIT) and memory_limiter both work from the memory limit.
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
        "nodeSelector": dict(args.node_selector),
        "tolerations": list(args.tolerations),
        "podDisruptionBudget": {"enabled": args.replicas > 1, "minAvailable": 1},
        # the apps' ratio, recorded where the cost model reads the X-Ray line from
        "podAnnotations": {SAMPLING_ANNOTATION: plain(args.sampling_ratio)},
    }
    if args.replicas > 1:
        values["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(SELECTOR)}}]
    return values


def _port_of(url: str) -> int:
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


class OtelCollector(pulumi.ComponentResource):
    """The collector's namespace, role, Helm release, NetworkPolicies and the apps' ConfigMaps."""

    #: ``otel-<app>`` per app: the ConfigMap the app loads through envFrom.
    config_map_names: dict[str, str]
    #: The collector's namespace and pod labels (the apps' egress allowance selects them).
    namespace: str
    selector: dict[str, str]
    ports: list[int]

    def __init__(self, name: str, args: OtelCollectorArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:observability:OtelCollector", name, None, opts)
        require_valid(f"OtelCollector {name}", args)
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted"}},
            opts=child)
        role_arn = self._xray_role(name, args) if args.backend == "xray" else None
        release = k8s.helm.v3.Release(
            f"{name}-release", name=RELEASE, chart="opentelemetry-collector", version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO), namespace=args.namespace,
            values=chart_values(args, role_arn), atomic=True, cleanup_on_fail=True, max_history=5,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace]))
        self._network_policies(name, args, namespace)
        self.config_map_names = self._app_config_maps(name, args)
        self.namespace, self.selector = args.namespace, dict(SELECTOR)
        self.ports = [OTLP_GRPC_PORT, OTLP_HTTP_PORT]
        self.register_outputs({"release": release.name, "config_map_names": self.config_map_names})

    def _xray_role(self, name: str, args: OtelCollectorArgs) -> pulumi.Output[str]:
        """The IRSA role of the collector's service account: PutTraceSegments only."""
        return IrsaRole(f"{name}-xray", IrsaRoleArgs(
            oidc_provider_arn=args.oidc_provider_arn, oidc_issuer_url=args.oidc_issuer_url,
            namespace=args.namespace, service_account=SERVICE_ACCOUNT, policy_json=xray_write_policy(),
            tags={**args.tags, "component": "tracing"}), opts=pulumi.ResourceOptions(parent=self)).role_arn

    def _network_policies(self, name: str, args: OtelCollectorArgs, namespace: k8s.core.v1.Namespace) -> None:
        """Default deny in the collector's namespace, then its three flows (the app namespace's
        ``Allowance`` and peer helpers, components/app_network_policies.py)."""
        out_port = HTTPS if args.backend == "xray" else _port_of(str(args.otlp_endpoint))
        dns = PeerPods(namespace=args.dns_namespace, selector=args.dns_selector)
        flows = [
            Allowance("from-apps", "the apps export OTLP (gRPC and HTTP) from the app namespace only", SELECTOR,
                      "ingress", [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: args.app_namespace}}}],
                      tcp(OTLP_GRPC_PORT, OTLP_HTTP_PORT)),
            Allowance("to-cluster-dns", "names of the X-Ray, STS or OTLP endpoints", SELECTOR, "egress",
                      [pods_in(dns)], [{"protocol": "UDP", "port": args.dns_port},
                                       {"protocol": "TCP", "port": args.dns_port}]),
            # X-Ray is public (outside the private ranges, as the apps' aws-apis flow); an OTLP
            # backend may be anywhere, in the VPC included
            Allowance("to-backend", "X-Ray and STS (IRSA) at their public endpoints through the NAT gateways"
                      if args.backend == "xray" else f"the OTLP backend {args.otlp_endpoint}", SELECTOR, "egress",
                      outside(list(RFC1918)) if args.backend == "xray" else [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
                      tcp(out_port)),
        ]
        allowed = [k8s.networking.v1.NetworkPolicy(
            f"{name}-{a.name}",
            metadata={"name": f"otel-collector-{a.name}", "namespace": args.namespace,
                      "annotations": {REASON_ANNOTATION: a.reason}},
            spec=a.spec(), opts=pulumi.ResourceOptions(parent=self, depends_on=[namespace])) for a in flows]
        # Last in, first out, as in the app namespace: the collector never meets the deny alone.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata={"name": DEFAULT_DENY, "namespace": args.namespace,
                      "annotations": {REASON_ANNOTATION: "nothing reaches or leaves the collector "
                                                         "unless an allowance says so"}},
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=allowed))

    def _app_config_maps(self, name: str, args: OtelCollectorArgs) -> dict[str, str]:
        """``otel-<app>`` in the app namespace: the SDK environment each app loads."""
        names = {}
        for app in args.apps:
            names[app] = f"otel-{app}"
            k8s.core.v1.ConfigMap(
                f"{name}-{app}-env",
                metadata={"name": names[app], "namespace": args.app_namespace,
                          "labels": {"app.kubernetes.io/part-of": "cofounder", "app.kubernetes.io/name": app}},
                data=sdk_environment(args, app), opts=pulumi.ResourceOptions(parent=self))
        return names

