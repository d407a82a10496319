"""Explicit KMS key policies: the account root administers, and each service or principal the key
serves gets its own named statement. Functions, not a component: the caller passes the policy to
its ``aws.kms.Key`` (``policy=explicit_key_policy(parent, ...)``).

Every key of the program declares its policy (the ``kms-key-explicit-policy`` rule), so who may use
a key is in the program, the review diff and the IAM check (``toolkit/iam_check.py``), not in
whatever default KMS applies. The shape:

- ``AccountAdministers``: the account root with ``kms:*``. This is KMS's own default key policy
  statement (KMS developer guide, "Default key policy", "Allows access to the AWS account and
  enables IAM policies"): without it the key can become unmanageable, and IAM policies (the EKS
  cluster role's inline policy, the deployer's permissions) have no effect on the key.
- ``UseThrough<Service>``: principals of this account may use the key only through the named
  service in the key's region (``kms:ViaService`` = ``<service>.<region>.<dns suffix>`` and
  ``kms:CallerAccount``), with the actions of AWS's own managed keys for that service (the
  ``aws/rds`` key policy: Encrypt, Decrypt, ReEncrypt*, GenerateDataKey*, CreateGrant, ListGrants,
  DescribeKey; KMS developer guide, "kms:ViaService", conditions-kms.html#conditions-kms-via-service).
- statements the caller adds (``extra``), for a principal the key serves directly.

The root statement keeps IAM in charge as well, so the service statements are what the key is
for, written down: they grant nothing an IAM policy of the account could not, and a later
narrowing of the root statement to key administration keeps those uses working.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

#: What AWS's managed ``aws/rds`` key allows through RDS; the same use serves ElastiCache and EKS.
SERVICE_USE = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant",
               "kms:ListGrants", "kms:DescribeKey")


@dataclass(frozen=True)
class KeyContext:
    """Where the key lives: what its statements name."""

    account: str
    partition: str
    region: str
    dns_suffix: str

    @property
    def root(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:root"

    def endpoint(self, service: str) -> str:
        """The service's regional name, as ``kms:ViaService`` and service principals spell it."""
        return f"{service}.{self.region}.{self.dns_suffix}"


def account_administers(ctx: KeyContext) -> dict:
    return {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": ctx.root},
            "Action": "kms:*", "Resource": "*"}


def used_through(ctx: KeyContext, service: str, sid: str, actions: Sequence[str] = SERVICE_USE) -> dict:
    """Principals of this account use the key through ``service`` in the key's region, nothing else."""
    return {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": ctx.root}, "Action": list(actions),
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": ctx.endpoint(service), "kms:CallerAccount": ctx.account}}}


def key_policy(ctx: KeyContext, *statements: dict) -> str:
    """The JSON key policy: ``AccountAdministers`` first, then ``statements``."""
    return json.dumps({"Version": "2012-10-17", "Statement": [account_administers(ctx), *statements]})


def explicit_key_policy(parent: pulumi.Resource, statements: Callable[..., Sequence[dict]], *,
                        region: str | None = None,
                        inputs: Sequence[pulumi.Input[str]] = ()) -> pulumi.Output[str]:
    """The key policy for a key of ``parent`` in ``region`` (None: the provider's):
    ``AccountAdministers``, then ``statements(ctx, *inputs)`` with ``inputs`` resolved (the ARN of a
    principal the key serves, say)."""
    invoke = pulumi.InvokeOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    partition = aws.get_partition_output(opts=invoke)
    key_region = pulumi.Output.from_input(region) if region is not None \
        else aws.get_region_output(opts=invoke).region

    def render(values: list) -> str:
        ctx = KeyContext(values[0], values[1], values[2], values[3])
        return key_policy(ctx, *statements(ctx, *values[4:]))

    return pulumi.Output.all(account, partition.partition, key_region, partition.dns_suffix, *inputs).apply(render)


def topic_key(name: str, parent: pulumi.Resource, description: str, statements: Callable[..., Sequence[dict]],
              tags: dict[str, str]) -> aws.kms.Key:
    """``<name>-topic-key``: the rotating customer-managed key of an SNS topic of ``parent``, with
    the explicit policy ``statements`` grant (the services that publish to the topic)."""
    return aws.kms.Key(
        f"{name}-topic-key",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=explicit_key_policy(parent, statements),
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
