"""IrsaRole: an IAM role that exactly one Kubernetes service account can assume (IRSA).

Every in-cluster AWS client in this project (Cluster Autoscaler, EBS CSI driver, the agent
worker, KEDA) gets its AWS permissions through one of these: the trust policy admits only the
cluster's OIDC provider, only the audience ``sts.amazonaws.com`` and only
``system:serviceaccount:<namespace>:<service_account>``; the permissions are one inline,
least-privilege policy document supplied by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True, kw_only=True)
class IrsaRoleArgs:
    """Inputs of IrsaRole."""

    #: ARN of the cluster's IAM OIDC provider.
    oidc_provider_arn: pulumi.Input[str]
    #: The cluster's OIDC issuer URL (with or without ``https://``).
    oidc_issuer_url: pulumi.Input[str]
    namespace: str
    service_account: str
    #: JSON IAM policy document with the permissions, or None for a role with managed policies only.
    policy_json: pulumi.Input[str] | None = None
    #: AWS-managed policies to attach (for add-ons whose policy AWS maintains, such as the EBS CSI driver).
    managed_policy_arns: Sequence[str] = ()
    tags: dict[str, str] = field(default_factory=dict)


def trust_policy(oidc_provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> str:
    issuer = issuer_url.removeprefix("https://")
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                f"{issuer}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                f"{issuer}:aud": "sts.amazonaws.com",
            }},
        }],
    })


class IrsaRole(pulumi.ComponentResource):
    """An IAM role for one Kubernetes service account; annotate the account with ``role_arn``."""

    role_arn: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(self, name: str, args: IrsaRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:identity:IrsaRole", name, None, opts)
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer_url).apply(
                lambda v: trust_policy(v[0], v[1], args.namespace, args.service_account)),
            tags={**args.tags, "component": "irsa",
                  "kubernetes-service-account": f"{args.namespace}/{args.service_account}"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.policy_json is not None:
            aws.iam.RolePolicy(f"{name}-policy", role=role.id, policy=args.policy_json,
                               opts=pulumi.ResourceOptions(parent=self))
        for i, arn in enumerate(args.managed_policy_arns):
            aws.iam.RolePolicyAttachment(f"{name}-managed-{i}", role=role.name, policy_arn=arn,
                                         opts=pulumi.ResourceOptions(parent=self))
        self.role_arn = role.arn
        self.role_name = role.name
        self.register_outputs({"role_arn": self.role_arn})
