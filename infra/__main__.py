"""The CoFounder stack: typed config in, components wired together, a few outputs out.

The Pulumi CLI runs this file (``main: infra/``); the offline preview, the policy runner and the
tests run the very same file under the SDK's mock runtime.
"""

import pulumi

from components.cloudwatch_alarms import CloudWatchAlarms, CloudWatchAlarmsArgs
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

obs = cfg.observability
if obs.enabled:
    # The alarm topic now; RDS, ElastiCache and SQS alarms are added by passing their ids
    # (rds_instance_id, redis_replication_group_id, sqs_queue_name, ...) once the data tier exists.
    # In-cluster monitoring (MonitoringStack, ScrapeTargets, AlertRules) needs the EKS platform.
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

pulumi.export("environment", cfg.environment)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
