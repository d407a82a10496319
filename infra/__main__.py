"""The CoFounder stack: typed config in, components wired together, a few outputs out.

The Pulumi CLI runs this file (``main: infra/``); the offline preview, the policy runner and the
tests run the very same file under the SDK's mock runtime.
"""

import pulumi

from components.network import Network, NetworkArgs
from infra import config as stack_config

cfg = stack_config.load()

network = Network(
    "network",
    NetworkArgs(
        availability_zones=cfg.network.availability_zones,
        cluster_name=cfg.cluster_name,
        cidr_block=cfg.network.cidr_block,
        single_nat_gateway=cfg.network.single_nat_gateway,
        flow_log_retention_days=cfg.network.flow_log_retention_days,
        flow_log_traffic_type=cfg.network.flow_log_traffic_type,
        enable_s3_gateway_endpoint=cfg.network.enable_s3_gateway_endpoint,
    ),
)

pulumi.export("environment", cfg.environment)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("publicSubnetIds", network.public_subnet_ids)

# --- App tier (components/app_service.py, keda.py, prometheus_adapter.py via infra/apps.py) -----
# Waits for the EKS platform (components/eks_cluster.py, feat/eks). Once `cluster` exists here:
#
#   from infra.apps import deploy_apps, queue_by_name, queue_consumer_policy
#   queues = {n: queue_by_name(cfg.region, a.queue_name) for n, a in cfg.apps.items() if a.queue_name}
#   deploy_apps(cfg, k8s_provider=cluster.k8s_provider, app_namespace=cluster.app_namespace,
#               app_namespace_name=<the EksClusterArgs.app_namespace string>,
#               oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
#               queues=queues,  # QUEUE PLUG-IN: replace with the data tier's queue url/arn (feat/data)
#               aws_policies={n: queue_consumer_policy(queues[n].arn)  # and its worker IAM policy JSON
#                             for n, a in cfg.apps.items() if a.needs_aws})
