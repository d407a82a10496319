"""ClusterAutoscaler: adds nodes when pods are Pending and removes nodes that stay unneeded.

Installs the official chart (https://kubernetes.github.io/autoscaler, pinned, with the image
built for the cluster's Kubernetes minor) into kube-system on the system nodes, with auto-
discovery of the node groups by their ``k8s.io/cluster-autoscaler/*`` tags and an IRSA role.
The role may describe anything (the autoscaler must read every group, launch template and
instance type), but it may only resize or terminate Auto Scaling groups that carry this
cluster's ownership tag, which EKS puts on the groups of its managed node groups.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_kubernetes as k8s

from components import Between, Matches, require_valid, restricted_container
from components.irsa_role import IrsaRole, IrsaRoleArgs

CHART_REPO = "https://kubernetes.github.io/autoscaler"
#: 9.53.0 ships Cluster Autoscaler 1.34.2 (`helm search repo autoscaler/cluster-autoscaler --versions`).
CHART_VERSION = "9.53.0"
#: By tag only: no public source gave the v1.34.2 digest (the image promoter's manifest stored here
#: ends at v1.33.1; docs/images.md). The chart renders ``repository:tag``, so appending
#: ``@sha256:<digest>`` to this value pins it once the digest is verified.
IMAGE_TAG = "v1.34.2"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "cluster-autoscaler"

#: Read-only calls the autoscaler makes against every group; they support no resource scoping.
DESCRIBE_ACTIONS = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "eks:DescribeNodegroup",
]
SCALING_ACTIONS = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]


_DURATION = Matches(r"[1-9][0-9]*(s|m|h)", "a duration such as 10s, 5m or 1h")


@dataclass(frozen=True, kw_only=True)
class ClusterAutoscalerSettings:
    """``cofounder:cluster.autoscaler``: Cluster Autoscaler behaviour."""

    #: Which node group to grow: least-waste (least idle CPU/memory after the scale-up) or priority.
    expander: Literal["least-waste", "priority", "most-pods", "random"] = "least-waste"
    #: How long a node must be unneeded before it is removed.
    scale_down_unneeded_time: Annotated[str, _DURATION] = "10m"
    #: Pause on scale-down after a scale-up (keeps fresh nodes through a burst).
    scale_down_delay_after_add: Annotated[str, _DURATION] = "10m"
    #: How often the autoscaler re-evaluates pending pods; bounds the reaction time to a burst.
    scan_interval: Annotated[str, _DURATION] = "10s"
    #: Autoscaler pods (leader-elected; a second one only shortens failover).
    replicas: Annotated[int, Between(1, 3)] = 1


@dataclass(frozen=True, kw_only=True)
class ClusterAutoscalerArgs(ClusterAutoscalerSettings):
    """Settings plus the wiring. Pass the cluster's Kubernetes provider through ``opts``."""

    cluster_name: pulumi.Input[str]
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    #: Where the autoscaler runs (the system node group), and the tolerations to get there.
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: Sequence[dict] = ()
    chart_version: str = CHART_VERSION
    image_tag: str = IMAGE_TAG
    tags: dict[str, str] = field(default_factory=dict)


def iam_policy(cluster_name: str) -> str:
    """Least privilege: describe on ``*``; resize/terminate only the groups this cluster owns."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Describe", "Effect": "Allow", "Action": DESCRIBE_ACTIONS, "Resource": "*"},
            {"Sid": "ScaleOwnedGroups", "Effect": "Allow", "Action": SCALING_ACTIONS, "Resource": "*",
             "Condition": {"StringEquals": {
                 f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}},
        ],
    })


def chart_values(args: ClusterAutoscalerArgs, cluster_name: str, role_arn: str) -> dict:
    return {
        "cloudProvider": "aws",
        "awsRegion": args.region,
        "autoDiscovery": {
            "clusterName": cluster_name,
            "tags": ["k8s.io/cluster-autoscaler/enabled", f"k8s.io/cluster-autoscaler/{cluster_name}"],
        },
        "image": {"repository": "registry.k8s.io/autoscaling/cluster-autoscaler", "tag": args.image_tag},
        "fullnameOverride": "cluster-autoscaler",
        "replicaCount": args.replicas,
        "rbac": {"serviceAccount": {"create": True, "name": SERVICE_ACCOUNT,
                                    "annotations": {"eks.amazonaws.com/role-arn": role_arn}}},
        "extraArgs": {
            "logtostderr": True,
            "stderrthreshold": "info",
            "v": 4,
            "expander": args.expander,
            # Spread a scale-up over the zones instead of filling one: over the per-zone groups of a
            # oneGroupPerZone pool. Groups are similar when their nodes' labels match apart from
            # the zone labels, eks.amazonaws.com/nodegroup and topology.ebs.csi.aws.com/zone, which
            # the AWS comparator ignores (processors/nodegroupset/aws_nodegroups.go,
            # compare_nodegroups.go); EKS also labels nodes with their zone id, ignored here too.
            "balance-similar-node-groups": True,
            "balancing-ignore-label": "topology.k8s.aws/zone-id",
            # emptyDir scratch space is not a reason to keep a node alive.
            "skip-nodes-with-local-storage": False,
            "scale-down-unneeded-time": args.scale_down_unneeded_time,
            "scale-down-delay-after-add": args.scale_down_delay_after_add,
            "scan-interval": args.scan_interval,
        },
        "podDisruptionBudget": {"maxUnavailable": 1},
        "priorityClassName": "system-cluster-critical",
        "nodeSelector": dict(args.node_selector),
        "tolerations": list(args.tolerations),
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containerSecurityContext": restricted_container(),
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    """The Cluster Autoscaler Helm release and its IRSA role."""

    role_arn: pulumi.Output[str]
    release_name: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterAutoscalerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:cluster:ClusterAutoscaler", name, None, opts)
        require_valid(f"ClusterAutoscaler {name}", args)
        role = IrsaRole(f"{name}-irsa", IrsaRoleArgs(
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy_json=pulumi.Output.from_input(args.cluster_name).apply(iam_policy),
            tags={**args.tags, "component": "cluster-autoscaler"},
        ), opts=pulumi.ResourceOptions(parent=self))
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name="cluster-autoscaler",
            chart="cluster-autoscaler",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=NAMESPACE,
            values=pulumi.Output.all(args.cluster_name, role.role_arn).apply(
                lambda v: chart_values(args, v[0], v[1])),
            atomic=True,
            cleanup_on_fail=True,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role_arn = role.role_arn
        self.release_name = release.name
        self.register_outputs({"role_arn": self.role_arn, "release_name": self.release_name})
