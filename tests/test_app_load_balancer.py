"""components/app_load_balancer.py: an internal ALB only CloudFront can reach, its routing, health
checks, drain, logs, and the VPC origin; and the cofounder:loadBalancer settings."""

from __future__ import annotations

import json

import pytest

from components import ComponentArgsError
from components.app_load_balancer import (
    AppLoadBalancer,
    AppLoadBalancerArgs,
    LoadBalancedApp,
    vpc_origin_subnets,
)
from infra.config import ConfigError

LB = "aws:lb/loadBalancer:LoadBalancer"
TG = "aws:lb/targetGroup:TargetGroup"
LISTENER = "aws:lb/listener:Listener"
RULE = "aws:lb/listenerRule:ListenerRule"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
VPC_ORIGIN = "aws:cloudfront/vpcOrigin:VpcOrigin"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
TARGETS = {
    "backend": LoadBalancedApp(port=8080, health_check_path="/healthz/ready", deregistration_delay_seconds=60),
    "frontend": LoadBalancedApp(port=3000, health_check_path="/api/health/ready", health_check_port=3001,
                                deregistration_delay_seconds=45),
}


def _alb(run_program, **overrides):
    args = dict(vpc_id="vpc-0123", subnet_ids=["subnet-a", "subnet-b", "subnet-c"],
                subnet_zone_ids=["use1-az1", "use1-az2", "use1-az4"], cluster_security_group_id="sg-cluster",
                targets=TARGETS)
    args.update(overrides)
    return run_program(lambda: AppLoadBalancer("lb", AppLoadBalancerArgs(**args)))


def test_the_alb_is_internal_hardened_and_logged(run_program):
    p = _alb(run_program)
    lb = p.one(LB).inputs
    assert lb["internal"] is True
    assert lb["loadBalancerType"] == "application"
    assert lb["subnets"] == ["subnet-a", "subnet-b", "subnet-c"]
    assert lb["idleTimeout"] == 120
    assert lb["dropInvalidHeaderFields"] is True
    assert lb["enableDeletionProtection"] is True
    bucket = p.one("aws:s3/bucket:Bucket", "lb-logs")
    assert lb["accessLogs"] == {"bucket": bucket.outputs["bucket"], "prefix": "alb", "enabled": True}
    assert p.one("aws:s3/bucketPolicy:BucketPolicy", "lb-logs").urn in p.one(LB).options["dependsOn"]
    assert bucket.options["protect"] is True


def test_access_logs_are_written_by_the_regions_elb_account_only_over_tls(run_program):
    p = _alb(run_program, access_log_retention_days=30)
    bucket_arn = p.one("aws:s3/bucket:Bucket", "lb-logs").outputs["arn"]
    statements = json.loads(p.one("aws:s3/bucketPolicy:BucketPolicy", "lb-logs").inputs["policy"])["Statement"]
    writes = [s for s in statements if s["Effect"] == "Allow"]
    assert {json.dumps(s["Principal"]) for s in writes} == {
        json.dumps({"AWS": "arn:aws:iam::127311923021:root"}),
        json.dumps({"Service": "logdelivery.elasticloadbalancing.amazonaws.com"})}
    assert {s["Resource"] for s in writes} == {f"{bucket_arn}/alb/AWSLogs/123456789012/*"}
    assert all(s["Action"] == "s3:PutObject" for s in writes)
    assert any(s["Sid"] == "DenyInsecureTransport" for s in statements)
    (rule,) = p.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lb-logs").inputs["rules"]
    assert rule["expiration"] == {"days": 30}
    sse = p.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "lb-logs").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"  # all ALB logs take


def test_api_goes_to_the_backend_and_everything_else_to_the_frontend(run_program):
    p = _alb(run_program)
    groups = {g.inputs["tags"]["app"]: g for g in p.of_type(TG)}
    listener = p.one(LISTENER).inputs
    assert listener["protocol"] == "HTTP" and listener["port"] == 80
    assert listener["defaultActions"] == [{"type": "forward", "targetGroupArn": groups["frontend"].outputs["arn"]}]
    (rule,) = p.of_type(RULE)
    assert rule.inputs["conditions"] == [{"pathPattern": {"values": ["/api/*"]}}]
    assert rule.inputs["actions"] == [{"type": "forward", "targetGroupArn": groups["backend"].outputs["arn"]}]


def test_a_static_export_stack_routes_only_the_api(run_program):
    p = _alb(run_program, targets={"backend": TARGETS["backend"]})
    (action,) = p.one(LISTENER).inputs["defaultActions"]
    assert action["type"] == "fixed-response" and action["fixedResponse"]["statusCode"] == "404"
    assert [g.inputs["tags"]["app"] for g in p.of_type(TG)] == ["backend"]


@pytest.mark.parametrize("app, port, path, health_port, delay", [
    ("backend", 8080, "/healthz/ready", "traffic-port", 60),
    ("frontend", 3000, "/api/health/ready", "3001", 45),
])
def test_target_groups_check_readiness_and_drain_as_the_pods_do(run_program, app, port, path, health_port, delay):
    p = _alb(run_program)
    group = next(g.inputs for g in p.of_type(TG) if g.inputs["tags"]["app"] == app)
    assert (group["targetType"], group["protocol"], group["port"], group["vpcId"]) == ("ip", "HTTP", port, "vpc-0123")
    assert group["deregistrationDelay"] == delay
    assert group["loadBalancingAlgorithmType"] == "least_outstanding_requests"
    check = group["healthCheck"]
    assert (check["path"], check["port"], check["matcher"]) == (path, health_port, "200-399")
    # healthy after two 5 s checks: a burst pod takes traffic within ~10 s of registering
    assert (check["interval"], check["timeout"], check["healthyThreshold"]) == (5, 3, 2)


def test_only_cloudfront_reaches_the_alb_and_the_alb_reaches_only_the_pods(run_program):
    p = _alb(run_program)
    alb_sg = p.one("aws:ec2/securityGroup:SecurityGroup", "lb-sg").outputs["id"]
    into_alb = [r.inputs for r in p.of_type(INGRESS) if r.inputs["securityGroupId"] == alb_sg]
    assert sorted((r.get("prefixListId", ""), r.get("referencedSecurityGroupId", ""), r["fromPort"])
                  for r in into_alb) == [("", "sg-cloudfront-vpc-origins", 80), ("pl-3b927c52", "", 80)]
    assert not any("cidrIpv4" in r for r in into_alb)
    out = sorted((r.inputs["referencedSecurityGroupId"], r.inputs["fromPort"]) for r in p.of_type(EGRESS))
    assert out == [("sg-cluster", 3000), ("sg-cluster", 3001), ("sg-cluster", 8080)]
    into_pods = sorted((r.inputs["referencedSecurityGroupId"], r.inputs["fromPort"]) for r in p.of_type(INGRESS)
                       if r.inputs["securityGroupId"] == "sg-cluster")
    assert into_pods == [(alb_sg, 3000), (alb_sg, 3001), (alb_sg, 8080)]
    # the VPC origin's security group is looked up only once the VPC origin exists
    rule = p.one(INGRESS, "lb-from-vpc-origin")
    assert rule.inputs["referencedSecurityGroupId"] == "sg-cloudfront-vpc-origins"


def test_the_vpc_origin_is_the_alb(run_program):
    p = _alb(run_program)
    config = p.one(VPC_ORIGIN).inputs["vpcOriginEndpointConfig"]
    assert config["arn"] == p.one(LB).outputs["arn"]
    assert config["originProtocolPolicy"] == "http-only"
    assert (config["httpPort"], config["httpsPort"]) == (80, 443)


def test_with_a_certificate_the_hop_is_tls_only(run_program):
    p = _alb(run_program, certificate_arn=CERT, origin_domain_name="origin.example.com")
    listener = p.one(LISTENER).inputs
    assert (listener["protocol"], listener["port"], listener["certificateArn"]) == ("HTTPS", 443, CERT)
    assert listener["sslPolicy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    assert p.one(VPC_ORIGIN).inputs["vpcOriginEndpointConfig"]["originProtocolPolicy"] == "https-only"
    assert {r.inputs["fromPort"] for r in p.of_type(INGRESS) if "referencedSecurityGroupId" not in r.inputs
            or r.inputs["referencedSecurityGroupId"] == "sg-cloudfront-vpc-origins"} == {443}


def test_the_http_origin_opt_out_changes_nothing_the_alb_declares(run_program):
    """allowHttpOrigin is for the policy pack (the stack accepts HTTP inside the VPC); AWS sees no difference."""
    def declared(p):
        return sorted((r.type, r.name, repr({k: v for k, v in r.inputs.items() if k != "tags"}))
                      for r in p.resources)
    assert declared(_alb(run_program, allow_http_origin=True)) == declared(_alb(run_program))


def test_unsupported_zones_are_left_out_of_the_alb():
    assert vpc_origin_subnets(["a", "b", "c"], ["use1-az1", "use1-az3", "use1-az6"]) == ["a", "c"]
    with pytest.raises(ComponentArgsError, match="two zones that CloudFront VPC origins support"):
        vpc_origin_subnets(["a", "b"], ["use1-az3", "use1-az6"])


@pytest.mark.parametrize("overrides, message", [
    ({"certificate_arn": CERT}, "AppLoadBalancer lb: origin_domain_name = None is not allowed: expected "
                                "certificateArn and originDomainName together"),
    ({"certificate_arn": CERT, "origin_domain_name": "origin.example.com", "allow_http_origin": True},
     "AppLoadBalancer lb: allow_http_origin = True is not allowed: expected false (or unset) once certificateArn "
     "is set"),
    ({"idle_timeout_seconds": 5000}, "AppLoadBalancer lb: idle_timeout_seconds = 5000 is not allowed: expected a "
                                     "value between 1 and 4000"),
    ({"api_app": "api"}, "AppLoadBalancer lb: api_app = 'api' is not allowed: expected one of the targets: "
                         "backend, frontend"),
])
def test_bad_arguments_are_refused(run_program, overrides, message):
    with pytest.raises(ComponentArgsError) as err:
        _alb(run_program, **overrides)
    assert str(err.value).startswith(message)


def test_every_child_is_parented_named_and_tagged(run_program):
    p = _alb(run_program)
    component = p.one("cofounder:edge:AppLoadBalancer")
    for r in p.resources:
        if r is not component:
            assert r.parent == component.urn and r.name.startswith("lb-")
            if "tags" in r.inputs:
                assert r.inputs["tags"]["component"] == "edge"


# --- cofounder:loadBalancer and its neighbours -----------------------------------------------

@pytest.mark.parametrize("overrides, expected", [
    ({"cofounder:loadBalancer": {"idleTimeoutSeconds": 30}},
     "stacks/Pulumi.dev.yaml: cofounder:loadBalancer.idleTimeoutSeconds = 30 is not allowed: expected more than "
     "60 (CloudFront's longest origin read or keep-alive timeout, cofounder:edge), or the ALB closes connections "
     "CloudFront still uses"),
    ({"cofounder:loadBalancer": {"certificateArn": CERT}},
     "stacks/Pulumi.dev.yaml: cofounder:loadBalancer.originDomainName = null is not allowed: expected "
     "certificateArn and originDomainName together"),
    ({"cofounder:loadBalancer": {"apiApp": "api"}},
     "stacks/Pulumi.dev.yaml: cofounder:loadBalancer.apiApp = 'api' is not allowed: expected an app of "
     "cofounder:apps (backend, frontend, worker)"),
    ({"cofounder:loadBalancer": {"sslPolicy": "ELBSecurityPolicy-2016-08"}},
     "stacks/Pulumi.dev.yaml: cofounder:loadBalancer.sslPolicy = 'ELBSecurityPolicy-2016-08' is not allowed: "
     "expected one of ELBSecurityPolicy-TLS13-1-2-2021-06"),
])
def test_bad_load_balancer_config_fails_with_a_clear_message(run_stack_with, overrides, expected):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", overrides)
    assert str(err.value).startswith(expected)


def test_prod_protects_the_alb_and_dev_does_not(stack_program):
    assert stack_program("prod").one(LB).inputs["enableDeletionProtection"] is True
    assert stack_program("dev").one(LB).inputs["enableDeletionProtection"] is False
    assert stack_program("dev").one("aws:s3/bucket:Bucket", "edge-lb-logs").inputs["forceDestroy"] is True
