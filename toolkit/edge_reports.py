"""The ``request-path`` report: where each kind of browser request goes, hop by hop.

Followed through the captured resources, not restated from config: CloudFront behaviour (in
the order CloudFront matches them) -> its cache policy -> its origin -> for a VPC origin, the
ALB it names -> the listener rule that matches -> the target group -> the TargetGroupBinding
that fills it -> the Service -> the Deployment and its autoscaler's bounds.
"""

from __future__ import annotations

from typing import Any

from toolkit.harness import Program, reveal

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
VPC_ORIGIN = "aws:cloudfront/vpcOrigin:VpcOrigin"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
BINDING = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
AUTOSCALERS = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:keda.sh/v1alpha1:ScaledObject")
#: Managed cache policy ids (CloudFront developer guide, "Use managed cache policies").
MANAGED_CACHE_POLICIES = {"4135ea2d-6df8-44a3-9df3-4b5a84be39ad": "never (CachingDisabled)"}


def _by(program: Program, type_: str, key: str) -> dict[Any, dict]:
    return {r.outputs.get(key): reveal(r.inputs) | {"_outputs": r.outputs, "_name": r.name}
            for r in program.of_type(type_)}


def _seconds(value: int) -> str:
    for unit, size in (("y", 31_536_000), ("d", 86_400), ("h", 3600), ("min", 60)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} s"


def _edge_cache(policy_id: str, policies: dict, app_decides: bool) -> str:
    """What the edge keeps: the bucket sends no Cache-Control (the default TTL applies); an app
    may send one, bounded by the policy's minimum and maximum."""
    if policy_id in MANAGED_CACHE_POLICIES:
        return MANAGED_CACHE_POLICIES[policy_id]
    policy = policies.get(policy_id)
    if policy is None:
        return policy_id
    low, default, high = policy.get("minTtl", 0), policy.get("defaultTtl", 0), policy.get("maxTtl", 0)
    if not app_decides or low == default == high:
        return _seconds(default)
    return f"{_seconds(default)}, or the app's Cache-Control {_seconds(low) if low else '0'}..{_seconds(high)}"


class _Cluster:
    """From a target group ARN to the pods the ALB sends its requests to."""

    def __init__(self, program: Program):
        self.groups = _by(program, TARGET_GROUP, "arn")
        self.bindings = {b["spec"]["targetGroupARN"]: b for b in
                         (reveal(r.inputs) for r in program.of_type(BINDING))}
        self.services = {(reveal(s.inputs)["metadata"].get("namespace"), s.outputs["metadata"]["name"]):
                         reveal(s.inputs) for s in program.of_type(SERVICE)}
        self.deployments = [(d.outputs["metadata"]["name"], reveal(d.inputs)) for d in program.of_type(DEPLOYMENT)]
        self.bounds = {}
        for type_ in AUTOSCALERS:
            for r in program.of_type(type_):
                spec = reveal(r.inputs)["spec"]
                self.bounds[spec["scaleTargetRef"]["name"]] = (spec.get("minReplicas", spec.get("minReplicaCount")),
                                                               spec.get("maxReplicas", spec.get("maxReplicaCount")))

    def hops(self, target_group_arn: str) -> dict:
        group = self.groups.get(target_group_arn, {})
        binding = self.bindings.get(target_group_arn)
        out = {"target group": f"{group.get('tags', {}).get('app', '?')} ({group.get('targetType')}, "
                               f"drain {group.get('deregistrationDelay')} s)",
               "service": "no TargetGroupBinding", "pods": "-"}
        if binding is None:
            return out
        namespace, name = binding["metadata"].get("namespace"), binding["spec"]["serviceRef"]["name"]
        service = self.services.get((namespace, name))
        out["service"] = f"{namespace}/{name}:{binding['spec']['serviceRef']['port']}"
        if service is None:
            out["service"] += " (not declared)"
            return out
        selector = service["spec"].get("selector", {})
        pods = [dep_name for dep_name, dep in self.deployments
                if dep["metadata"].get("namespace") == namespace
                and selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()]
        out["pods"] = ", ".join(f"{p} ({'..'.join(map(str, self.bounds.get(p, ('?', '?'))))} replicas)"
                                for p in pods) or "no Deployment selected"
        return out


def _alb_routes(program: Program, lb_arn: str) -> tuple[str | None, list[tuple[list[str], str]]]:
    """The listener's default target group and its (path patterns, target group) rules."""
    listeners = [(r.outputs["arn"], reveal(r.inputs)) for r in program.of_type(LISTENER)
                 if r.inputs.get("loadBalancerArn") == lb_arn]
    default, rules = None, []
    for arn, listener in listeners:
        for action in listener.get("defaultActions", []):
            if action.get("type") == "forward":
                default = action.get("targetGroupArn")
        for rule in sorted((reveal(r.inputs) for r in program.of_type(LISTENER_RULE)
                            if r.inputs.get("listenerArn") == arn), key=lambda r: r.get("priority", 0)):
            patterns = [v for c in rule.get("conditions", []) for v in c.get("pathPattern", {}).get("values", [])]
            forwards = [a["targetGroupArn"] for a in rule.get("actions", []) if a.get("type") == "forward"]
            if forwards:
                rules.append((patterns, forwards[0]))
    return default, rules


def _matching_rule(path: str, default: str | None, rules: list) -> tuple[str, str | None]:
    """The ALB rule a CloudFront path pattern's requests hit (``api/*`` matches ``/api/*``)."""
    for patterns, group in rules:
        if "/" + path in patterns:
            return " ".join(patterns), group
    return "default action", default


def request_path(program: Program) -> dict | None:
    distributions = program.of_type(DISTRIBUTION)
    if not distributions:
        return None
    dist = reveal(distributions[0].inputs)
    policies = {r.outputs["id"]: reveal(r.inputs) for r in program.of_type(CACHE_POLICY)}
    vpc_origins = {r.outputs["id"]: reveal(r.inputs) for r in program.of_type(VPC_ORIGIN)}
    balancers = _by(program, LOAD_BALANCER, "arn")
    origins = {o["originId"]: o for o in dist.get("origins", [])}
    cluster = _Cluster(program)
    behaviors = [(b["pathPattern"], b) for b in dist.get("orderedCacheBehaviors", [])]
    behaviors.append(("* (default)", dist["defaultCacheBehavior"]))
    rows = []
    for path, behavior in behaviors:
        origin = origins.get(behavior["targetOriginId"], {})
        vpc = origin.get("vpcOriginConfig")
        row = {"viewer path": path,
               "edge cache": _edge_cache(behavior.get("cachePolicyId", ""), policies, vpc is not None),
               "origin": behavior["targetOriginId"]}
        if vpc is None:
            row |= {"origin": f"S3 {origin.get('domainName', '?').split('.s3.')[0]} (OAC)", "alb rule": "-",
                    "target group": "-", "service": "-", "pods": "-"}
            rows.append(row)
            continue
        endpoint = vpc_origins.get(vpc.get("vpcOriginId"), {}).get("vpcOriginEndpointConfig", {})
        lb = balancers.get(endpoint.get("arn"), {})
        scheme = "internal" if lb.get("internal") else "INTERNET-FACING"
        row["origin"] = (f"VPC origin -> {scheme} ALB {lb.get('_name', '?')} "
                         f"({endpoint.get('originProtocolPolicy')}, read timeout {vpc.get('originReadTimeout')} s)")
        default, rules = _alb_routes(program, endpoint.get("arn"))
        rule, group = _matching_rule(path.split(" ")[0], default, rules)
        row["alb rule"] = rule
        row |= cluster.hops(group) if group else {"target group": "fixed response", "service": "-", "pods": "-"}
        rows.append(row)
    url = program.outputs.get("url")
    notes = [
        "CloudFront tries the behaviours top to bottom and takes the first path pattern that matches.",
        f"Public URL: {url}" if url else "No public URL output.",
        "Declared desired state: the route a request would take once deployed, not a probe of the cloud.",
    ]
    ok = all(r["service"] not in ("no TargetGroupBinding",) and "not declared" not in r["service"]
             and "INTERNET-FACING" not in r["origin"] for r in rows)
    return {"title": "Request path (viewer -> CloudFront -> origin -> Service -> pods)", "key": ["viewer path"],
            "rows": rows,
            "notes": notes, "ok": ok}
