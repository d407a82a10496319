"""Security group rules: data ports never open to the internet, however ingress is declared."""

import pytest

from tests.policies.helpers import violations

POLICY = "security-group-no-public-database-ports"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


@pytest.mark.parametrize("type_, props", [
    (SG, {"ingress": [{"fromPort": 5432, "toPort": 5432, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}]}),
    (SG, {"ingress": [{"fromPort": 0, "toPort": 0, "protocol": "-1", "ipv6CidrBlocks": ["::/0"]}]}),
    (INGRESS, {"ipProtocol": "tcp", "fromPort": 6379, "toPort": 6379, "cidrIpv4": "0.0.0.0/0"}),
    (INGRESS, {"ipProtocol": "tcp", "fromPort": 6000, "toPort": 6500, "cidrIpv6": "::/0"}),  # covers 6379, 6432
    (RULE, {"type": "ingress", "protocol": "tcp", "fromPort": 11211, "toPort": 11211, "cidrBlocks": ["0.0.0.0/0"]}),
    (RULE, {"type": "ingress", "protocol": "6", "fromPort": 3306, "toPort": 3306, "cidrBlocks": ["0.0.0.0/0"]}),
])
def test_data_port_open_to_the_world_is_a_violation(type_, props):
    assert violations(POLICY, type_, props)


@pytest.mark.parametrize("type_, props", [
    (SG, {"ingress": [{"fromPort": 5432, "toPort": 5432, "protocol": "tcp", "cidrBlocks": ["10.30.0.0/16"]}]}),
    (SG, {"ingress": [{"fromPort": 443, "toPort": 443, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}]}),
    (SG, {"ingress": [], "egress": [{"fromPort": 0, "toPort": 0, "protocol": "-1", "cidrBlocks": ["0.0.0.0/0"]}]}),
    (INGRESS, {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "referencedSecurityGroupId": "sg-nodes"}),
    (RULE, {"type": "egress", "protocol": "-1", "fromPort": 0, "toPort": 0, "cidrBlocks": ["0.0.0.0/0"]}),
    (RULE, {"type": "ingress", "protocol": "udp", "fromPort": 5432, "toPort": 5432, "cidrBlocks": ["0.0.0.0/0"]}),
])
def test_private_or_unrelated_ingress_passes(type_, props):
    assert violations(POLICY, type_, props) == []


def test_the_port_list_is_configurable():
    props = {"ipProtocol": "tcp", "fromPort": 9200, "toPort": 9200, "cidrIpv4": "0.0.0.0/0"}
    assert violations(POLICY, INGRESS, props) == []
    assert violations(POLICY, INGRESS, props, {"ports": [9200]})
