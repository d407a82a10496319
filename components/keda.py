"""Keda: KEDA (event-driven autoscaling) from its official Helm chart, with a least-privilege IRSA role.

KEDA serves ``external.metrics.k8s.io`` (registers ``v1beta1.external.metrics.k8s.io``) and
owns one HPA per ScaledObject. Here it scales the agent worker on SQS queue depth together with
its CPU, memory and active-agents targets, so the worker has exactly one HPA. The operator reads
queue depth with its own identity (TriggerAuthentication ``podIdentity.provider: aws``,
``identityOwner: keda``): an IRSA role allowed ``sqs:GetQueueAttributes`` on the given queues and
nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s

from components import Between, ComponentArgsError, require_valid
from components.irsa_role import IrsaRole, IrsaRoleArgs

CHART_REPO = "https://kedacore.github.io/charts"
OPERATOR_SERVICE_ACCOUNT = "keda-operator"


def queue_read_policy(queue_arns: Sequence[str]) -> str:
    """IAM policy: read the attributes (depth) of these queues, nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": sorted(queue_arns)}]})


@dataclass(frozen=True, kw_only=True)
class KedaSettings:
    """``cofounder:keda``: the KEDA operator that scales queue consumers on queue depth."""

    #: Replicas of KEDA's operator and metrics server (one leads; the others shorten failover).
    replicas: Annotated[int, Between(1, 5)] = 2


@dataclass(frozen=True, kw_only=True)
class KedaArgs(KedaSettings):
    """Settings plus the wiring."""

    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    #: ARNs of the SQS queues whose depth KEDA may read.
    queue_arns: Sequence[pulumi.Input[str]]
    namespace: str = "keda"
    chart_version: str = "2.18.1"
    #: KEDA image tag for the operator, metrics server and webhooks (the chart's appVersion); by tag
    #: only: no public source gave the 2.18.1 digests (docs/images.md).
    image_tag: str = "2.18.1"
    tags: dict[str, str] = field(default_factory=dict)


class Keda(pulumi.ComponentResource):
    """KEDA in its own namespace; pass ``release`` to ScaledObjects so the CRDs exist first."""

    release: k8s.helm.v3.Release
    role_arn: pulumi.Output[str]
    namespace: str

    def __init__(self, name: str, args: KedaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:autoscaling:Keda", name, None, opts)
        require_valid(f"Keda {name}", args)
        if not args.queue_arns:
            raise ComponentArgsError(f"{name}: KEDA needs at least one queue ARN to read")
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        role = IrsaRole(
            f"{name}-operator",
            IrsaRoleArgs(
                oidc_provider_arn=args.oidc_provider_arn,
                oidc_issuer_url=args.oidc_issuer_url,
                namespace=args.namespace,
                service_account=OPERATOR_SERVICE_ACCOUNT,
                policy_json=pulumi.Output.all(*args.queue_arns).apply(queue_read_policy),
                tags={**args.tags, "component": "keda"},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="keda",
            chart="keda",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=namespace.metadata.name,
            atomic=True,
            timeout=600,
            values={
                "image": {"keda": {"tag": args.image_tag},
                          "metricsApiServer": {"tag": args.image_tag},
                          "webhooks": {"tag": args.image_tag}},
                "operator": {"replicaCount": args.replicas},
                "metricsServer": {"replicaCount": args.replicas},
                "serviceAccount": {"operator": {"name": OPERATOR_SERVICE_ACCOUNT}},
                # The chart annotates the operator's service account with the role (IRSA).
                "podIdentity": {"aws": {"irsa": {"enabled": True, "roleArn": role.role_arn}}},
                # Adds the port named "metrics" to the keda-operator Service, which the project's
                # ServiceMonitor scrapes (components/service_monitors.py); the chart's own monitor
                # stays off so the operator is scraped once.
                "prometheus": {"operator": {"enabled": True}},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role_arn = role.role_arn
        self.namespace = args.namespace
        self.register_outputs({"role_arn": self.role_arn, "release_status": self.release.status})
