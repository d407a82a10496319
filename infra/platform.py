"""The platform: the VPC, the EKS cluster and the add-ons every workload relies on."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import args_for
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.eks_cluster import EksCluster, EksClusterArgs
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.network import Network, NetworkArgs
from infra.stack import StackConfig


@dataclass(frozen=True)
class Platform:
    network: Network
    cluster: EksCluster
    #: Options for everything declared through the cluster's Kubernetes provider.
    in_cluster: pulumi.ResourceOptions


def build_platform(cfg: StackConfig) -> Platform:
    network = Network("network", args_for(cfg.network, NetworkArgs, cluster_name=cfg.cluster_name))
    cluster = EksCluster("platform", args_for(
        cfg.cluster, EksClusterArgs, cluster_name=cfg.cluster_name, region=cfg.region,
        private_subnet_ids=network.private_subnet_ids, availability_zones=cfg.network.availability_zones))
    in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.k8s_provider})
    on_system_nodes = dict(node_selector=cluster.system_node_selector, tolerations=cluster.system_tolerations)
    ClusterAutoscaler("cluster-autoscaler", args_for(
        cfg.cluster.autoscaler, ClusterAutoscalerArgs, cluster_name=cluster.cluster_name, region=cfg.region,
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url, **on_system_nodes),
        opts=in_cluster)
    MetricsServer("metrics-server", args_for(cfg.cluster.metrics_server, MetricsServerArgs, **on_system_nodes),
                  opts=in_cluster)
    return Platform(network=network, cluster=cluster, in_cluster=in_cluster)
