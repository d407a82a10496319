"""Observability: Prometheus and Grafana in the cluster, their monitors and alert rules, and the
CloudWatch alarms on what Prometheus cannot scrape (RDS, ElastiCache, SQS, the ALB)."""

from __future__ import annotations

import pulumi

from components import args_for, dashboards
from components.alert_rules import AlertRules, AlertRulesArgs
from components.cloudwatch_alarms import CloudWatchAlarms, CloudWatchAlarmsArgs
from components.eks_cluster import GP3_STORAGE_CLASS
from components.monitoring_stack import MonitoringStack, MonitoringStackArgs
from components.otel_collector import OtelCollector, OtelCollectorArgs
from components.service_monitors import ScrapeTargets, ScrapeTargetsArgs
from infra.checks import worker_capacity
from infra.data import DataTier
from infra.front_door import LoadBalancing
from infra.platform import Platform
from infra.stack import StackConfig


def build_monitoring(cfg: StackConfig, platform: Platform) -> MonitoringStack | None:
    """kube-prometheus-stack with the program's dashboards, monitors and alert rules."""
    if not cfg.monitoring.enabled:
        return None
    cluster, settings = platform.cluster, cfg.monitoring
    monitoring = MonitoringStack("monitoring", args_for(
        settings, MonitoringStackArgs, region=cfg.region, dashboards=dashboards.load(),
        # a configured node selector means the (tainted) system nodes
        tolerations=cluster.system_tolerations if settings.node_selector else (),
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
        storage_class_resource=cluster.storage_class if settings.storage_class == GP3_STORAGE_CLASS else None),
        opts=platform.in_cluster)
    # Monitors and rules are custom resources of the chart's CRDs: they wait for the release.
    after_chart = pulumi.ResourceOptions(providers={"kubernetes": cluster.k8s_provider},
                                         depends_on=[monitoring.release])
    ScrapeTargets("scrape", args_for(
        cfg.scrape, ScrapeTargetsArgs, app_namespace=cluster.app_namespace, namespace=monitoring.namespace,
        monitor_labels=monitoring.monitor_labels, scrape_interval_seconds=settings.scrape_interval_seconds),
        opts=after_chart)
    AlertRules("alerts", args_for(
        cfg.alert_rules, AlertRulesArgs, app_namespace=cluster.app_namespace, namespace=monitoring.namespace,
        monitor_labels=monitoring.monitor_labels, latency_p99_ms=cfg.scaling.p99_latency_ms,
        traces_backend=cfg.tracing.backend if cfg.tracing.enabled else None), opts=after_chart)
    pulumi.export("grafanaAdminSecret", monitoring.grafana_admin_secret_name)
    return monitoring


def build_tracing(cfg: StackConfig, platform: Platform) -> OtelCollector | None:
    """The OpenTelemetry Collector on the system nodes, and each app's ``otel-<app>`` ConfigMap."""
    if not cfg.tracing.enabled:
        return None
    cluster = platform.cluster
    return OtelCollector("tracing", args_for(
        cfg.tracing, OtelCollectorArgs, app_namespace=cluster.app_namespace, apps=list(cfg.apps),
        environment=cfg.environment, region=cfg.region, oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_url=cluster.oidc_issuer_url, node_selector=cluster.system_node_selector,
        tolerations=cluster.system_tolerations), opts=platform.in_cluster)


def build_alarms(cfg: StackConfig, data: DataTier, lb: LoadBalancing | None) -> CloudWatchAlarms | None:
    """Alarms into one encrypted SNS topic; they watch AWS services, not the in-cluster monitoring."""
    if not cfg.cloudwatch_alarms.enabled:
        return None
    alarms = CloudWatchAlarms("alarms", args_for(
        cfg.cloudwatch_alarms, CloudWatchAlarmsArgs, name_prefix=cfg.name_prefix,
        rds_instance_id=data.postgres.instance_identifier,
        rds_max_connections=data.connection_budget.rds_max_connections,
        redis_replication_group_id=data.redis.replication_group_id, redis_shards=cfg.redis.shards,
        redis_replicas_per_shard=cfg.redis.replicas_per_shard, redis_eviction_policy=data.redis.eviction_policy,
        sqs_queue_names=data.agent_queue.queue_names, sqs_dlq_names=data.agent_queue.dlq_names,
        sqs_backlog_messages=worker_capacity(cfg),
        load_balancer_arn_suffix=lb.load_balancer.arn_suffix if lb else None,
        target_group_arn_suffixes=lb.load_balancer.target_group_arn_suffixes if lb else {},
        latency_p99_ms=cfg.scaling.p99_latency_ms, latency_for_minutes=cfg.alert_rules.latency_for_minutes))
    pulumi.export("alarmTopicArn", alarms.topic_arn)
    return alarms
