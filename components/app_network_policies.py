"""AppNetworkPolicies: default deny in the app namespace, and one NetworkPolicy per flow the apps need.

Without NetworkPolicies every pod of the cluster (the Helm add-ons' included) reaches PgBouncer
and every app pod, and every app pod reaches anything. This component declares, in the app
namespace, ``default-deny`` (every pod, Ingress and Egress, no rule) and then one allowance per
flow, each a NetworkPolicy named after why it exists (``kubectl -n <ns> get networkpolicy`` reads
as the list of flows; the ``cofounder.dev/reason`` annotation says why):

- ``all-to-cluster-dns``: every pod resolves names (Services, RDS, ElastiCache, AWS endpoints)
  through CoreDNS in kube-system, UDP and TCP 53;
- ``<app>-from-load-balancer``: the internal ALB sends requests and health checks straight to the
  pod IPs (``ip`` target groups, TargetGroupBinding) from its ENIs in the private subnets, so the
  peer is those subnets' CIDR blocks on the app's port (and its probe port);
- ``<app>-to-<callee>`` and ``<callee>-from-<app>``: calls between apps (``appCalls``, the
  frontend's server-side requests to the API);
- ``<app>-to-pgbouncer`` and ``pgbouncer-from-<app>`` (``dataAccess: database``,
  ``DATABASE_URL_POOLED``), ``<app>-to-postgres`` (``DATABASE_URL``, direct, for migrations),
  ``pgbouncer-to-postgres``: RDS and its Multi-AZ standby live in the private subnets, on 5432;
- ``database-bootstrap-to-postgres``: the Job that creates the database roles (DatabaseRoles)
  connects to RDS as the master user; like every pod it resolves names through ``all-to-cluster-dns``.
  It needs no other flow: its credentials arrive as a Secret that External Secrets Operator
  (its own namespace) writes through the API server;
- ``<app>-to-redis`` (``dataAccess: redis``): ElastiCache in cluster mode, every node in the
  private subnets, on 6379;
- ``<app>-to-aws-apis`` (``needsAws``): SQS and STS (IRSA's AssumeRoleWithWebIdentity) over HTTPS.
  The VPC has no interface endpoints, so they are reached through the NAT gateways at their
  public regional addresses: 443 to anything outside the private ranges;
- ``<app>-to-internet-https`` (``internetHttpsApps``): the LLM providers and other APIs the agents
  call, the same peer; ``<app>-to-<name>`` for each ``extraEgress`` destination;
- ``<app>-to-otel-collector``: OTLP traces to the OpenTelemetry Collector in its own namespace
  (OtelCollector, which declares the matching ingress there) on 4317 and 4318;
- ``<app>-from-prometheus``, ``pgbouncer-from-prometheus``: Prometheus (monitoring namespace)
  scrapes the pods directly on the ports its monitors name.

Nothing else crosses into the namespace: prometheus-adapter and KEDA query Prometheus (monitoring
to monitoring, keda to monitoring), KEDA's operator reads SQS, the Kubernetes API server calls
their APIService endpoints in their own namespaces, and metrics-server reads the kubelets.

Enforcement is the VPC CNI's network policy agent (EksCluster enables it). It always admits
traffic from the pod's own node, so kubelet probes need no rule: the node IP is added to every
pod's allow map (aws-network-policy-agent@v1.2.7, the agent amazon-vpc-cni-k8s@v1.20.4's chart
pins: pkg/fwruleprocessor/fw_rule_processor.go, "Traffic from the local node should always be
allowed"), and Kubernetes' own NetworkPolicy page says pods cannot block access from their
resident node (https://kubernetes.io/docs/concepts/services-networking/network-policies/).
Egress to a Service is matched before kube-proxy's DNAT: EKS's network policy
controller adds the ClusterIP of every Service whose selector the peer's podSelector matches,
mapped to the Service port (amazon-network-policy-controller-k8s@v1.0.0:pkg/resolvers/endpoints.go,
getMatchingServiceClusterIPs/getMatchingServicePort), which is why egress peers select pods by
the Service's own selector labels and name the container port.

Order: every allowance is created before ``default-deny`` (which depends on them) and deleted
after it, so a running pod never meets the deny without its allowances; new pods start open
until their policies are in place (the agent's ``standard`` mode).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import pulumi
import pulumi_kubernetes as k8s

from capacity.schema import dotted
from components import Between, Matches, require_valid
from components.eks_cluster import CLUSTER_DNS_NAMESPACE, CLUSTER_DNS_PORT, CLUSTER_DNS_SELECTOR, RFC1918
from components.postgres import PORT as POSTGRES_PORT
from components.redis import PORT as REDIS_PORT

#: The label the API server puts on every namespace (its name; Kubernetes 1.22+, immutable).
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
REASON_ANNOTATION = "cofounder.dev/reason"
DEFAULT_DENY = "default-deny"
HTTPS_PORT = 443
_NAME = r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?"
#: Destinations the allowances already name (``<app>-to-<destination>``).
_RESERVED = ("cluster-dns", "load-balancer", "pgbouncer", "postgres", "redis", "aws-apis", "internet-https",
             "prometheus", "otel-collector")
_APP = Annotated[str, Matches(_NAME, "an app name of cofounder:apps")]


def _cidr_problem(cidr: str) -> str | None:
    try:
        ipaddress.IPv4Network(cidr)
    except ValueError:
        return "an IPv4 CIDR block such as 192.0.2.0/24"
    return None


@dataclass(frozen=True, kw_only=True)
class ExtraEgress:
    """``cofounder:networkPolicies.extraEgress.<name>``: one more destination outside the cluster
    (a partner API over a VPN, a collector in a peered VPC); each app gets ``<app>-to-<name>``."""

    #: Apps of cofounder:apps that open connections to it.
    apps: list[_APP]
    #: Its IPv4 CIDR blocks.
    cidrs: list[str]
    #: Its TCP ports.
    ports: list[Annotated[int, Between(1, 65535)]]

    def checks(self):
        for key, value in (("apps", self.apps), ("cidrs", self.cidrs), ("ports", self.ports)):
            if not value:
                yield key, value, "at least one entry"
        for i, cidr in enumerate(self.cidrs):
            problem = _cidr_problem(cidr)
            if problem:
                yield f"cidrs[{i}]", cidr, problem


@dataclass(frozen=True, kw_only=True)
class AppNetworkPoliciesSettings:
    """``cofounder:networkPolicies``: default deny in the app namespace and one NetworkPolicy per
    flow the apps need (docs/network-policies.md)."""

    #: Default deny plus the allowances; false leaves every app pod open to every pod of the cluster
    #: (the policy pack refuses that in staging and prod).
    enabled: bool = True
    #: Which apps call which inside the namespace (the frontend's server-side requests to the API);
    #: each pair is an egress and an ingress NetworkPolicy.
    app_calls: dict[str, list[_APP]] = field(default_factory=lambda: {"frontend": ["backend"]})
    #: Apps that may open HTTPS connections outside the private ranges: the LLM providers and other
    #: APIs their agents call (apps with needsAws reach the AWS APIs anyway).
    internet_https_apps: list[_APP] = field(default_factory=lambda: ["backend", "worker"])
    #: More destinations outside the cluster, by name (why it exists).
    extra_egress: dict[str, ExtraEgress] = field(default_factory=dict)

    def app_references(self) -> list[tuple[tuple, str]]:
        """Every place the flows name an app, as (path of field names, keys and indexes; the app):
        the component and the config loader hold each to the apps they know."""
        named: list[tuple[tuple, str]] = [(("app_calls", app), app) for app in self.app_calls]
        named += [(("app_calls", app, i), callee) for app, callees in self.app_calls.items()
                  for i, callee in enumerate(callees)]
        named += [(("internet_https_apps", i), app) for i, app in enumerate(self.internet_https_apps)]
        named += [(("extra_egress", name, "apps", i), app) for name, dest in self.extra_egress.items()
                  for i, app in enumerate(dest.apps)]
        return named

    def checks(self):
        for name in self.extra_egress:
            if not Matches(_NAME).allows(name):
                yield f"extra_egress.{name}", name, "a name of lowercase letters, digits and '-' (at most 40)"
            elif name in _RESERVED:
                yield f"extra_egress.{name}", name, "a name other than " + ", ".join(_RESERVED)
        for app, callees in self.app_calls.items():
            if app in callees:
                yield f"app_calls.{app}", callees, "apps other than the caller itself"


@dataclass(frozen=True, kw_only=True)
class AppPods:
    """One app of the namespace as its flows need it (its AppService and settings)."""

    #: Labels that select its pods (AppService.selector, also its Service's selector).
    selector: Mapping[str, str]
    #: The container port it serves on (and Prometheus scrapes /metrics on).
    port: int
    #: Ports the ALB sends requests and health checks to; empty: not behind the ALB.
    load_balancer_ports: Sequence[int] = ()
    #: Prometheus scrapes it (a monitor of ScrapeTargets selects it).
    scraped: bool = False
    #: dataAccess database: PgBouncer (pooled) and RDS (direct, migrations).
    database: bool = False
    #: dataAccess redis: ElastiCache.
    redis: bool = False
    #: needsAws: calls AWS APIs (SQS, STS) with its IRSA role.
    aws_apis: bool = False


@dataclass(frozen=True, kw_only=True)
class PoolerPods:
    """PgBouncer as its flows need it (the PgBouncer component's outputs)."""

    selector: Mapping[str, str]
    port: int
    #: The exporter's port Prometheus scrapes; None without the exporter.
    metrics_port: int | None = None


@dataclass(frozen=True, kw_only=True)
class PeerPods:
    """Pods of another namespace, selected by the namespace's name and their labels."""

    namespace: pulumi.Input[str]
    selector: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class AppNetworkPoliciesArgs(AppNetworkPoliciesSettings):
    """Settings plus the wiring."""

    #: The app namespace (EksCluster.app_namespace).
    namespace: pulumi.Input[str]
    #: The apps of the namespace, by name (cofounder:apps).
    apps: Mapping[str, AppPods]
    #: PgBouncer; required when an app has database access.
    pgbouncer: PoolerPods | None = None
    #: The private subnets' CIDR blocks (Network.private_subnet_cidr_blocks): the internal ALB's
    #: ENIs, RDS and ElastiCache are there.
    private_subnet_cidrs: Sequence[str]
    #: The VPC's CIDR block: never "outside" even when it is not an RFC 1918 range.
    vpc_cidr: str
    #: The Prometheus pods that scrape the namespace; None: nothing scrapes it.
    prometheus: PeerPods | None = None
    #: The OpenTelemetry Collector's pods the apps export traces to (OtelCollector); None: no tracing.
    tracing: PeerPods | None = None
    #: Its OTLP ports (gRPC, HTTP).
    tracing_ports: Sequence[int] = ()
    #: Labels of the database bootstrap Job's pods (DatabaseRoles); None: no bootstrap Job.
    database_bootstrap: Mapping[str, str] | None = None
    dns: PeerPods = field(default_factory=lambda: PeerPods(namespace=CLUSTER_DNS_NAMESPACE,
                                                           selector=CLUSTER_DNS_SELECTOR))
    dns_port: int = CLUSTER_DNS_PORT
    postgres_port: int = POSTGRES_PORT
    redis_port: int = REDIS_PORT

    def checks(self):
        yield from AppNetworkPoliciesSettings.checks(self)
        known = ", ".join(sorted(self.apps))
        for path, app in self.app_references():
            if app not in self.apps:
                yield dotted(path), app, f"an app of the namespace ({known})"
        for name in self.extra_egress:
            if name in self.apps:
                yield f"extra_egress.{name}", name, "a name other than the apps' (calls between apps are appCalls)"
        if self.pgbouncer is None and any(a.database for a in self.apps.values()):
            yield "pgbouncer", None, "the PgBouncer pods, since an app has database access"
        for i, cidr in enumerate([*self.private_subnet_cidrs, self.vpc_cidr]):
            problem = _cidr_problem(cidr)
            if problem:
                yield "private_subnet_cidrs" if i < len(self.private_subnet_cidrs) else "vpc_cidr", cidr, problem


def internal_ranges(vpc_cidr: str) -> list[str]:
    """What "outside" excludes: the RFC 1918 ranges (the VPC, the cluster's Service range, peered
    networks) and the VPC itself when it lies outside them."""
    vpc = ipaddress.IPv4Network(vpc_cidr)
    inside = any(vpc.subnet_of(ipaddress.IPv4Network(block)) for block in RFC1918)
    return list(RFC1918) if inside else [*RFC1918, str(vpc)]


def tcp(*ports: int) -> list[dict]:
    return [{"protocol": "TCP", "port": port} for port in sorted(set(ports))]


def pods(selector: Mapping[str, str]) -> dict:
    """A peer: the pods of the policy's own namespace with these labels."""
    return {"podSelector": {"matchLabels": dict(selector)}}


def pods_in(peer: PeerPods) -> dict:
    """A peer: pods of another namespace, by the namespace's name label and the pods' labels."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}},
            "podSelector": {"matchLabels": dict(peer.selector)}}


def ip_blocks(cidrs: Sequence[str]) -> list[dict]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]


def outside(internal: Sequence[str]) -> list[dict]:
    """A peer: every IPv4 address but the internal ranges (public endpoints, through the NAT)."""
    return [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(internal)}}]


@dataclass(frozen=True)
class Allowance:
    """One NetworkPolicy other than the default deny: the pods it selects and the one rule it adds."""

    name: str
    reason: str
    #: Labels of the selected pods; empty selects every pod of the namespace.
    selector: Mapping[str, str]
    direction: str  # "ingress" or "egress"
    peers: list[dict]
    ports: list[dict]

    def spec(self) -> dict:
        rule: dict[str, Any] = {("from" if self.direction == "ingress" else "to"): self.peers, "ports": self.ports}
        return {"podSelector": {"matchLabels": dict(self.selector)} if self.selector else {},
                "policyTypes": [self.direction.capitalize()],
                self.direction: [rule]}


def _observability_flows(args: AppNetworkPoliciesArgs, name: str, app: AppPods) -> list[Allowance]:
    """An app's traces out to the collector and Prometheus's scrapes in."""
    out = []
    if args.tracing is not None:
        out.append(Allowance(f"{name}-to-otel-collector",
                             "OTLP traces to the OpenTelemetry Collector (the otel-<app> ConfigMap)",
                             app.selector, "egress", [pods_in(args.tracing)], tcp(*args.tracing_ports)))
    if app.scraped and args.prometheus is not None:
        out.append(Allowance(f"{name}-from-prometheus", "Prometheus scrapes /metrics on the app port",
                             app.selector, "ingress", [pods_in(args.prometheus)], tcp(app.port)))
    return out


def allowances(args: AppNetworkPoliciesArgs) -> list[Allowance]:
    """Every flow the namespace's pods need, in a stable order (also what the docs describe)."""
    out: list[Allowance] = []

    def add(name: str, reason: str, selector: Mapping[str, str], direction: str, peers: list[dict],
            ports: list[dict]) -> None:
        out.append(Allowance(name, reason, selector, direction, peers, ports))

    private, internal = list(args.private_subnet_cidrs), internal_ranges(args.vpc_cidr)
    add("all-to-cluster-dns", "every pod resolves Service, RDS, ElastiCache and AWS names through CoreDNS",
        {}, "egress", [pods_in(args.dns)],
        [{"protocol": "UDP", "port": args.dns_port}, {"protocol": "TCP", "port": args.dns_port}])
    pgb = args.pgbouncer
    for name, app in args.apps.items():
        if app.load_balancer_ports:
            add(f"{name}-from-load-balancer",
                "the internal ALB sends requests and health checks to the pod IPs from its ENIs in the private subnets",
                app.selector, "ingress", ip_blocks(private), tcp(*app.load_balancer_ports))
        for callee in args.app_calls.get(name, []):
            target = args.apps[callee]
            add(f"{name}-to-{callee}", f"{name} calls {callee} (appCalls)", app.selector, "egress",
                [pods(target.selector)], tcp(target.port))
            add(f"{callee}-from-{name}", f"{name} calls {callee} (appCalls)", target.selector, "ingress",
                [pods(app.selector)], tcp(target.port))
        if app.database and pgb is not None:
            add(f"{name}-to-pgbouncer", "DATABASE_URL_POOLED: application queries through PgBouncer",
                app.selector, "egress", [pods(pgb.selector)], tcp(pgb.port))
            add(f"pgbouncer-from-{name}", f"{name}'s application queries (DATABASE_URL_POOLED)",
                pgb.selector, "ingress", [pods(app.selector)], tcp(pgb.port))
            add(f"{name}-to-postgres", "DATABASE_URL: direct connections to RDS for migrations and admin tasks",
                app.selector, "egress", ip_blocks(private), tcp(args.postgres_port))
        if app.redis:
            add(f"{name}-to-redis", "REDIS_URL: ElastiCache cluster-mode nodes in the private subnets",
                app.selector, "egress", ip_blocks(private), tcp(args.redis_port))
        if app.aws_apis:
            add(f"{name}-to-aws-apis",
                "SQS and STS (IRSA) at their public regional endpoints through the NAT gateways",
                app.selector, "egress", outside(internal), tcp(HTTPS_PORT))
        if name in args.internet_https_apps:
            add(f"{name}-to-internet-https", "the LLM providers and other APIs the agents call (internetHttpsApps)",
                app.selector, "egress", outside(internal), tcp(HTTPS_PORT))
        for dest_name, dest in args.extra_egress.items():
            if name in dest.apps:
                add(f"{name}-to-{dest_name}", f"extraEgress.{dest_name}", app.selector, "egress",
                    ip_blocks(dest.cidrs), tcp(*dest.ports))
        out.extend(_observability_flows(args, name, app))
    if args.database_bootstrap is not None:
        add("database-bootstrap-to-postgres", "the Job that creates and updates the database roles (master user, TLS)",
            args.database_bootstrap, "egress", ip_blocks(private), tcp(args.postgres_port))
    if pgb is not None:
        add("pgbouncer-to-postgres", "PgBouncer's server connections to RDS (TLS verify-full)",
            pgb.selector, "egress", ip_blocks(private), tcp(args.postgres_port))
        if pgb.metrics_port is not None and args.prometheus is not None:
            add("pgbouncer-from-prometheus", "Prometheus scrapes the PgBouncer exporter",
                pgb.selector, "ingress", [pods_in(args.prometheus)], tcp(pgb.metrics_port))
    return out


class AppNetworkPolicies(pulumi.ComponentResource):
    """``default-deny`` and one NetworkPolicy per flow in the app namespace."""

    #: The NetworkPolicy objects' names, ``default-deny`` last.
    policy_names: list[str]

    def __init__(self, name: str, args: AppNetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:apps:AppNetworkPolicies", name, None, opts)
        require_valid(f"AppNetworkPolicies {name}", args)
        labels = {"app.kubernetes.io/part-of": "cofounder", "app.kubernetes.io/managed-by": "pulumi"}

        def metadata(policy: str, reason: str) -> dict:
            return {"name": policy, "namespace": args.namespace, "labels": labels,
                    "annotations": {REASON_ANNOTATION: reason}}

        flows = allowances(args)
        allowed = [k8s.networking.v1.NetworkPolicy(
            f"{name}-{a.name}", metadata=metadata(a.name, a.reason), spec=a.spec(),
            opts=pulumi.ResourceOptions(parent=self)) for a in flows]
        # Last in, first out: a running pod never meets the deny without its allowances.
        k8s.networking.v1.NetworkPolicy(
            f"{name}-{DEFAULT_DENY}",
            metadata=metadata(DEFAULT_DENY, "nothing reaches or leaves a pod of the namespace unless an "
                                            "allowance says so"),
            spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=allowed))

        self.policy_names = [*(a.name for a in flows), DEFAULT_DENY]
        self.register_outputs({"policy_names": self.policy_names})
