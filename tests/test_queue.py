"""components/queue.py: one agent-execution queue and DLQ per priority tier, the IAM policies of
the worker and the producers, and the settings the apps read."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from components import ComponentArgsError
from components.queue import PRODUCER_ACTIONS, WORKER_ACTIONS, Queue, QueueArgs, QueueTier

ARN = "arn:aws:sqs:us-east-1:123456789012:"
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/"
TIERS = ("high", "normal", "low")


def _queue(run_program, capture=None, **overrides):
    args = QueueArgs(queue_name="demo-agent-execution", **overrides)

    def program():
        q = Queue("agents", args)
        if capture is not None:
            capture["queue"] = q
    return run_program(program)


def _value(output):
    return _sync_await(pulumi.Output.from_input(output).future())


def test_defaults_declare_three_tiers_with_the_same_rules(run_program):
    p = _queue(run_program)
    queues = p.of_type("aws:sqs/queue:Queue")
    assert sorted(q.name for q in queues) == sorted(
        [f"agents-{t}-queue" for t in TIERS] + [f"agents-{t}-dlq" for t in TIERS])
    for tier in TIERS:
        queue, dlq = p.one("aws:sqs/queue:Queue", f"agents-{tier}-queue"), p.one("aws:sqs/queue:Queue", f"agents-{tier}-dlq")
        assert queue.inputs["name"] == f"demo-agent-execution-{tier}"
        assert dlq.inputs["name"] == f"demo-agent-execution-{tier}-dlq"
        assert queue.inputs["visibilityTimeoutSeconds"] == 900 + 60
        assert queue.inputs["messageRetentionSeconds"] == 345600
        assert dlq.inputs["messageRetentionSeconds"] == 1209600
        assert queue.inputs["receiveWaitTimeSeconds"] == 20
        assert queue.inputs["sqsManagedSseEnabled"] is True and dlq.inputs["sqsManagedSseEnabled"] is True
        # BullMQ attempts: 2 in the seed -> two deliveries, then this tier's own DLQ
        assert json.loads(queue.inputs["redrivePolicy"]) == {
            "deadLetterTargetArn": f"{ARN}demo-agent-execution-{tier}-dlq", "maxReceiveCount": 2}
        assert queue.options["protect"] is True and dlq.options["protect"] is True
        assert queue.inputs["tags"]["agent-tier"] == tier


def test_each_dlq_accepts_redrives_only_from_its_own_tier(run_program):
    p = _queue(run_program)
    allows = p.of_type("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy")
    assert len(allows) == 3
    for tier in TIERS:
        allow = p.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", f"agents-{tier}-dlq-redrive-allow")
        assert allow.inputs["queueUrl"] == p.one("aws:sqs/queue:Queue", f"agents-{tier}-dlq").outputs["url"]
        assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
            "redrivePermission": "byQueue", "sourceQueueArns": [f"{ARN}demo-agent-execution-{tier}"]}


def test_overrides(run_program):
    p = _queue(run_program, tiers=[QueueTier(name="urgent", scaling_weight=3), QueueTier(name="batch",
                                                                                         scaling_weight=0.5)],
               default_tier="batch", max_agent_run_seconds=3600, visibility_margin_seconds=120,
               max_receive_count=5, message_retention_seconds=86400, protect=False)
    assert sorted(q.inputs["name"] for q in p.of_type("aws:sqs/queue:Queue")) == [
        "demo-agent-execution-batch", "demo-agent-execution-batch-dlq",
        "demo-agent-execution-urgent", "demo-agent-execution-urgent-dlq"]
    queue = p.one("aws:sqs/queue:Queue", "agents-urgent-queue")
    assert queue.inputs["visibilityTimeoutSeconds"] == 3720
    assert json.loads(queue.inputs["redrivePolicy"])["maxReceiveCount"] == 5
    assert all(q.options["protect"] is False for q in p.of_type("aws:sqs/queue:Queue"))


def test_policies_are_least_privilege_on_the_tier_queues_only(run_program):
    captured = {}
    _queue(run_program, capture=captured)
    queues = sorted(f"{ARN}demo-agent-execution-{t}" for t in TIERS)
    worker = json.loads(_value(captured["queue"].worker_policy_json))
    assert worker["Statement"] == [{"Sid": "ConsumeAgentRuns", "Effect": "Allow", "Action": WORKER_ACTIONS,
                                    "Resource": queues}]
    assert set(WORKER_ACTIONS) == {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}
    producer = json.loads(_value(captured["queue"].producer_policy_json))
    assert producer["Statement"] == [{"Sid": "EnqueueAgentRuns", "Effect": "Allow", "Action": PRODUCER_ACTIONS,
                                      "Resource": queues}]
    assert set(PRODUCER_ACTIONS) == {"sqs:SendMessage", "sqs:GetQueueUrl"}
    for policy in (worker, producer):
        assert "*" not in json.dumps(policy) and "dlq" not in json.dumps(policy)


def test_app_settings_hand_the_tiers_over_in_priority_order(run_program):
    captured = {}
    _queue(run_program, capture=captured)
    queue = captured["queue"]
    settings = {k: _value(v) for k, v in queue.app_settings.items()}
    assert settings == {
        "AGENT_QUEUE_TIERS": "high,normal,low",
        "AGENT_QUEUE_URLS": ",".join(f"{URL}demo-agent-execution-{t}" for t in TIERS),
        "AGENT_QUEUE_URL_HIGH": f"{URL}demo-agent-execution-high",
        "AGENT_QUEUE_URL_NORMAL": f"{URL}demo-agent-execution-normal",
        "AGENT_QUEUE_URL_LOW": f"{URL}demo-agent-execution-low",
        "AGENT_QUEUE_DEFAULT_TIER": "normal",
        "AGENT_QUEUE_WEIGHTS": "2,1,1",
        "AGENT_MAX_ATTEMPTS": "2",
        "AGENT_RETRY_BACKOFF_BASE_SECONDS": "5",
        "AGENT_MAX_RUN_SECONDS": "900",
        "AGENT_VISIBILITY_TIMEOUT_SECONDS": "960",
        "AGENT_CONCURRENCY": "5",
        "AGENT_RESULT_TTL_SECONDS": "3600",
    }
    assert queue.tiers == list(TIERS) and list(queue.queue_urls) == list(TIERS)
    assert queue.scaling_weights == {"high": 2.0, "normal": 1.0, "low": 1.0}


@pytest.mark.parametrize("overrides, message", [
    ({"max_agent_run_seconds": 43200, "visibility_margin_seconds": 10},
     r"maxAgentRunSeconds \+ visibilityMarginSeconds at most 43200 \(SQS's 12 h limit\), got 43210"),
    # the visibility timeout fits, but the retry delay set after a failure would end beyond 12 h
    ({"max_agent_run_seconds": 43000, "visibility_margin_seconds": 100, "retry_backoff_base_seconds": 200,
      "message_retention_seconds": 172800},
     r"retry_backoff_base_seconds = 200 is not allowed: expected a backoff that ends within 12 h of the receive"),
    ({"queue_name": "x" * 70}, r"within SQS's 80 characters"),
])
def test_what_sqs_would_refuse_is_refused_before_anything_is_declared(run_program, overrides, message):
    args = {"queue_name": "q", **overrides}
    with pytest.raises(ValueError, match=message) as err:
        run_program(lambda: Queue("q", QueueArgs(**args)))
    # a RunError: the Pulumi CLI prints the message alone, without a traceback
    assert isinstance(err.value, ComponentArgsError) and isinstance(err.value, pulumi.RunError)


def test_backoff_follows_the_seed(run_program):
    settings = QueueArgs(queue_name="q", max_receive_count=4)
    assert [settings.backoff_seconds(n) for n in (1, 2, 3)] == [5, 10, 20]  # delay: 5000, exponential
    assert settings.longest_backoff_seconds == 20
    assert QueueArgs(queue_name="q").longest_backoff_seconds == 5
    assert QueueArgs(queue_name="q", max_receive_count=1).longest_backoff_seconds == 0
    assert settings.longest_message_life_seconds == 4 * 960 + 5 + 10 + 20


@pytest.mark.parametrize("override, expected", [
    ({"maxAgentRunSeconds": 43200, "visibilityMarginSeconds": 60},
     "stacks/Pulumi.dev.yaml: cofounder:queues.visibilityMarginSeconds = 60 is not allowed: expected "
     "maxAgentRunSeconds + visibilityMarginSeconds at most 43200 (SQS's 12 h limit), got 43260"),
    ({"maxReceiveCount": 0},
     "stacks/Pulumi.dev.yaml: cofounder:queues.maxReceiveCount = 0 is not allowed: expected a value between 1 and 1000"),
    ({"messageRetentionSeconds": 604800, "dlqMessageRetentionSeconds": 86400},
     "stacks/Pulumi.dev.yaml: cofounder:queues.dlqMessageRetentionSeconds = 86400 is not allowed: expected at "
     "least messageRetentionSeconds (604800): a message's age carries over into the DLQ"),
    ({"maxAgentRunSeconds": 3600, "maxReceiveCount": 3, "messageRetentionSeconds": 7200},
     "stacks/Pulumi.dev.yaml: cofounder:queues.messageRetentionSeconds = 7200 is not allowed: expected at least "
     "10995 (maxReceiveCount 3 x visibility timeout 3660 + backoffs): SQS deletes a message at its retention "
     "limit, before its last attempt or the DLQ"),
    # exponential: 30 attempts would put the last delay at 5 x 2^28 s
    ({"maxReceiveCount": 30},
     "stacks/Pulumi.dev.yaml: cofounder:queues.retryBackoffBaseSeconds = 5 is not allowed: expected a backoff that "
     "ends within 12 h of the receive: the visibility timeout 960 + the last retry's delay 5 x 2^28 = 1342177280 "
     "exceeds 43200 (SQS refuses ChangeMessageVisibility beyond it)"),
    ({"tiers": [{"name": "high"}, {"name": "high"}]},
     "stacks/Pulumi.dev.yaml: cofounder:queues.tiers = [\"high\", \"high\"] is not allowed: expected distinct tier names"),
    ({"tiers": [{"name": "high"}, {"name": "low"}]},
     "stacks/Pulumi.dev.yaml: cofounder:queues.defaultTier = 'normal' is not allowed: expected one of the tiers "
     "(high, low)"),
    ({"tiers": []},
     "stacks/Pulumi.dev.yaml: cofounder:queues.tiers = [] is not allowed: expected between 1 and 10 tiers"),
    ({"tiers": [{"name": "High-1"}]},
     "stacks/Pulumi.dev.yaml: cofounder:queues.tiers[0].name = 'High-1' is not allowed: expected a lowercase name "
     "of letters and digits starting with a letter (at most 16)"),
    ({"tiers": [{"name": "high", "scalingWeight": 0.05}]},
     "stacks/Pulumi.dev.yaml: cofounder:queues.tiers[0].scalingWeight = 0.05 is not allowed: expected a value "
     "between 0.1 and 10"),
])
def test_bad_queue_config(run_stack_with, override, expected):
    from infra.config import ConfigError
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:queues": override})
    assert str(err.value) == expected


@pytest.mark.parametrize("stack, retention, protect", [
    ("dev", 86400, False), ("staging", 345600, False), ("prod", 345600, True)])
def test_stack_settings(stack_program, stack, retention, protect):
    p = stack_program(stack)
    for tier in TIERS:
        queue = p.one("aws:sqs/queue:Queue", f"agent-queue-{tier}-queue")
        assert queue.inputs["name"] == f"cofounder-{stack}-agent-execution-{tier}"
        assert queue.inputs["visibilityTimeoutSeconds"] == 960
        assert queue.inputs["messageRetentionSeconds"] == retention
        assert json.loads(queue.inputs["redrivePolicy"])["maxReceiveCount"] == 2
        assert queue.options["protect"] is protect
        assert p.one("aws:sqs/queue:Queue", f"agent-queue-{tier}-dlq").options["protect"] is protect
    assert p.outputs["agentQueueUrls"] == {t: f"{URL}cofounder-{stack}-agent-execution-{t}" for t in TIERS}
    assert p.outputs["agentDeadLetterQueueUrls"] == {
        t: f"{URL}cofounder-{stack}-agent-execution-{t}-dlq" for t in TIERS}
