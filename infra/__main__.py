"""The CoFounder stack: typed config in, components wired together, a few outputs out.

The Pulumi CLI runs this file (``main: infra/``); the offline preview, the policy runner and the
tests run the very same file under the SDK's mock runtime.
"""

import dataclasses

import pulumi

from components import dashboards
from components.alert_rules import AlertRules, AlertRulesArgs
from components.cloudwatch_alarms import CloudWatchAlarms, CloudWatchAlarmsArgs
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.eks_cluster import AddonVersions, EksCluster, EksClusterArgs, NodeGroupSpec, NodeTaint
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.monitoring_stack import MonitoringStack, MonitoringStackArgs
from components.network import Network, NetworkArgs
from components.service_monitors import AppScrape, ScrapeTargets, ScrapeTargetsArgs
from components.static_site_cdn import CacheTier, StaticSiteCdn, StaticSiteCdnArgs
from infra import config as stack_config
from infra.apps import deploy_apps, queue_by_name, queue_consumer_policy

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

cc = cfg.cluster
cluster = EksCluster(
    "platform",
    EksClusterArgs(
        cluster_name=cfg.cluster_name,
        region=cfg.region,
        private_subnet_ids=network.private_subnet_ids,
        admin_role_arns=cc.admin_role_arns,
        node_groups={name: NodeGroupSpec(**{**vars(ng), "taints": [NodeTaint(**vars(t)) for t in ng.taints]})
                     for name, ng in cc.node_groups.items()},
        kubernetes_version=cc.kubernetes_version,
        endpoint_public_access=cc.endpoint_public_access,
        endpoint_public_access_cidrs=cc.endpoint_public_access_cidrs,
        enabled_log_types=cc.enabled_log_types,
        log_retention_days=cc.log_retention_days,
        addon_versions=AddonVersions(**vars(cc.addon_versions)),
        app_namespace=cc.app_namespace,
        headroom_replicas=cc.headroom.replicas,
        headroom_cpu_millicores=cc.headroom.cpu_millicores,
        headroom_memory_mib=cc.headroom.memory_mib,
    ),
)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.k8s_provider})
ClusterAutoscaler(
    "cluster-autoscaler",
    ClusterAutoscalerArgs(
        cluster_name=cluster.cluster_name,
        region=cfg.region,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_url=cluster.oidc_issuer_url,
        expander=cc.autoscaler.expander,
        scale_down_unneeded_time=cc.autoscaler.scale_down_unneeded_time,
        scale_down_delay_after_add=cc.autoscaler.scale_down_delay_after_add,
        scan_interval=cc.autoscaler.scan_interval,
        replicas=cc.autoscaler.replicas,
        node_selector=cluster.system_node_selector,
        tolerations=cluster.system_tolerations,
    ),
    opts=in_cluster,
)
MetricsServer(
    "metrics-server",
    MetricsServerArgs(replicas=cc.metrics_server_replicas, node_selector=cluster.system_node_selector,
                      tolerations=cluster.system_tolerations),
    opts=in_cluster,
)
obs = cfg.observability
if obs.enabled:
    monitoring = MonitoringStack(
        "monitoring",
        MonitoringStackArgs(
            region=cfg.region,
            dashboards=dashboards.load(),
            chart_version=obs.chart_version,
            retention_days=obs.retention_days,
            retention_size_gib=obs.retention_size_gib,
            storage_gib=obs.storage_gib,
            storage_class=obs.storage_class,
            scrape_interval_seconds=obs.scrape_interval_seconds,
            grafana_enabled=obs.grafana_enabled,
            node_selector=obs.node_selector,
            # a configured node selector means the (tainted) system nodes
            tolerations=cluster.system_tolerations if obs.node_selector else (),
            oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url,
        ),
        opts=in_cluster,
    )
    # Monitors and rules are custom resources of the chart's CRDs: they wait for the release.
    after_chart = pulumi.ResourceOptions(providers={"kubernetes": cluster.k8s_provider},
                                         depends_on=[monitoring.release])
    ScrapeTargets(
        "scrape",
        ScrapeTargetsArgs(
            app_namespace=cluster.app_namespace,
            namespace=monitoring.namespace,
            apps=[AppScrape(**vars(app)) for app in obs.apps],
            monitor_labels=monitoring.monitor_labels,
            scrape_interval_seconds=obs.scrape_interval_seconds,
        ),
        opts=after_chart,
    )
    AlertRules(
        "alerts",
        AlertRulesArgs(
            app_namespace=cluster.app_namespace,
            namespace=monitoring.namespace,
            monitor_labels=monitoring.monitor_labels,
            latency_p99_ms=obs.alerts.latency_p99_ms,
            latency_for_minutes=obs.alerts.latency_for_minutes,
            hpa_at_max_minutes=obs.alerts.hpa_at_max_minutes,
            pod_pending_seconds=obs.alerts.pod_pending_seconds,
            pgbouncer_waiting_clients=obs.alerts.pgbouncer_waiting_clients,
            pgbouncer_waiting_minutes=obs.alerts.pgbouncer_waiting_minutes,
        ),
        opts=after_chart,
    )
    # The alarm topic now; RDS, ElastiCache and SQS alarms are added by passing their ids
    # (rds_instance_id + rds_max_connections, redis_replication_group_id + shards, sqs_queue_name,
    # sqs_dlq_name) from the data tier once it exists.
    alarms = CloudWatchAlarms(
        "alarms",
        CloudWatchAlarmsArgs(
            name_prefix=cfg.name_prefix,
            alarm_email=obs.alarm_email,
            rds_cpu_percent=obs.alerts.rds_cpu_percent,
            rds_freeable_memory_mib=obs.alerts.rds_freeable_memory_mib,
            rds_free_storage_gib=obs.alerts.rds_free_storage_gib,
            rds_connections_percent=obs.alerts.rds_connections_percent,
            redis_engine_cpu_percent=obs.alerts.redis_engine_cpu_percent,
            redis_memory_percent=obs.alerts.redis_memory_percent,
            redis_evictions=obs.alerts.redis_evictions,
            sqs_oldest_message_age_seconds=obs.alerts.sqs_oldest_message_age_seconds,
        ),
    )
    pulumi.export("alarmTopicArn", alarms.topic_arn)
    pulumi.export("grafanaAdminSecret", monitoring.grafana_admin_secret_name)

# --- App tier: frontend, backend, worker and the metric adapters they scale on (infra/apps.py) --
# QUEUE PLUG-IN (feat/data): until the data tier's SQS queue is merged, the worker's queue is found
# by its name (cofounder:apps.worker.queueName) and its IRSA policy is scoped to that queue. Replace
# `queues` with the data tier's {app: QueueRef(url=..., arn=...)} and `aws_policies` with its
# worker IAM policy JSON.
queues = {name: queue_by_name(cfg.region, app.queue_name) for name, app in cfg.apps.items() if app.queue_name}
aws_policies = {name: queue_consumer_policy(queues[name].arn)
                for name, app in cfg.apps.items() if app.needs_aws}
deploy_apps(cfg, k8s_provider=cluster.k8s_provider, app_namespace=cluster.app_namespace,
            app_namespace_name=cc.app_namespace, oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url, queues=queues, aws_policies=aws_policies)

pulumi.export("environment", cfg.environment)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("publicSubnetIds", network.public_subnet_ids)

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("kubeconfig", cluster.kubeconfig)  # a secret: `pulumi stack output kubeconfig --show-secrets`
pulumi.export("appNamespace", cluster.app_namespace)
pulumi.export("headroom", cluster.headroom.as_dict())
# Read by the time-to-scale report and documented targets for the load test.
pulumi.export("scalingTargets", cfg.scaling.as_dict())

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
