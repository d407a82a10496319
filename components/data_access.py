"""What the data stores (Postgres, Redis) share: a rotating KMS key, a security group that
admits only given security groups on one port, a subnet group over the private subnets and a
final-snapshot name. Functions, not a
component: each creates its resources as children of the calling component.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.key_policy import explicit_key_policy, used_through

_SubnetGroup = TypeVar("_SubnetGroup", aws.rds.SubnetGroup, aws.elasticache.SubnetGroup)


def kms_key(name: str, parent: pulumi.Resource, description: str, tags: dict[str, str], *,
            service: str, protect: bool) -> aws.kms.Key:
    """A customer-managed key with yearly rotation, ``<name>-kms``, used through ``service`` (``rds``,
    ``elasticache``). ``protect`` follows the data store's: deleting the key (after its waiting
    period) makes the store's data and snapshots unreadable.

    Its policy (components/key_policy.py): the account root administers, and principals of this
    account use the key through ``service`` in its region. Both services act with the caller's
    credentials and create grants on the key for the store (RDS user guide, "AWS KMS key
    management", "Authorizing use of a customer managed key": the creator needs kms:CreateGrant and
    kms:DescribeKey, best limited with kms:ViaService; ElastiCache user guide, "At-Rest Encryption",
    "Using customer managed keys from AWS KMS")."""
    return aws.kms.Key(
        f"{name}-kms",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=explicit_key_policy(parent, lambda ctx: [
            used_through(ctx, service, f"UseThrough{service.capitalize()}")]),
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


def private_subnet_group(kind: type[_SubnetGroup], name: str, parent: pulumi.Resource, *, identifier: str,
                         subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]], tags: dict[str, str]) -> _SubnetGroup:
    """``<name>-subnets``: a data store's subnet group (``aws.rds.SubnetGroup`` or
    ``aws.elasticache.SubnetGroup``, which take the same arguments) over the private subnets."""
    return kind(f"{name}-subnets", name=identifier, description=f"{identifier}: private subnets",
                subnet_ids=subnet_ids, tags=tags, opts=pulumi.ResourceOptions(parent=parent))


def final_snapshot_identifier(name: str, parent: pulumi.Resource, identifier: str) -> pulumi.Output[str]:
    """``<identifier>-final-<8 hex>``: the snapshot taken when the store is deleted. A fixed name
    would collide with the snapshot an earlier instance of the same identifier left behind. The
    suffix (``<name>-final-snapshot-suffix``, a RandomId keyed on the identifier) is drawn anew
    when the identifier changes and when the stack is destroyed and rebuilt; a replacement that
    keeps the identifier keeps the suffix."""
    suffix = random.RandomId(
        f"{name}-final-snapshot-suffix",
        byte_length=4,
        keepers={"identifier": identifier},
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return suffix.hex.apply(lambda h: f"{identifier}-final-{h}")
