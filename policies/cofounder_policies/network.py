"""Security groups: database and cache ports are never open to the internet.

Ingress can be declared three ways in pulumi-aws 7 and each is checked: inline ``ingress`` on
``aws:ec2/securityGroup:SecurityGroup``, ``aws:vpc/securityGroupIngressRule`` (one CIDR per
rule) and the older ``aws:ec2/securityGroupRule`` with ``type: ingress``.
"""

from __future__ import annotations

from cofounder_policies.rules import MANDATORY, get, items, resource_rule

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
WORLD = {"0.0.0.0/0", "::/0"}
ALL_PROTOCOLS = {"-1", "all"}


def _exposed(from_port, to_port, protocol, cidrs, ports) -> list[str]:
    open_to = sorted(set(cidrs) & WORLD)
    if not open_to:
        return []
    if str(protocol) in ALL_PROTOCOLS:
        hit = list(ports)
    elif str(protocol).lower() in ("tcp", "6"):
        lo, hi = int(from_port or 0), int(to_port if to_port is not None else from_port or 0)
        hit = [p for p in ports if lo <= p <= hi]
    else:
        hit = []
    return [f"port {p} is open to {', '.join(open_to)}" for p in hit]


def _no_public_data_ports(props, settings):
    ports = [int(p) for p in settings["ports"]]
    if "ingress" in props:  # SecurityGroup with inline rules
        for rule in items(get(props, "ingress")):
            cidrs = items(get(rule, "cidrBlocks")) + items(get(rule, "ipv6CidrBlocks"))
            yield from _exposed(get(rule, "fromPort"), get(rule, "toPort"), get(rule, "protocol"), cidrs, ports)
    elif "ipProtocol" in props:  # vpc.SecurityGroupIngressRule
        cidrs = [c for c in (get(props, "cidrIpv4"), get(props, "cidrIpv6")) if c]
        yield from _exposed(get(props, "fromPort"), get(props, "toPort"), get(props, "ipProtocol"), cidrs, ports)
    elif get(props, "type") == "ingress":  # ec2.SecurityGroupRule
        cidrs = items(get(props, "cidrBlocks")) + items(get(props, "ipv6CidrBlocks"))
        yield from _exposed(get(props, "fromPort"), get(props, "toPort"), get(props, "protocol"), cidrs, ports)


POLICIES = [
    resource_rule(
        "security-group-no-public-database-ports",
        "PostgreSQL, PgBouncer, Redis, MySQL and Memcached ports must never accept traffic from "
        "0.0.0.0/0 or ::/0. Fix: allow the port only from the EKS node/cluster security group "
        "(referencedSecurityGroupId / sourceSecurityGroupId) or the VPC CIDR.",
        MANDATORY, [SECURITY_GROUP, INGRESS_RULE, GROUP_RULE], _no_public_data_ports,
        config={"ports": {"type": "array", "items": {"type": "integer"},
                          "default": [5432, 6432, 6379, 3306, 11211],
                          "description": "Ports that must never be open to the internet"}}),
]
