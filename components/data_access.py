"""What the data stores (Postgres, Redis) share: a rotating KMS key and a security group that
admits only given security groups on one port. Functions, not a component: each creates its
resources as children of the calling component.
"""

from __future__ import annotations

from typing import Sequence

import pulumi
import pulumi_aws as aws


def kms_key(name: str, parent: pulumi.Resource, description: str, tags: dict[str, str], *,
            protect: bool) -> aws.kms.Key:
    """A customer-managed key with yearly rotation, ``<name>-kms``. ``protect`` follows the data store's:
    deleting the key (after its waiting period) makes the store's data and snapshots unreadable."""
    return aws.kms.Key(
        f"{name}-kms",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )


def security_group_for(name: str, parent: pulumi.Resource, *, vpc_id: pulumi.Input[str], port: int,
                       sources: Sequence[pulumi.Input[str]], description: str, rule_description: str,
                       tags: dict[str, str]) -> aws.ec2.SecurityGroup:
    """``<name>-sg``: ingress on ``port`` from each source security group only, and no egress
    (a data store answers connections and opens none)."""
    child = pulumi.ResourceOptions(parent=parent)
    sg = aws.ec2.SecurityGroup(f"{name}-sg", vpc_id=vpc_id, description=description, tags=tags, opts=child)
    for i, source in enumerate(sources):
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-ingress-{i}",
            security_group_id=sg.id,
            referenced_security_group_id=source,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=rule_description,
            tags=tags,
            opts=child,
        )
    return sg
