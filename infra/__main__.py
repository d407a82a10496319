"""The CoFounder stack: typed config in, components wired together, a few outputs out.

The Pulumi CLI runs this file (``main: infra/``); the offline preview, the policy runner and the
tests run the very same file under the SDK's mock runtime.
"""

import pulumi

from components import args_for
from components.app_data_settings import AppDataSettings, AppDataSettingsArgs
from components import dashboards
from components.alert_rules import AlertRules, AlertRulesArgs
from components.cloudwatch_alarms import CloudWatchAlarms, CloudWatchAlarmsArgs
from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs
from components.eks_cluster import (GP3_STORAGE_CLASS, AddonVersions, EksCluster, EksClusterArgs, NodeGroupSpec,
                                    NodeTaint)
from components.metrics_server import MetricsServer, MetricsServerArgs
from components.monitoring_stack import MonitoringStack, MonitoringStackArgs
from components.network import Network, NetworkArgs
from components.pgbouncer import PgBouncer, PgBouncerArgs
from components.postgres import Postgres, PostgresArgs
from components.queue import Queue, QueueArgs
from components.redis import Redis, RedisArgs
from components.service_monitors import AppScrape, ScrapeTargets, ScrapeTargetsArgs
from components.app_load_balancer import AppLoadBalancer, AppLoadBalancerArgs, LoadBalancedApp
from components.app_service import LoadBalancerTarget
from components.edge_distribution import AppOrigin, EdgeDistribution, EdgeDistributionArgs
from components.load_balancer_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.web_acl import EdgeWebAcl, EdgeWebAclArgs
from capacity.drain import Drain
from infra import config as stack_config
from infra.apps import QueueRef, deploy_apps

cfg = stack_config.load()

# The Postgres connection budget (load() has already refused a stack where it does not fit):
# cofounder:apps maxReplicas x dbPoolSize against PgBouncer and RDS max_connections.
connection_budget = stack_config.connection_budget(cfg)

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
        preview_role_arns=cc.preview_role_arns,
        node_groups={name: NodeGroupSpec(**{**vars(ng), "taints": [NodeTaint(**vars(t)) for t in ng.taints]})
                     for name, ng in cc.node_groups.items()},
        kubernetes_version=cc.kubernetes_version,
        endpoint_public_access=cc.endpoint_public_access,
        endpoint_public_access_cidrs=cc.endpoint_public_access_cidrs,
        endpoint_private_access_cidrs=cc.endpoint_private_access_cidrs,
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
# --- Front door: CloudFront -> VPC origin -> internal ALB -> TargetGroupBinding -> app pods ------
front_door = stack_config.load_balanced_apps(cfg)  # app -> longest request (CloudFront read timeout)
load_balancer = None
load_balancer_targets: dict[str, LoadBalancerTarget] = {}
if front_door:
    def _target(name: str, longest_request_seconds: int) -> LoadBalancedApp:
        app = cfg.apps[name]
        drain = Drain(pre_stop_sleep_seconds=app.pre_stop_sleep_seconds,
                      termination_grace_period_seconds=app.termination_grace_period_seconds,
                      longest_request_seconds=longest_request_seconds)
        return LoadBalancedApp(port=app.port, health_check_path=app.probes.readiness_path,
                               health_check_port=app.probes.port,
                               deregistration_delay_seconds=drain.deregistration_delay_seconds)

    load_balancer = AppLoadBalancer("edge-lb", args_for(
        cfg.load_balancer, AppLoadBalancerArgs,
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        subnet_zone_ids=network.private_subnet_zone_ids,
        cluster_security_group_id=cluster.node_security_group_id,
        targets={name: _target(name, longest) for name, longest in front_door.items()},
    ))
    controller = LoadBalancerController("load-balancer-controller", args_for(
        cfg.load_balancer_controller, LoadBalancerControllerArgs,
        cluster_name=cluster.cluster_name,
        region=cfg.region,
        vpc_id=network.vpc_id,
        vpc_arn=network.vpc_arn,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_url=cluster.oidc_issuer_url,
        target_group_arns=list(load_balancer.target_group_arns.values()),
        node_selector=cluster.system_node_selector,
        tolerations=cluster.system_tolerations,
    ), opts=in_cluster)
    load_balancer_targets = {
        name: LoadBalancerTarget(target_group_arn=arn, vpc_id=network.vpc_id, controller=controller.release)
        for name, arn in load_balancer.target_group_arns.items()}

# Admitted on 5432/6379: the EKS cluster security group, which sits on every node and pod ENI
# (PgBouncer, migration jobs and the apps' Redis clients alike); nothing else in the VPC.
data_clients_security_groups = [cluster.node_security_group_id]

postgres = Postgres(
    "postgres",
    PostgresArgs(
        identifier=f"{cfg.name_prefix}-postgres",
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        allowed_security_group_ids=data_clients_security_groups,
        instance_class=cfg.postgres.instance_class,
        engine_version=cfg.postgres.engine_version,
        allocated_storage_gib=cfg.postgres.allocated_storage_gib,
        max_allocated_storage_gib=cfg.postgres.max_allocated_storage_gib,
        multi_az=cfg.postgres.multi_az,
        backup_retention_days=cfg.postgres.backup_retention_days,
        deletion_protection=cfg.postgres.deletion_protection,
        skip_final_snapshot=cfg.postgres.skip_final_snapshot,
        protect=cfg.postgres.protect,
        log_min_duration_statement_ms=cfg.postgres.log_min_duration_statement_ms,
        performance_insights_retention_days=cfg.postgres.performance_insights_retention_days,
        monitoring_interval_seconds=cfg.postgres.monitoring_interval_seconds,
        auto_minor_version_upgrade=cfg.postgres.auto_minor_version_upgrade,
        iam_database_authentication=cfg.postgres.iam_database_authentication,
        log_retention_days=cfg.postgres.log_retention_days,
    ),
)

redis = Redis(
    "redis",
    RedisArgs(
        identifier=f"{cfg.name_prefix}-redis",
        vpc_id=network.vpc_id,
        subnet_ids=network.private_subnet_ids,
        allowed_security_group_ids=data_clients_security_groups,
        node_type=cfg.redis.node_type,
        engine_version=cfg.redis.engine_version,
        shards=cfg.redis.shards,
        replicas_per_shard=cfg.redis.replicas_per_shard,
        multi_az=cfg.redis.multi_az,
        snapshot_retention_days=cfg.redis.snapshot_retention_days,
        protect=cfg.redis.protect,
    ),
)

agent_queue = Queue(
    "agent-queue",
    QueueArgs(
        queue_name=cfg.agent_queue_name,
        max_agent_run_seconds=cfg.queues.max_agent_run_seconds,
        visibility_margin_seconds=cfg.queues.visibility_margin_seconds,
        max_receive_count=cfg.queues.max_receive_count,
        message_retention_seconds=cfg.queues.message_retention_seconds,
        dlq_message_retention_seconds=cfg.queues.dlq_message_retention_seconds,
        protect=cfg.queues.protect,
    ),
)

pgbouncer = PgBouncer(
    "pgbouncer",
    PgBouncerArgs(
        namespace=cluster.app_namespace,
        db_host=postgres.address,
        db_name=postgres.db_name,
        db_user=postgres.master_username,
        db_password=postgres.master_password,
        replicas=cfg.pgbouncer.replicas,
        default_pool_size=cfg.pgbouncer.default_pool_size,
        reserve_pool_size=cfg.pgbouncer.reserve_pool_size,
        max_client_conn=cfg.pgbouncer.max_client_conn,
        max_prepared_statements=cfg.pgbouncer.max_prepared_statements,
    ),
    opts=in_cluster,
)
# The Secrets and the ConfigMap the apps load with envFrom (cofounder:apps.<app>.envFromSecrets/ConfigMaps).
app_data = AppDataSettings(
    "app-data",
    AppDataSettingsArgs(
        namespace=cluster.app_namespace,
        database_url=postgres.database_url,
        database_url_pooled=pgbouncer.database_url_pooled,
        redis_url=redis.redis_url,
        queue_url=agent_queue.queue_url,
    ),
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
            storage_class_resource=cluster.storage_class if obs.storage_class == GP3_STORAGE_CLASS else None,
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
            latency_p99_ms=cfg.scaling.p99_latency_ms,
            latency_for_minutes=obs.alerts.latency_for_minutes,
            hpa_at_max_minutes=obs.alerts.hpa_at_max_minutes,
            pod_pending_seconds=obs.alerts.pod_pending_seconds,
            pgbouncer_waiting_clients=obs.alerts.pgbouncer_waiting_clients,
            pgbouncer_waiting_minutes=obs.alerts.pgbouncer_waiting_minutes,
        ),
        opts=after_chart,
    )
    pulumi.export("grafanaAdminSecret", monitoring.grafana_admin_secret_name)

# CloudWatch alarms on the data tier: RDS, ElastiCache and SQS, into one SNS topic. They watch AWS
# services, so they do not depend on the in-cluster monitoring.
if obs.cloudwatch_alarms:
    alarms = CloudWatchAlarms(
        "alarms",
        CloudWatchAlarmsArgs(
            name_prefix=cfg.name_prefix,
            alarm_email=obs.alarm_email,
            rds_instance_id=postgres.instance_identifier,
            rds_max_connections=connection_budget.rds_max_connections,
            redis_replication_group_id=redis.replication_group_id,
            redis_shards=cfg.redis.shards,
            redis_replicas_per_shard=cfg.redis.replicas_per_shard,
            sqs_queue_name=agent_queue.queue_name,
            sqs_dlq_name=agent_queue.dlq_name,
            rds_cpu_percent=obs.alerts.rds_cpu_percent,
            rds_freeable_memory_mib=obs.alerts.rds_freeable_memory_mib,
            rds_free_storage_gib=obs.alerts.rds_free_storage_gib,
            rds_connections_percent=obs.alerts.rds_connections_percent,
            redis_engine_cpu_percent=obs.alerts.redis_engine_cpu_percent,
            redis_memory_percent=obs.alerts.redis_memory_percent,
            redis_evictions=obs.alerts.redis_evictions,
            sqs_oldest_message_age_seconds=obs.alerts.sqs_oldest_message_age_seconds,
            load_balancer_arn_suffix=load_balancer.arn_suffix if load_balancer else None,
            target_group_arn_suffixes=load_balancer.target_group_arn_suffixes if load_balancer else {},
            latency_p99_ms=cfg.scaling.p99_latency_ms,
            latency_for_minutes=obs.alerts.latency_for_minutes,
        ),
    )
    pulumi.export("alarmTopicArn", alarms.topic_arn)

# --- App tier: frontend, backend, worker and the metric adapters they scale on (infra/apps.py) --
# Apps with a queueName consume the agent queue (load() checked it is this one): KEDA scales them on
# its depth and their IRSA role gets the worker policy; other apps that call AWS may only enqueue.
queues = {name: QueueRef(url=agent_queue.queue_url, arn=agent_queue.queue_arn)
          for name, app in cfg.apps.items() if app.queue_name}
aws_policies = {name: agent_queue.worker_policy_json if app.queue_name else agent_queue.producer_policy_json
                for name, app in cfg.apps.items() if app.needs_aws}
deploy_apps(cfg, k8s_provider=cluster.k8s_provider, app_namespace=cluster.app_namespace,
            app_namespace_name=cc.app_namespace, oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url, queues=queues, aws_policies=aws_policies,
            load_balancer_targets=load_balancer_targets, monitoring=[monitoring] if obs.enabled else [])

pulumi.export("environment", cfg.environment)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("publicSubnetIds", network.public_subnet_ids)

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("kubeconfig", cluster.kubeconfig)  # a secret: `pulumi stack output kubeconfig --show-secrets`
pulumi.export("appNamespace", cluster.app_namespace)
pulumi.export("headroom", cluster.headroom.as_dict())
pulumi.export("postgresAddress", postgres.address)
pulumi.export("redisConfigurationEndpoint", redis.configuration_endpoint)
pulumi.export("agentQueueUrl", agent_queue.queue_url)
pulumi.export("agentDeadLetterQueueUrl", agent_queue.dlq_url)
pulumi.export("connectionBudget", connection_budget.as_dict())
pulumi.export("appDataSecretNames", [app_data.database_secret_name, app_data.redis_secret_name])
pulumi.export("appDataConfigMapName", app_data.queue_config_map_name)
# Read by the time-to-scale report and documented targets for the load test.
pulumi.export("scalingTargets", cfg.scaling.as_dict())

if cfg.edge.enabled and load_balancer is not None:
    web_acl = None
    if cfg.waf.enabled:
        web_acl = EdgeWebAcl("edge-waf", args_for(cfg.waf, EdgeWebAclArgs, name_prefix=cfg.name_prefix))
    edge = EdgeDistribution("edge", args_for(
        cfg.edge, EdgeDistributionArgs,
        app_origin=AppOrigin(vpc_origin_id=load_balancer.vpc_origin_id,
                             domain_name=load_balancer.origin_domain_name),
        web_acl_arn=web_acl.arn if web_acl else None,
    ))
    pulumi.export("url", edge.url)
    pulumi.export("edgeDomainName", edge.domain_name)
    pulumi.export("edgeDistributionId", edge.distribution_id)
    pulumi.export("edgeBucketName", edge.bucket_name)
    pulumi.export("loadBalancerDnsName", load_balancer.dns_name)
