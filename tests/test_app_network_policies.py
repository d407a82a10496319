"""components/app_network_policies.py: default deny last, one allowance per flow, each derived from
what declares the flow; and in every stack, the flows match the Services, the ALB, the monitors
and the subnets the program declares."""

from __future__ import annotations

import ipaddress
import json

import pytest

from components import ComponentArgsError
from components.app_network_policies import (
    AppNetworkPolicies,
    AppNetworkPoliciesArgs,
    AppPods,
    ExtraEgress,
    PeerPods,
    PoolerPods,
    internal_ranges,
)
from infra.config import ConfigError
from tests.conftest import STACKS
from toolkit import policy_runner

NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PRIVATE = ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"]
RFC1918 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


def _sel(app: str) -> dict:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "cofounder"}


PGBOUNCER = PoolerPods(selector={"app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/instance": "pgbouncer"},
                       port=6432, metrics_port=9127)
APPS = {
    "frontend": AppPods(selector=_sel("frontend"), port=3000, load_balancer_ports=[3000], scraped=True),
    "backend": AppPods(selector=_sel("backend"), port=8080, load_balancer_ports=[8080, 8081], scraped=True,
                       database=True, redis=True),
    "worker": AppPods(selector=_sel("worker"), port=8080, scraped=True, database=True, redis=True, aws_apis=True),
}


def _args(**overrides) -> AppNetworkPoliciesArgs:
    args = dict(namespace="cofounder", apps=APPS, pgbouncer=PGBOUNCER, private_subnet_cidrs=PRIVATE,
                vpc_cidr="10.30.0.0/16",
                prometheus=PeerPods(namespace="monitoring", selector={"app.kubernetes.io/name": "prometheus"}))
    args.update(overrides)
    return AppNetworkPoliciesArgs(**args)


def _policies(program) -> dict[str, dict]:
    return {r.inputs["metadata"]["name"]: r for r in program.of_type(NP)}


@pytest.fixture(scope="module")
def defaults():
    from toolkit import harness
    return harness.run(lambda: AppNetworkPolicies("network-policies", _args()))


def test_default_deny_closes_both_directions_and_comes_last(defaults, validate_k8s):
    policies = _policies(defaults)
    deny = policies.pop("default-deny")
    assert validate_k8s(deny)["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    # created after every allowance (and so deleted before them)
    assert set(deny.options["dependsOn"]) == {p.urn for p in policies.values()}
    for policy in policies.values():
        doc = validate_k8s(policy)
        assert doc["metadata"]["namespace"] == "cofounder" and doc["metadata"]["annotations"]["cofounder.dev/reason"]
        # an allowance isolates only the direction it opens: one rule, one policy type
        (kind,) = doc["spec"]["policyTypes"]
        assert list(doc["spec"][kind.lower()]) and len(doc["spec"][kind.lower()]) == 1
        assert policy.options.get("dependsOn", []) == []


def test_each_flow_is_one_named_allowance(defaults):
    assert set(_policies(defaults)) == {
        "default-deny", "all-to-cluster-dns",
        "frontend-from-load-balancer", "backend-from-load-balancer",
        "frontend-to-backend", "backend-from-frontend",
        "backend-to-pgbouncer", "pgbouncer-from-backend", "worker-to-pgbouncer", "pgbouncer-from-worker",
        "backend-to-postgres", "worker-to-postgres", "pgbouncer-to-postgres",
        "backend-to-redis", "worker-to-redis",
        "worker-to-aws-apis", "backend-to-internet-https", "worker-to-internet-https",
        "frontend-from-prometheus", "backend-from-prometheus", "worker-from-prometheus",
        "pgbouncer-from-prometheus"}


def _rule(policy) -> tuple[dict, dict]:
    spec = policy.inputs["spec"]
    (kind,) = spec["policyTypes"]
    (rule,) = spec[kind.lower()]
    return spec["podSelector"], rule


def test_every_pod_reaches_coredns_on_udp_and_tcp_53(defaults):
    selector, rule = _rule(_policies(defaults)["all-to-cluster-dns"])
    assert selector == {}
    assert rule["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    assert rule["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def test_the_load_balancer_reaches_the_app_and_probe_ports_from_the_private_subnets(defaults):
    selector, rule = _rule(_policies(defaults)["backend-from-load-balancer"])
    assert selector == {"matchLabels": _sel("backend")}
    assert rule["from"] == [{"ipBlock": {"cidr": c}} for c in PRIVATE]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 8081}]
    assert "worker-from-load-balancer" not in _policies(defaults)


def test_calls_between_pods_name_the_callees_selector_and_container_port(defaults):
    policies = _policies(defaults)
    selector, rule = _rule(policies["frontend-to-backend"])
    assert selector == {"matchLabels": _sel("frontend")}
    # the Service's own selector: EKS's controller then also admits the backend Service's ClusterIP
    assert rule["to"] == [{"podSelector": {"matchLabels": _sel("backend")}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    selector, rule = _rule(policies["backend-from-frontend"])
    assert selector == {"matchLabels": _sel("backend")} and rule["from"] == [{"podSelector": {"matchLabels": _sel("frontend")}}]
    selector, rule = _rule(policies["pgbouncer-from-worker"])
    assert selector == {"matchLabels": PGBOUNCER.selector} and rule["ports"] == [{"protocol": "TCP", "port": 6432}]
    _, rule = _rule(policies["worker-to-pgbouncer"])
    assert rule["to"] == [{"podSelector": {"matchLabels": PGBOUNCER.selector}}]


def test_managed_services_are_reached_in_the_private_subnets_on_their_ports(defaults):
    policies = _policies(defaults)
    for name, port in (("pgbouncer-to-postgres", 5432), ("backend-to-postgres", 5432), ("worker-to-redis", 6379)):
        _, rule = _rule(policies[name])
        assert rule["to"] == [{"ipBlock": {"cidr": c}} for c in PRIVATE] and rule["ports"] == [
            {"protocol": "TCP", "port": port}], name


def test_https_outside_the_private_ranges_only_for_the_apps_that_need_it(defaults):
    policies = _policies(defaults)
    for name in ("worker-to-aws-apis", "backend-to-internet-https", "worker-to-internet-https"):
        _, rule = _rule(policies[name])
        assert rule == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": RFC1918}}],
                        "ports": [{"protocol": "TCP", "port": 443}]}
    assert "frontend-to-internet-https" not in policies and "backend-to-aws-apis" not in policies
    # a VPC outside RFC 1918 is still inside
    assert internal_ranges("100.64.0.0/16") == [*RFC1918, "100.64.0.0/16"]
    assert internal_ranges("192.168.0.0/16") == RFC1918


def test_prometheus_scrapes_the_ports_its_monitors_name(defaults):
    policies = _policies(defaults)
    selector, rule = _rule(policies["pgbouncer-from-prometheus"])
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                             "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9127}]
    assert _rule(policies["frontend-from-prometheus"])[1]["ports"] == [{"protocol": "TCP", "port": 3000}]


def test_without_prometheus_or_exporter_nothing_is_admitted_to_scrape(run_program):
    program = run_program(lambda: AppNetworkPolicies("np", _args(prometheus=None)))
    assert not [n for n in _policies(program) if n.endswith("-from-prometheus")]
    pooler = PoolerPods(selector=PGBOUNCER.selector, port=6432)
    program = run_program(lambda: AppNetworkPolicies("np", _args(pgbouncer=pooler)))
    assert "pgbouncer-from-prometheus" not in _policies(program) and "backend-from-prometheus" in _policies(program)


def test_extra_egress_is_one_allowance_per_app(run_program, validate_k8s):
    extra = {"partner-api": ExtraEgress(apps=["backend", "worker"], cidrs=["192.0.2.0/24"], ports=[8443, 443])}
    policies = _policies(run_program(lambda: AppNetworkPolicies("np", _args(extra_egress=extra))))
    for app in ("backend", "worker"):
        doc = validate_k8s(policies[f"{app}-to-partner-api"])
        assert doc["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24"}}],
                                          "ports": [{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 8443}]}]


@pytest.mark.parametrize("overrides, expected", [
    ({"internet_https_apps": ["fronted"]}, "internet_https_apps[0] = 'fronted' is not allowed: expected an app of"),
    ({"app_calls": {"frontend": ["api"]}}, "app_calls.frontend[0] = 'api' is not allowed"),
    ({"app_calls": {"backend": ["backend"]}}, "app_calls.backend = ['backend'] is not allowed"),
    ({"pgbouncer": None}, "pgbouncer = None is not allowed: expected the PgBouncer pods"),
    ({"extra_egress": {"redis": ExtraEgress(apps=["worker"], cidrs=["192.0.2.0/24"], ports=[6379])}},
     "extra_egress.redis = 'redis' is not allowed: expected a name other than"),
    ({"extra_egress": {"x": ExtraEgress(apps=["worker"], cidrs=["192.0.2.0/33"], ports=[1])}},
     "extra_egress.x.cidrs[0] = '192.0.2.0/33' is not allowed"),
])
def test_bad_arguments_fail_before_anything_is_declared(run_program, overrides, expected):
    with pytest.raises(ComponentArgsError, match=expected.replace("[", r"\[").replace("(", r"\(")):
        run_program(lambda: AppNetworkPolicies("np", _args(**overrides)))


# --- the whole program, per stack -----------------------------------------------------------------


def _app_namespace_policies(program) -> dict:
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in program.of_type(NP)
            if r.inputs["metadata"]["namespace"] == program.outputs["appNamespace"]}


def _services(program) -> dict:
    ns = program.outputs["appNamespace"]
    return {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in program.of_type("kubernetes:core/v1:Service")
            if r.inputs["metadata"]["namespace"] == ns}


def _container_port(program, selector: dict, port_name: str) -> int:
    ns = program.outputs["appNamespace"]
    for d in program.of_type("kubernetes:apps/v1:Deployment"):
        labels = d.inputs["spec"]["template"]["metadata"]["labels"]
        if d.inputs["metadata"]["namespace"] == ns and all(labels.get(k) == v for k, v in selector.items()):
            for c in d.inputs["spec"]["template"]["spec"]["containers"]:
                for p in c.get("ports", []):
                    if p["name"] == port_name:
                        return p["containerPort"]
    raise AssertionError(f"no container port {port_name} for {selector}")


@pytest.mark.parametrize("stack", STACKS)
def test_every_egress_peer_in_the_namespace_is_a_service_on_its_target_port(stack_program, stack):
    """EKS's controller admits a Service's ClusterIP only for a peer whose podSelector matches the
    Service's selector and a port that maps onto one of its ports."""
    program = stack_program(stack)
    services = _services(program)
    found = 0
    for name, spec in _app_namespace_policies(program).items():
        for rule in spec.get("egress", []):
            for peer in rule["to"]:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    match = peer["podSelector"]["matchLabels"]
                    service = next((s for s in services.values() if s["selector"] == match), None)
                    assert service is not None, (name, match)
                    targets = {_container_port(program, match, p["targetPort"]) for p in service["ports"]}
                    assert {p["port"] for p in rule["ports"]} <= targets, name
                    found += 1
    assert found >= 3  # frontend to backend, backend and worker to PgBouncer


@pytest.mark.parametrize("stack", STACKS)
def test_the_flows_match_what_the_program_declares(stack_program, stack, validate_k8s):
    program = stack_program(stack)
    policies = _app_namespace_policies(program)
    for r in program.of_type(NP):
        validate_k8s(r)
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    private = sorted(s.inputs["cidrBlock"] for s in program.of_type("aws:ec2/subnet:Subnet")
                     if s.inputs["tags"]["tier"] == "private")
    vpc = ipaddress.IPv4Network(program.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"])
    assert all(ipaddress.IPv4Network(c).subnet_of(vpc) for c in private)
    # the ALB's targets: each bound Service's pods admit the target group's port and health check
    services = _services(program)
    groups = {tg.name.removeprefix("edge-lb-"): tg.inputs for tg in program.of_type("aws:lb/targetGroup:TargetGroup")}
    bindings = program.of_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert bindings
    for binding in bindings:
        app = binding.inputs["spec"]["serviceRef"]["name"]
        spec = policies[f"{app}-from-load-balancer"]
        assert spec["podSelector"]["matchLabels"] == services[app]["selector"]
        (rule,) = spec["ingress"]
        assert sorted(p["ipBlock"]["cidr"] for p in rule["from"]) == private
        check = groups[app]["healthCheck"]["port"]
        wanted = {groups[app]["port"]} | ({int(check)} if check != "traffic-port" else set())
        assert {p["port"] for p in rule["ports"]} == wanted
    # PgBouncer admits exactly the apps that get DATABASE_URL_POOLED, and reaches RDS's port
    db_port = program.one("aws:rds/instance:Instance").inputs["port"]
    (rule,) = policies["pgbouncer-to-postgres"]["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": db_port}]
    with_db = {d.inputs["metadata"]["name"] for d in program.of_type("kubernetes:apps/v1:Deployment")
               if any(src.get("secretRef", {}).get("name", "").endswith("-database")
                      for c in d.inputs["spec"]["template"]["spec"]["containers"] for src in c.get("envFrom", []))}
    assert with_db and {n.removeprefix("pgbouncer-from-") for n in policies if n.startswith("pgbouncer-from-")} \
        == with_db | {"prometheus"}
    # the database bootstrap Job reaches RDS on its port, and nothing else leaves its pods but DNS
    job = program.one("kubernetes:batch/v1:Job")
    bootstrap = policies["database-bootstrap-to-postgres"]
    assert bootstrap["podSelector"]["matchLabels"] == job.inputs["spec"]["template"]["metadata"]["labels"]
    (rule,) = bootstrap["egress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": db_port}]
    assert sorted(p["ipBlock"]["cidr"] for p in rule["to"]) == private
    assert [n for n in policies if n.startswith("database-bootstrap")] == ["database-bootstrap-to-postgres"]
    # Prometheus is admitted from the namespace it is installed in, on the port each monitor scrapes
    release = next(r for r in program.of_type("kubernetes:helm.sh/v3:Release")
                   if r.inputs["chart"] == "kube-prometheus-stack")
    monitors = [m.inputs["spec"] for m in program.resources if m.type.startswith("kubernetes:monitoring.coreos.com")
                and m.inputs["kind"] in ("ServiceMonitor", "PodMonitor")
                and m.inputs["spec"]["namespaceSelector"]["matchNames"] == [program.outputs["appNamespace"]]]
    assert len(monitors) == 4
    for monitor in monitors:
        selector = monitor["selector"]["matchLabels"]
        (endpoint,) = monitor.get("endpoints") or monitor["podMetricsEndpoints"]
        name = "pgbouncer" if selector["app.kubernetes.io/name"] == "pgbouncer" else selector["app.kubernetes.io/name"]
        (rule,) = policies[f"{name}-from-prometheus"]["ingress"]
        assert rule["from"][0]["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": release.inputs["namespace"]}
        pods = policies[f"{name}-from-prometheus"]["podSelector"]["matchLabels"]
        assert rule["ports"] == [{"protocol": "TCP", "port": _container_port(program, pods, endpoint["port"])}]


def test_the_vpc_cni_enforces_the_policies(stack_program):
    for stack in STACKS:
        addon = next(a for a in stack_program(stack).of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni")
        assert json.loads(addon.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


@pytest.mark.parametrize("stack, level", [("prod", "mandatory"), ("dev", "advisory")])
def test_switched_off_the_namespace_is_open_and_the_pack_blocks_prod(run_stack_with, stack, level):
    program = run_stack_with(stack, {"cofounder:networkPolicies": {"enabled": False}})
    # the app namespace has none; the collector's namespace keeps its own (OtelCollector)
    assert {r.inputs["metadata"]["namespace"] for r in program.of_type(NP)} == {"tracing"}
    found = [(v["policy"], v["enforcement"]) for v in policy_runner.run_policies(stack, program)
             if v["policy"] == "k8s-namespace-default-deny"]
    assert found == [("k8s-namespace-default-deny", level)]


def test_a_flow_naming_an_undeclared_app_is_a_config_error(run_stack_with):
    with pytest.raises(ConfigError, match=r"stacks/Pulumi.dev.yaml: cofounder:networkPolicies.internetHttpsApps\[1\] "
                                          r"= 'wroker' is not allowed: expected names of apps in cofounder:apps"):
        run_stack_with("dev", {"cofounder:networkPolicies": {"internetHttpsApps": ["backend", "wroker"]}})


def test_an_extra_destination_from_the_stack_file_becomes_its_allowance(run_stack_with):
    program = run_stack_with("dev", {"cofounder:networkPolicies": {"extraEgress": {
        "partner-api": {"apps": ["worker"], "cidrs": ["10.99.0.0/24"], "ports": [4317]}}}})
    spec = _app_namespace_policies(program)["worker-to-partner-api"]
    assert spec["egress"] == [{"to": [{"ipBlock": {"cidr": "10.99.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 4317}]}]


def test_a_call_or_destination_naming_an_undeclared_app_is_a_config_error_at_its_key(run_stack_with):
    with pytest.raises(ConfigError, match=r"cofounder:networkPolicies\.appCalls\.frontend\[0\] = 'backnd' is not "
                                          r"allowed: expected names of apps in cofounder:apps"):
        run_stack_with("dev", {"cofounder:networkPolicies": {"appCalls": {"frontend": ["backnd"]}}})
    with pytest.raises(ConfigError, match=r"cofounder:networkPolicies\.extraEgress\.my-api\.apps\[0\] = 'wrkr'"):
        run_stack_with("dev", {"cofounder:networkPolicies": {"extraEgress": {
            "my-api": {"apps": ["wrkr"], "cidrs": ["203.0.113.0/24"], "ports": [443]}}}})
