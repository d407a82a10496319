"""components/cloudwatch_alarms.py: encrypted alarm topic and data-tier alarms wired by inputs."""

from __future__ import annotations

import json

import pytest

from components.cloudwatch_alarms import CloudWatchAlarms, CloudWatchAlarmsArgs, redis_node_suffixes

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TARGETS = dict(rds_instance_id="cofounder-db", rds_max_connections=500, redis_replication_group_id="cofounder-redis",
               redis_shards=2, redis_replicas_per_shard=1,
               sqs_queue_names={"high": "agent-jobs-high", "low": "agent-jobs-low"},
               sqs_dlq_names={"high": "agent-jobs-high-dlq", "low": "agent-jobs-low-dlq"}, sqs_backlog_messages=200)


def _alarms(run_program, **overrides):
    args = CloudWatchAlarmsArgs(name_prefix="cofounder-test", **overrides)
    return run_program(lambda: CloudWatchAlarms("alarms", args))


def _by_name(p):
    return {a.inputs["name"]: a.inputs for a in p.of_type(ALARM)}


def test_defaults_an_encrypted_topic_cloudwatch_may_publish_to_and_no_alarms(run_program):
    p = _alarms(run_program)
    key = p.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    assert statements["CloudWatchPublishesEncrypted"]["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert statements["CloudWatchPublishesEncrypted"]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"}}
    topic = p.one("aws:sns/topic:Topic")
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    assert topic.inputs["name"] == "cofounder-test-alarms"
    assert topic.inputs["tags"]["component"] == "observability"
    (statement,) = json.loads(p.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])["Statement"]
    assert statement["Action"] == "sns:Publish" and statement["Resource"] == topic.outputs["arn"]
    assert not p.of_type(ALARM) and not p.of_type("aws:sns/topicSubscription:TopicSubscription")


def test_email_subscription_is_optional(run_program):
    sub = _alarms(run_program, alarm_email="oncall@example.com").one("aws:sns/topicSubscription:TopicSubscription")
    assert (sub.inputs["protocol"], sub.inputs["endpoint"]) == ("email", "oncall@example.com")


def test_targets_get_their_alarms_with_thresholds_in_cloudwatch_units(run_program):
    p = _alarms(run_program, **TARGETS)
    alarms = _by_name(p)
    topic_arn = p.one("aws:sns/topic:Topic").outputs["arn"]
    for alarm in alarms.values():
        assert alarm["alarmActions"] == [topic_arn] and alarm["okActions"] == [topic_arn]
        assert alarm["alarmDescription"]
    rds = {k: v for k, v in alarms.items() if "-rds-" in k}
    assert {v["dimensions"]["DBInstanceIdentifier"] for v in rds.values()} == {"cofounder-db"}
    assert rds["cofounder-test-rds-cpu"]["threshold"] == 80
    assert rds["cofounder-test-rds-freeable-memory"]["threshold"] == 256 * 1024 * 1024
    assert rds["cofounder-test-rds-freeable-memory"]["comparisonOperator"] == "LessThanThreshold"
    assert rds["cofounder-test-rds-free-storage"]["threshold"] == 10 * 1024 ** 3
    assert rds["cofounder-test-rds-connections"]["threshold"] == 400  # 80 % of 500
    assert rds["cofounder-test-rds-connections"]["metricName"] == "DatabaseConnections"
    # every priority tier: its oldest message, its backlog against the worker's capacity, its DLQ
    assert sorted(k for k in alarms if "-sqs-" in k) == [
        f"cofounder-test-sqs-{t}-{a}" for t in ("high", "low") for a in ("backlog", "dlq-not-empty", "oldest-message")]
    for tier in ("high", "low"):
        oldest = alarms[f"cofounder-test-sqs-{tier}-oldest-message"]
        assert (oldest["metricName"], oldest["threshold"], oldest["dimensions"]) == (
            "ApproximateAgeOfOldestMessage", 300, {"QueueName": f"agent-jobs-{tier}"})
        backlog = alarms[f"cofounder-test-sqs-{tier}-backlog"]
        assert (backlog["metricName"], backlog["threshold"], backlog["dimensions"], backlog["evaluationPeriods"]) == (
            "ApproximateNumberOfMessagesVisible", 200, {"QueueName": f"agent-jobs-{tier}"}, 5)
        dlq = alarms[f"cofounder-test-sqs-{tier}-dlq-not-empty"]
        assert (dlq["metricName"], dlq["comparisonOperator"], dlq["threshold"], dlq["dimensions"]) == (
            "ApproximateNumberOfMessagesVisible", "GreaterThanThreshold", 0, {"QueueName": f"agent-jobs-{tier}-dlq"})


def test_redis_alarms_cover_every_node_of_the_cluster(run_program):
    assert redis_node_suffixes(2, 1) == ["0001-001", "0001-002", "0002-001", "0002-002"]
    alarms = _by_name(_alarms(run_program, **TARGETS))
    nodes = {a["dimensions"]["CacheClusterId"] for n, a in alarms.items() if "-redis-" in n}
    assert nodes == {"cofounder-redis-0001-001", "cofounder-redis-0001-002",
                     "cofounder-redis-0002-001", "cofounder-redis-0002-002"}
    metrics = {a["metricName"] for n, a in alarms.items() if "-redis-" in n}
    assert metrics == {"EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "Evictions"}
    assert len([n for n in alarms if "-redis-" in n]) == 12
    # the eviction policy decides what these alarms mean: any eviction may drop a session
    evictions = alarms["cofounder-test-redis-0001-001-evictions"]
    assert (evictions["threshold"], evictions["period"], evictions["treatMissingData"]) == (0, 300, "notBreaching")
    assert "volatile-lfu" in evictions["alarmDescription"] and "sessions" in evictions["alarmDescription"]
    assert "volatile-lfu" in alarms["cofounder-test-redis-0001-001-memory"]["alarmDescription"]


def test_no_backlog_alarm_without_a_worker_capacity(run_program):
    alarms = _by_name(_alarms(run_program, **{**TARGETS, "sqs_backlog_messages": None}))
    assert not [n for n in alarms if n.endswith("-backlog")]
    assert "cofounder-test-sqs-high-oldest-message" in alarms


def test_threshold_overrides(run_program):
    alarms = _by_name(_alarms(run_program, **TARGETS, rds_connections_percent=90, redis_evictions=100,
                              sqs_oldest_message_age_seconds=900, rds_free_storage_gib=50))
    assert alarms["cofounder-test-rds-connections"]["threshold"] == 450
    assert alarms["cofounder-test-redis-0001-001-evictions"]["threshold"] == 100
    assert alarms["cofounder-test-sqs-high-oldest-message"]["threshold"] == 900
    assert alarms["cofounder-test-rds-free-storage"]["threshold"] == 50 * 1024 ** 3


def test_rds_needs_its_connection_limit(run_program):
    with pytest.raises(ValueError, match="rds_max_connections"):
        _alarms(run_program, rds_instance_id="db")


def test_every_child_is_parented_and_named_after_the_component(run_program):
    p = _alarms(run_program, alarm_email="a@example.com", **TARGETS)
    component = p.one("cofounder:observability:CloudWatchAlarms")
    for r in p.resources:
        if r is not component:
            assert r.parent == component.urn and r.name.startswith("alarms-"), r.urn


def test_the_albs_own_p99_is_watched_per_app(stack_program):
    """A slow edge or ALB hop shows even when the apps' histograms (timed inside the process) look fine."""
    for stack in ("dev", "staging", "prod"):
        program = stack_program(stack)
        lb = program.one("aws:lb/loadBalancer:LoadBalancer")
        groups = {g.inputs["tags"]["app"]: g.outputs["arnSuffix"] for g in program.of_type("aws:lb/targetGroup:TargetGroup")}
        alarms = {a.inputs["name"]: a.inputs for a in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
                  if a.inputs["metricName"] == "TargetResponseTime"}
        assert sorted(alarms) == [f"cofounder-{stack}-alb-backend-p99", f"cofounder-{stack}-alb-frontend-p99"]
        for app, suffix in groups.items():
            alarm = alarms[f"cofounder-{stack}-alb-{app}-p99"]
            assert alarm["namespace"] == "AWS/ApplicationELB"
            assert alarm["dimensions"] == {"LoadBalancer": lb.outputs["arnSuffix"], "TargetGroup": suffix}
            assert alarm["extendedStatistic"] == "p99" and "statistic" not in alarm
            assert alarm["threshold"] == 0.2  # cofounder:scaling.p99LatencyMs, in seconds
            assert alarm["evaluationPeriods"] == 5 and alarm["period"] == 60
