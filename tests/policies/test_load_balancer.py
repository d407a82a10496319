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
