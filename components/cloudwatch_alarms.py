"""CloudWatchAlarms: alarms on the managed data tier, published to an encrypted SNS topic.

RDS, ElastiCache and SQS are managed services: Prometheus cannot scrape them, so their health
is watched where AWS publishes it. Builds a customer-managed KMS key (rotated; its policy lets
CloudWatch publish to the encrypted topic, which the AWS-managed ``alias/aws/sns`` key does not
allow), the SNS alarm topic, an optional email subscription and, for each resource given:

- RDS instance: CPU, freeable memory, free storage, connections near ``max_connections``;
- ElastiCache replication group (cluster mode): engine CPU, memory used and evictions, per node
  (CloudWatch publishes ElastiCache metrics per node, ``<group>-<shard 0001>-<node 001>``).
  ``DatabaseMemoryUsagePercentage`` is used_memory / maxmemory and ``Evictions`` counts keys
  evicted at the maxmemory limit (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/CacheMetrics.Redis.html).
  Both follow the cluster's eviction policy (``components/redis.py``, volatile-lfu): every key
  carries a TTL, so any eviction may drop a session and fires at once, and memory alarms early
  because a key written without a TTL is never evicted and, once only such keys are left, writes fail;
- SQS, per priority tier: age of the oldest message and a visible backlog larger than the worker
  runs at its maximum scale, on the tier's queue, and any message on its dead-letter queue;
- the internal ALB: p99 ``TargetResponseTime`` per target group above the stack's p99 target,
  so a slow hop between CloudFront and the pods shows even while the apps' own histograms
  (which start timing inside the process) look fine.

Resources are identified by inputs (instance id, replication group id, queue names), so the
alarms are wired once the data tier exists; each family is skipped while its input is None (empty).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_aws as aws

from components import Between, Matches, require_valid
from components.key_policy import KeyContext, topic_key

MIB = 1024 * 1024
GIB = 1024 * MIB


@dataclass(frozen=True, kw_only=True)
class CloudWatchAlarmsSettings:
    """``cofounder:cloudwatchAlarms``: alarms on RDS, ElastiCache, SQS and the ALB, into one SNS topic."""

    #: The alarms and their topic; independent of the in-cluster monitoring (they watch AWS services).
    enabled: bool = True
    #: Email address subscribed to the alarm SNS topic (confirmation required); none = no subscription.
    alarm_email: Annotated[str | None, Matches(r"[^@\s]+@[^@\s]+\.[^@\s]+",
                                               "a value matching [^@\\s]+@[^@\\s]+\\.[^@\\s]+")] = None
    #: Age of the oldest agent run in any tier's queue above which the worker is not keeping up.
    sqs_oldest_message_age_seconds: Annotated[int, Between(60, 1209600)] = 300
    #: RDS CPU above which the alarm fires (5 minutes).
    rds_cpu_percent: Annotated[int, Between(10, 100)] = 80
    #: RDS freeable memory below which the alarm fires.
    rds_freeable_memory_mib: Annotated[int, Between(16, 1048576)] = 256
    #: RDS free storage below which the alarm fires.
    rds_free_storage_gib: Annotated[int, Between(1, 65536)] = 10
    #: Share of the instance's max_connections in use that raises the alarm.
    rds_connections_percent: Annotated[int, Between(10, 100)] = 80
    #: Valkey engine CPU (per node) above which the alarm fires.
    redis_engine_cpu_percent: Annotated[int, Between(10, 100)] = 80
    #: Valkey memory use (per node) above which the alarm fires.
    redis_memory_percent: Annotated[int, Between(10, 100)] = 80
    #: Evicted keys per 5 minutes above which the cache is too small.
    redis_evictions: Annotated[int, Between(0, 1000000)] = 0


@dataclass(frozen=True, kw_only=True)
class CloudWatchAlarmsArgs(CloudWatchAlarmsSettings):
    """Settings plus the resources to watch; each family is skipped while its input is None."""

    #: Prefix of the physical names (topic, alarms), e.g. ``cofounder-prod``.
    name_prefix: str
    #: RDS DB instance identifier; None = no RDS alarms.
    rds_instance_id: pulumi.Input[str] | None = None
    #: The instance's max_connections (the connection budget); required with ``rds_instance_id``.
    rds_max_connections: int | None = None
    #: ElastiCache replication group id; None = no Redis alarms.
    redis_replication_group_id: pulumi.Input[str] | None = None
    #: Shards (node groups) and replicas per shard of that group: they name its nodes.
    redis_shards: int = 1
    redis_replicas_per_shard: int = 1
    #: The maxmemory-policy of that group's parameter group (named in the alarms' descriptions).
    redis_eviction_policy: str = "volatile-lfu"
    #: Per priority tier, the name of its agent-execution queue (age and backlog alarms) ...
    sqs_queue_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    #: ... and of its dead-letter queue (an alarm on any message in it).
    sqs_dlq_names: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    #: Visible messages per tier above which even the worker at maxReplicas leaves runs waiting
    #: (maxReplicas x concurrencyPerPod); None = no backlog alarm.
    sqs_backlog_messages: int | None = None
    #: The ALB's ``app/<name>/<id>`` and, per app, its target group's ``targetgroup/<name>/<id>``.
    load_balancer_arn_suffix: pulumi.Input[str] | None = None
    target_group_arn_suffixes: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    #: p99 target of a request through the ALB (cofounder:scaling.p99LatencyMs) ...
    latency_p99_ms: int = 200
    #: ... exceeded for this many consecutive minutes (cofounder:alertRules.latencyForMinutes).
    latency_for_minutes: int = 5
    tags: dict[str, str] = field(default_factory=dict)

    def checks(self):
        if (self.rds_instance_id is None) != (self.rds_max_connections is None):
            yield "rds_max_connections", self.rds_max_connections, "set together with rds_instance_id"


def redis_node_suffixes(shards: int, replicas_per_shard: int) -> list[str]:
    """``<shard>-<node>`` of every node of a cluster-mode group; its CacheClusterId is ``<group>-<this>``."""
    return [f"{shard:04d}-{node:03d}"
            for shard in range(1, shards + 1) for node in range(1, replicas_per_shard + 2)]


def _cloudwatch_publishes(ctx: KeyContext) -> list[dict]:
    return [{"Sid": "CloudWatchPublishesEncrypted", "Effect": "Allow",
             "Principal": {"Service": "cloudwatch.amazonaws.com"},
             "Action": ["kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account}}}]


def _topic_policy(topic_arn: str, account: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "CloudWatchAlarmsPublish", "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish", "Resource": topic_arn,
            "Condition": {"StringEquals": {"aws:SourceAccount": account}},
        }],
    })


def _rds_alarms(args: CloudWatchAlarmsArgs, alarm: Callable[..., None]) -> None:
    """RDS alarms: CPU, freeable memory, free storage, connections against max_connections."""
    db = {"DBInstanceIdentifier": args.rds_instance_id}
    alarm("rds-cpu", f"RDS CPU above {args.rds_cpu_percent}% for 5 minutes",
          "AWS/RDS", "CPUUtilization", db, "Average", "GreaterThanThreshold", args.rds_cpu_percent)
    alarm("rds-freeable-memory", f"RDS freeable memory below {args.rds_freeable_memory_mib} MiB",
          "AWS/RDS", "FreeableMemory", db, "Average", "LessThanThreshold",
          args.rds_freeable_memory_mib * MIB)
    alarm("rds-free-storage", f"RDS free storage below {args.rds_free_storage_gib} GiB",
          "AWS/RDS", "FreeStorageSpace", db, "Minimum", "LessThanThreshold",
          args.rds_free_storage_gib * GIB, evaluation_periods=1)
    assert args.rds_max_connections is not None  # checks(): set together with rds_instance_id
    limit = args.rds_max_connections * args.rds_connections_percent // 100
    alarm("rds-connections",
          f"RDS connections above {args.rds_connections_percent}% of max_connections "
          f"({limit} of {args.rds_max_connections}): the PgBouncer budget is off",
          "AWS/RDS", "DatabaseConnections", db, "Maximum", "GreaterThanThreshold", limit)


def _redis_alarms(args: CloudWatchAlarmsArgs, alarm: Callable[..., None]) -> None:
    """Per Redis node: engine CPU, memory against maxmemory, evictions."""
    group = pulumi.Output.from_input(args.redis_replication_group_id)
    for short in redis_node_suffixes(args.redis_shards, args.redis_replicas_per_shard):
        node = {"CacheClusterId": group.apply(lambda g, s=short: f"{g}-{s}")}  # type: ignore[misc]
        alarm(f"redis-{short}-engine-cpu", f"Redis node {short}: engine CPU above "
              f"{args.redis_engine_cpu_percent}%", "AWS/ElastiCache", "EngineCPUUtilization",
              node, "Average", "GreaterThanThreshold", args.redis_engine_cpu_percent)
        alarm(f"redis-{short}-memory", f"Redis node {short}: memory above "
              f"{args.redis_memory_percent}% of maxmemory: at the limit {args.redis_eviction_policy} "
              "evicts keys with a TTL, and writes of keys without one fail", "AWS/ElastiCache",
              "DatabaseMemoryUsagePercentage", node, "Average", "GreaterThanThreshold",
              args.redis_memory_percent)
        alarm(f"redis-{short}-evictions", f"Redis node {short}: more than {args.redis_evictions} "
              f"evictions in 5 minutes: {args.redis_eviction_policy} is dropping keys with a TTL "
              "(cache entries, agent results, possibly sessions): the cluster is too small",
              "AWS/ElastiCache", "Evictions", node, "Sum", "GreaterThanThreshold", args.redis_evictions,
              period_seconds=300, evaluation_periods=1, missing="notBreaching")


def _sqs_alarms(args: CloudWatchAlarmsArgs, alarm: Callable[..., None]) -> None:
    """Per queue tier: oldest message age and backlog; per dead-letter queue: not empty."""
    for tier, queue_name in args.sqs_queue_names.items():
        queue = {"QueueName": queue_name}
        alarm(f"sqs-{tier}-oldest-message", f"Oldest {tier}-priority agent run waiting longer than "
              f"{args.sqs_oldest_message_age_seconds} s: the worker is not keeping up", "AWS/SQS",
              "ApproximateAgeOfOldestMessage", queue, "Maximum", "GreaterThanThreshold",
              args.sqs_oldest_message_age_seconds, missing="notBreaching")
        if args.sqs_backlog_messages is not None:
            alarm(f"sqs-{tier}-backlog", f"More than {args.sqs_backlog_messages} {tier}-priority agent runs "
                  "waiting for 5 minutes: more than the worker runs at maxReplicas", "AWS/SQS",
                  "ApproximateNumberOfMessagesVisible", queue, "Maximum", "GreaterThanThreshold",
                  args.sqs_backlog_messages, missing="notBreaching")
    for tier, dlq_name in args.sqs_dlq_names.items():
        alarm(f"sqs-{tier}-dlq-not-empty", f"{tier}-priority agent runs in the dead-letter queue: they "
              "failed every attempt", "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": dlq_name},
              "Maximum", "GreaterThanThreshold", 0, evaluation_periods=1, missing="notBreaching")


def _alb_alarms(args: CloudWatchAlarmsArgs, alarm: Callable[..., None]) -> None:
    """Per load-balanced app: p99 response time through the ALB."""
    for app, suffix in sorted(args.target_group_arn_suffixes.items()):
        alarm(f"alb-{app}-p99", f"{app}: p99 response time through the ALB above {args.latency_p99_ms} ms "
              f"for {args.latency_for_minutes} minutes", "AWS/ApplicationELB", "TargetResponseTime",
              {"LoadBalancer": args.load_balancer_arn_suffix, "TargetGroup": suffix}, "p99",
              "GreaterThanThreshold", args.latency_p99_ms / 1000,
              evaluation_periods=args.latency_for_minutes, missing="notBreaching")


class CloudWatchAlarms(pulumi.ComponentResource):
    """Data-tier alarms and the encrypted SNS topic they notify."""

    topic_arn: pulumi.Output[str]
    alarm_names: list[str]

    def __init__(self, name: str, args: CloudWatchAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:observability:CloudWatchAlarms", name, None, opts)
        require_valid(f"CloudWatchAlarms {name}", args)
        tags = {**args.tags, "component": "observability"}

        topic = self._topic(name, args, tags)
        self.alarm_names = []
        alarm = functools.partial(self._alarm, name, args.name_prefix, topic, tags)
        if args.rds_instance_id is not None:
            _rds_alarms(args, alarm)
        if args.redis_replication_group_id is not None:
            _redis_alarms(args, alarm)
        _sqs_alarms(args, alarm)
        if args.load_balancer_arn_suffix is not None:
            _alb_alarms(args, alarm)

        self.topic_arn = topic.arn
        self.register_outputs({"topic_arn": self.topic_arn, "alarm_names": self.alarm_names})

    def _topic(self, name: str, args: CloudWatchAlarmsArgs, tags: dict) -> aws.sns.Topic:
        """The KMS-encrypted SNS topic CloudWatch may publish to, and its e-mail subscription."""
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output().account_id
        key = topic_key(name, self, f"{args.name_prefix} alarm topic encryption", _cloudwatch_publishes, tags)
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=f"{args.name_prefix}-alarms",
            kms_master_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account).apply(lambda v: _topic_policy(v[0], v[1])),
            opts=child,
        )
        if args.alarm_email is not None:
            aws.sns.TopicSubscription(f"{name}-email", topic=topic.arn, protocol="email",
                                      endpoint=args.alarm_email, opts=child)
        return topic

    def _alarm(self, name: str, name_prefix: str, topic: aws.sns.Topic, tags: dict, role: str,
               description: str, namespace: str, metric: str, dimensions: dict, statistic: str,
               comparison: str, threshold: float, *, period_seconds: int = 60, evaluation_periods: int = 5,
               missing: str = "missing") -> None:
        """One metric alarm notifying the topic; ``statistic`` is a CloudWatch statistic or a
        percentile such as ``p99``."""
        physical = f"{name_prefix}-{role}"
        percentile = statistic.startswith("p")
        aws.cloudwatch.MetricAlarm(
            f"{name}-{role}",
            name=physical,
            alarm_description=description,
            namespace=namespace,
            metric_name=metric,
            dimensions=dimensions,
            statistic=None if percentile else statistic,
            extended_statistic=statistic if percentile else None,
            comparison_operator=comparison,
            threshold=threshold,
            period=period_seconds,
            evaluation_periods=evaluation_periods,
            treat_missing_data=missing,
            alarm_actions=[topic.arn],
            ok_actions=[topic.arn],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.alarm_names.append(physical)
