"""The CoFounder stack: typed config in, components wired together, a few outputs out.

The Pulumi CLI runs this file (``main: infra/``); the offline preview, the policy runner and the
tests run the very same file under the SDK's mock runtime.
"""

import dataclasses

import pulumi

from components.network import Network, NetworkArgs
from components.static_site_cdn import CacheTier, StaticSiteCdn, StaticSiteCdnArgs
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

if cfg.edge.enabled:
    def _tier(tier: stack_config.CacheTierConfig) -> CacheTier:
        return CacheTier(**{f.name: getattr(tier, f.name) for f in dataclasses.fields(tier)})

    edge = StaticSiteCdn(
        "edge",
        StaticSiteCdnArgs(
            price_class=cfg.edge.price_class,
            aliases=cfg.edge.aliases,
            acm_certificate_arn=cfg.edge.acm_certificate_arn,
            api_origin_domain=cfg.edge.api_origin_domain,
            noncurrent_version_expiration_days=cfg.edge.noncurrent_version_expiration_days,
            log_retention_days=cfg.edge.log_retention_days,
            protect=cfg.edge.protect,
            force_destroy=cfg.edge.force_destroy,
            static_assets=_tier(cfg.edge.static_assets),
            public_assets=_tier(cfg.edge.public_assets),
            html=_tier(cfg.edge.html),
        ),
    )
    pulumi.export("edgeDomainName", edge.domain_name)
    pulumi.export("edgeDistributionId", edge.distribution_id)
    pulumi.export("edgeBucketName", edge.bucket_name)
