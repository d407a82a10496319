"""The elb-* rules: internal, HTTPS where viewers connect, logs, invalid headers, deletion protection."""

import pytest

from tests.policies.helpers import resource, stack_violations, violations

LB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
GOOD_LB = {"internal": True, "loadBalancerType": "application", "dropInvalidHeaderFields": True,
           "enableDeletionProtection": True, "accessLogs": {"bucket": "logs", "prefix": "alb", "enabled": True},
           "arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/edge/1"}


@pytest.mark.parametrize("policy", ["elb-load-balancer-internal", "elb-access-logging-enabled",
                                    "elb-drop-invalid-header-fields", "elb-deletion-protection"])
def test_the_programs_alb_passes(policy):
    assert violations(policy, LB, GOOD_LB) == []


@pytest.mark.parametrize("policy, change, expected", [
    ("elb-load-balancer-internal", {"internal": False}, "internet-facing"),
    ("elb-access-logging-enabled", {"accessLogs": {"bucket": "logs", "enabled": False}}, "accessLogs"),
    ("elb-access-logging-enabled", {"accessLogs": None}, "accessLogs"),
    ("elb-drop-invalid-header-fields", {"dropInvalidHeaderFields": False}, "dropInvalidHeaderFields"),
    ("elb-deletion-protection", {"enableDeletionProtection": False}, "enableDeletionProtection"),
])
def test_a_weakened_alb_is_a_violation(policy, change, expected):
    [message] = violations(policy, LB, {**GOOD_LB, **change})
    assert expected in message


def test_config_relaxes_what_a_stack_does_not_require():
    assert violations("elb-load-balancer-internal", LB, {**GOOD_LB, "internal": False},
                      {"allowInternetFacing": True}) == []
    assert violations("elb-deletion-protection", LB, {**GOOD_LB, "enableDeletionProtection": False},
                      {"required": False}) == []


def test_network_load_balancers_are_not_held_to_alb_rules():
    nlb = {"loadBalancerType": "network", "internal": False}
    assert violations("elb-load-balancer-internal", LB, nlb) == []
    assert violations("elb-drop-invalid-header-fields", LB, nlb) == []


def _stack(lb_props: dict, listener_props: dict, by_dependency: bool = False):
    lb = resource(LB, "edge", lb_props)
    if by_dependency:
        listener = resource(LISTENER, "listener", listener_props, property_dependencies={"loadBalancerArn": [lb]})
    else:
        listener = resource(LISTENER, "listener", {**listener_props, "loadBalancerArn": lb_props["arn"]})
    return [lb, listener]


def test_an_internal_http_listener_behind_the_vpc_origin_passes():
    assert stack_violations("elb-listener-https-only", _stack(GOOD_LB, {"protocol": "HTTP", "port": 80})) == []


@pytest.mark.parametrize("by_dependency", [False, True])
def test_a_plain_http_listener_that_faces_viewers_is_a_violation(by_dependency):
    public = {**GOOD_LB, "internal": False}
    [(message, urn)] = stack_violations("elb-listener-https-only",
                                        _stack(public, {"protocol": "HTTP", "port": 80}, by_dependency))
    assert "serves plain text" in message and urn.endswith("::listener")


def test_an_https_redirect_may_listen_on_http():
    redirect = {"protocol": "HTTP", "port": 80, "defaultActions": [
        {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}]}
    assert stack_violations("elb-listener-https-only", _stack({**GOOD_LB, "internal": False}, redirect)) == []


def test_an_old_tls_policy_is_a_violation_anywhere():
    weak = {"protocol": "HTTPS", "port": 443, "sslPolicy": "ELBSecurityPolicy-2016-08"}
    [(message, _)] = stack_violations("elb-listener-https-only", _stack(GOOD_LB, weak))
    assert "ELBSecurityPolicy-2016-08" in message
    good = {**weak, "sslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06"}
    assert stack_violations("elb-listener-https-only", _stack({**GOOD_LB, "internal": False}, good)) == []


# --- cloudfront-vpc-origin-https-only --------------------------------------------------------

HTTPS_ORIGIN = "cloudfront-vpc-origin-https-only"
VPC_ORIGIN = "aws:cloudfront/vpcOrigin:VpcOrigin"
ORIGIN_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def _vpc_origin(policy: str) -> dict:
    return {"vpcOriginEndpointConfig": {"name": "edge-alb", "httpPort": 80, "httpsPort": 443,
                                        "originProtocolPolicy": policy}}


def test_an_https_only_vpc_origin_passes_and_http_is_a_violation_unless_the_stack_accepts_it():
    assert violations(HTTPS_ORIGIN, VPC_ORIGIN, _vpc_origin("https-only"), {"allowHttpOrigin": False}) == []
    for policy in ("http-only", "match-viewer"):
        [message] = violations(HTTPS_ORIGIN, VPC_ORIGIN, _vpc_origin(policy), {"allowHttpOrigin": False})
        assert f"originProtocolPolicy {policy!r}" in message
    assert violations(HTTPS_ORIGIN, VPC_ORIGIN, _vpc_origin("http-only"), {"allowHttpOrigin": True}) == []


def _https_origin_results(stack, program, path=None):
    from toolkit import policy_runner
    return [(v["enforcement"], v["urn"]) for v in policy_runner.run_policies(stack, program, config_path=path)
            if v["policy"] == HTTPS_ORIGIN]


def _prod_config(tmp_path, load_balancer: dict):
    import json

    from infra.config import parse
    from toolkit import docs
    from toolkit.stackfile import load_stack_file
    config = {**load_stack_file("prod").config, "cofounder:loadBalancer": json.dumps(load_balancer)}
    path = tmp_path / "prod.json"
    path.write_text(docs.policy_json(docs.policy_config(parse("prod", config))))
    return path


@pytest.mark.parametrize("stack, expected", [("dev", ["advisory"]), ("staging", ["advisory"]), ("prod", [])])
def test_http_to_the_alb_is_advised_in_dev_and_staging_and_accepted_by_prods_explicit_opt_out(
        stack_policies, stack, expected):
    found = [v for v in stack_policies(stack) if v["policy"] == HTTPS_ORIGIN]
    assert [v["enforcement"] for v in found] == expected
    assert all(v["urn"].endswith("::edge-lb-vpc-origin") for v in found)


def test_prod_without_the_opt_out_is_blocked(tmp_path, stack_program):
    import json

    from toolkit.stackfile import load_stack_file
    lb = json.loads(load_stack_file("prod").config["cofounder:loadBalancer"])
    assert lb["allowHttpOrigin"] is True  # what the committed file says, and all that spares it
    path = _prod_config(tmp_path, {k: v for k, v in lb.items() if k != "allowHttpOrigin"})
    assert json.loads(path.read_text())[HTTPS_ORIGIN] == {"allowHttpOrigin": False}
    [(level, urn)] = _https_origin_results("prod", stack_program("prod"), path)
    assert level == "mandatory" and urn.endswith("::edge-lb-vpc-origin")


def test_prod_with_an_origin_certificate_is_https_end_to_end_and_passes_without_the_opt_out(tmp_path, run_stack_with):
    lb = {"deletionProtection": True, "accessLogRetentionDays": 365,
          "certificateArn": ORIGIN_CERT, "originDomainName": "origin.example.com"}
    program = run_stack_with("prod", {"cofounder:loadBalancer": lb})
    origin = program.one(VPC_ORIGIN).inputs["vpcOriginEndpointConfig"]
    assert origin["originProtocolPolicy"] == "https-only"
    [listener] = program.of_type(LISTENER)
    assert (listener.inputs["protocol"], listener.inputs["port"], listener.inputs["certificateArn"]) == \
        ("HTTPS", 443, ORIGIN_CERT)
    # CloudFront checks the ALB's certificate against the name it connects to
    dist = program.one("aws:cloudfront/distribution:Distribution").inputs
    assert {o["domainName"] for o in dist["origins"] if "vpcOriginConfig" in o} == {"origin.example.com"}
    assert _https_origin_results("prod", program, _prod_config(tmp_path, lb)) == []


def test_the_opt_out_is_refused_next_to_a_certificate(run_stack_with):
    from infra.config import ConfigError
    lb = {"certificateArn": ORIGIN_CERT, "originDomainName": "origin.example.com", "allowHttpOrigin": True}
    with pytest.raises(ConfigError, match=r"cofounder:loadBalancer.allowHttpOrigin = true is not allowed: "
                                          r"expected false \(or unset\) once certificateArn is set"):
        run_stack_with("dev", {"cofounder:loadBalancer": lb})
