"""components/network.py: subnets, NAT topology, tags and flow logs."""

from __future__ import annotations

import ipaddress
import json

import pytest

from components.network import Network, NetworkArgs, subnet_plan

ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def _network(run_program, **overrides):
    args = NetworkArgs(availability_zones=ZONES, cluster_name="demo-eks", **overrides)
    return run_program(lambda: Network("net", args))


def test_subnet_plan_is_disjoint_and_inside_the_vpc():
    private, public = subnet_plan("10.0.0.0/16", 3)
    assert private == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    assert public == ["10.0.224.0/22", "10.0.228.0/22", "10.0.232.0/22"]
    nets = [ipaddress.IPv4Network(c) for c in private + public]
    vpc = ipaddress.IPv4Network("10.0.0.0/16")
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


def test_defaults_one_nat_per_zone_and_tagged_subnets(run_program):
    p = _network(run_program)
    assert len(p.of_type("aws:ec2/natGateway:NatGateway")) == 3
    subnets = p.of_type("aws:ec2/subnet:Subnet")
    assert sorted(s.inputs["availabilityZone"] for s in subnets) == sorted(ZONES * 2)
    for s in subnets:
        tags = s.inputs["tags"]
        assert tags["kubernetes.io/cluster/demo-eks"] == "shared"
        assert tags["component"] == "network"
        if tags["tier"] == "public":
            assert tags["kubernetes.io/role/elb"] == "1"
        else:
            assert tags["kubernetes.io/role/internal-elb"] == "1"
        assert s.inputs.get("mapPublicIpOnLaunch", False) is False
    # each private zone routes through the NAT gateway in its own zone
    nats = {n.name: n for n in p.of_type("aws:ec2/natGateway:NatGateway")}
    for zone in ZONES:
        rt = p.one("aws:ec2/routeTable:RouteTable", f"net-private-{zone}")
        assert rt.inputs["routes"][0]["natGatewayId"] == nats[f"net-nat-{zone}"].outputs["id"]


def test_single_nat_gateway_switch(run_program):
    p = _network(run_program, single_nat_gateway=True)
    nats = p.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 1
    for zone in ZONES:
        rt = p.one("aws:ec2/routeTable:RouteTable", f"net-private-{zone}")
        assert rt.inputs["routes"][0]["natGatewayId"] == nats[0].outputs["id"]


def test_flow_logs_capture_all_traffic_with_a_scoped_role(run_program):
    p = _network(run_program, flow_log_retention_days=30)
    flow = p.one("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    assert flow.inputs["logDestinationType"] == "cloud-watch-logs"
    group = p.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["retentionInDays"] == 30
    assert flow.inputs["logDestination"] == group.outputs["arn"]
    # who talked to whom: encrypted with the network's own key (created first: its ARN is an input)
    assert group.inputs["kmsKeyId"] == p.one("aws:kms/key:Key", "net-log-key").outputs["arn"]
    trust = json.loads(p.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    policy = json.loads(p.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    writes, find = policy["Statement"]
    arn = group.outputs["arn"]
    assert writes["Resource"] == [arn, f"{arn}:*"] and "logs:PutLogEvents" in writes["Action"]
    # the one read that takes no resource type (Service Authorization Reference) gets "*", alone
    assert (find["Action"], find["Resource"]) == ("logs:DescribeLogGroups", "*")


def test_default_security_group_allows_nothing(run_program):
    sg = _network(run_program).one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")


@pytest.mark.parametrize("enabled, count", [(True, 1), (False, 0)])
def test_s3_gateway_endpoint_switch(run_program, enabled, count):
    p = _network(run_program, enable_s3_gateway_endpoint=enabled)
    endpoints = p.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    assert len(endpoints) == count
    if enabled:
        assert endpoints[0].inputs["serviceName"] == "com.amazonaws.us-east-1.s3"
        assert len(endpoints[0].inputs["routeTableIds"]) == 3


def test_every_child_is_parented_and_named_after_the_component(run_program):
    p = _network(run_program)
    component = p.one("cofounder:network:Network")
    for r in p.resources:
        if r is component:
            continue
        assert r.parent == component.urn
        assert r.name.startswith("net-")


def test_bad_arguments_are_one_line_run_errors():
    """Outside the config loader too, bad arguments reach the CLI as a RunError (no traceback)."""
    import pulumi
    with pytest.raises(pulumi.RunError, match="cannot hold 8 private subnets"):
        subnet_plan("10.0.0.0/16", 8)
