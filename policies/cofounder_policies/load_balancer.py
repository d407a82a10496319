"""Elastic Load Balancing: the application load balancers and their listeners.

The program's ALB is internal and reached only through CloudFront's VPC origin; these rules
keep it that way and keep the protections AWS Foundational Security Best Practices asks of
every ALB (ELB.4 drop invalid headers, ELB.5 access logs, ELB.6 deletion protection).
"""

from __future__ import annotations

from cofounder_policies.rules import MANDATORY, get, of_type, resource_rule, stack_rule
from cofounder_policies.settings import setting

LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
VPC_ORIGIN = "aws:cloudfront/vpcOrigin:VpcOrigin"
#: TLS policies with TLS 1.3 and 1.2 only (Elastic Load Balancing, "Security policies").
TLS_POLICIES = ["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"]
REQUIRED = {"required": {"type": "boolean", "default": True,
                         "description": "Whether this stack requires the setting (false outside prod)"}}


def _application(props) -> bool:
    return get(props, "loadBalancerType", "application") == "application"


def _internal(props, settings):
    if _application(props) and get(props, "internal") is not True and not settings["allowInternetFacing"]:
        yield "the load balancer is internet-facing (internal is not true)"


def _access_logs(props, settings):
    if _application(props) and not (get(props, "accessLogs.enabled") is True and get(props, "accessLogs.bucket")):
        yield "accessLogs is not enabled with a bucket"


def _drop_invalid_headers(props, settings):
    if _application(props) and get(props, "dropInvalidHeaderFields") is not True:
        yield "dropInvalidHeaderFields is not true"


def _deletion_protection(props, settings):
    if settings["required"] and get(props, "enableDeletionProtection") is not True:
        yield "enableDeletionProtection is not true and this stack requires it"


def _load_balancer_of(listener, by_arn: dict, by_urn: dict):
    """The listener's load balancer: by ARN, or (in a preview, ARN unknown) by property dependency."""
    for dependency in (listener.property_dependencies or {}).get("loadBalancerArn", []):
        if dependency.urn in by_urn:
            return by_urn[dependency.urn]
    return by_arn.get(get(listener.props, "loadBalancerArn"))


def _listeners_https(resources, settings):
    balancers = of_type(resources, *LOAD_BALANCERS)
    by_arn = {get(b.props, "arn"): b for b in balancers if get(b.props, "arn")}
    by_urn = {b.urn: b for b in balancers}
    allowed = list(settings["sslPolicies"])
    for listener in of_type(resources, *LISTENERS):
        protocol, policy = get(listener.props, "protocol"), get(listener.props, "sslPolicy")
        if protocol in ("HTTPS", "TLS") and policy not in allowed:
            yield f"the {protocol} listener uses ssl policy {policy!r}, not one of {', '.join(allowed)}", listener.urn
            continue
        balancer = _load_balancer_of(listener, by_arn, by_urn)
        faces_viewers = balancer is not None and get(balancer.props, "internal") is not True
        if faces_viewers and protocol not in ("HTTPS", "TLS") and not _redirects_to_https(listener.props):
            yield (f"the {protocol} listener of an internet-facing load balancer serves plain text "
                   f"(only an HTTPS redirect may listen on HTTP)"), listener.urn


def _vpc_origin_https(props, settings):
    policy = get(props, "vpcOriginEndpointConfig.originProtocolPolicy")
    if policy != "https-only" and not settings["allowHttpOrigin"]:
        yield (f"the VPC origin connects to the load balancer with originProtocolPolicy {policy!r}: requests, "
               f"cookies and session tokens cross the VPC unencrypted")


def _redirects_to_https(props) -> bool:
    actions = list(get(props, "defaultActions", []))
    return bool(actions) and all(get(a, "type") == "redirect" and get(a, "redirect.protocol") == "HTTPS"
                                 for a in actions)


POLICIES = [
    resource_rule(
        "elb-load-balancer-internal",
        "The app load balancer has no public address: CloudFront reaches it through its VPC "
        "origin, so WAF and the edge cannot be bypassed. Fix: internal=true in the private "
        "subnets (components/app_load_balancer.py); a stack that really needs an internet-facing "
        "ALB sets allowInternetFacing in its policy config and must restrict it to CloudFront.",
        MANDATORY, LOAD_BALANCERS, _internal,
        config={"allowInternetFacing": {"type": "boolean", "default": False,
                                        "description": "Allow internet-facing application load balancers"}}),
    stack_rule(
        "elb-listener-https-only",
        "Listeners that face viewers serve TLS only, and every TLS listener negotiates TLS 1.3 "
        "or 1.2 only. Fix: protocol HTTPS with a certificate and an sslPolicy from the allowed "
        "list (cofounder:loadBalancer.sslPolicy); an internet-facing ALB may keep HTTP only for a "
        "redirect to HTTPS.",
        MANDATORY, _listeners_https,
        config={"sslPolicies": {"type": "array", "items": {"type": "string"}, "default": TLS_POLICIES,
                                "description": "TLS policies allowed on HTTPS listeners"}}),
    resource_rule(
        "cloudfront-vpc-origin-https-only",
        "CloudFront reaches the ALB over TLS too, so every hop of a request is encrypted (the aim of AWS "
        "FSBP CloudFront.9, encrypt traffic to custom origins, applied to the VPC origin). Fix: "
        "a regional ACM certificate for a name that resolves to the ALB, then cofounder:loadBalancer."
        "certificateArn and originDomainName (the listener becomes HTTPS, the VPC origin https-only; "
        "docs/front-door.md). A stack that runs HTTP inside the VPC meanwhile says so with "
        "cofounder:loadBalancer.allowHttpOrigin: true, which the stack's pack config carries (make docs).",
        MANDATORY, [VPC_ORIGIN], _vpc_origin_https,
        config={"allowHttpOrigin": setting("loadBalancer.allowHttpOrigin")}),
    resource_rule(
        "elb-access-logging-enabled",
        "Access logs are the record of every request that reached the apps (AWS FSBP ELB.5). "
        "Fix: accessLogs {bucket, enabled: true} to a bucket the region's ELB account may write.",
        MANDATORY, LOAD_BALANCERS, _access_logs),
    resource_rule(
        "elb-drop-invalid-header-fields",
        "Requests with malformed headers are dropped instead of forwarded, closing a class of "
        "request-smuggling attacks (AWS FSBP ELB.4). Fix: dropInvalidHeaderFields=true.",
        MANDATORY, LOAD_BALANCERS, _drop_invalid_headers),
    resource_rule(
        "elb-deletion-protection",
        "Where the stack requires it (prod), the load balancer every request passes cannot be "
        "deleted by a bad change (AWS FSBP ELB.6). Fix: cofounder:loadBalancer.deletionProtection "
        "true (enableDeletionProtection).",
        MANDATORY, LOAD_BALANCERS, _deletion_protection, config=REQUIRED),
]
