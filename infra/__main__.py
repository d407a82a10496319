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
