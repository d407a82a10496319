"""MetricsServer: the resource-metrics API (metrics.k8s.io) that CPU/memory HPAs read.

Installs the official chart (https://kubernetes-sigs.github.io/metrics-server/, pinned, with a
pinned image) into kube-system on the system nodes. With two or more replicas it gets a
PodDisruptionBudget, so node drains never leave the HPAs without metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s

from components import Between, require_valid

CHART_REPO = "https://kubernetes-sigs.github.io/metrics-server/"
#: 3.13.0 ships metrics-server 0.8.0 (chart CHANGELOG).
CHART_VERSION = "3.13.0"
#: v0.8.0 by digest, as the Kubernetes image promoter's manifest records it for registry.k8s.io
#: (kubernetes/k8s.io@bc1017d811972e111a18438057aedac90a843198:
#: registry.k8s.io/images/k8s-staging-metrics-server/images.yaml). The chart renders
#: ``{{ repository }}:{{ tag }}`` (kubernetes-sigs/metrics-server@metrics-server-helm-chart-3.13.0:
#: charts/metrics-server/templates/_helpers.tpl), so the tag value carries the digest.
IMAGE_TAG = "v0.8.0@sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2"
NAMESPACE = "kube-system"


@dataclass(frozen=True, kw_only=True)
class MetricsServerSettings:
    """``cofounder:cluster.metricsServer``."""

    #: metrics-server pods (2+ gets a PodDisruptionBudget; HPAs stall while it is down).
    replicas: Annotated[int, Between(1, 5)] = 2


@dataclass(frozen=True, kw_only=True)
class MetricsServerArgs(MetricsServerSettings):
    """Settings plus the wiring. Pass the cluster's Kubernetes provider through ``opts``."""

    #: Where metrics-server runs (the system node group), and the tolerations to get there.
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: Sequence[dict] = ()
    chart_version: str = CHART_VERSION
    image_tag: str = IMAGE_TAG


def chart_values(args: MetricsServerArgs) -> dict:
    values = {
        "image": {"repository": "registry.k8s.io/metrics-server/metrics-server", "tag": args.image_tag},
        "fullnameOverride": "metrics-server",
        "replicas": args.replicas,
        "nodeSelector": dict(args.node_selector),
        "tolerations": list(args.tolerations),
        "podDisruptionBudget": {"enabled": args.replicas > 1, "minAvailable": 1},
    }
    if args.replicas > 1:
        # One replica per node, so a single node loss does not take the metrics API down.
        values["topologySpreadConstraints"] = [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "metrics-server"}}}]
    return values


class MetricsServer(pulumi.ComponentResource):
    """The metrics-server Helm release."""

    release_name: pulumi.Output[str]

    def __init__(self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:cluster:MetricsServer", name, None, opts)
        require_valid(f"MetricsServer {name}", args)
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name="metrics-server",
            chart="metrics-server",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=NAMESPACE,
            values=chart_values(args),
            atomic=True,
            cleanup_on_fail=True,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release_name = release.name
        self.register_outputs({"release_name": self.release_name})
