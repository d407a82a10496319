"""components/queue.py: the agent-execution queue, its DLQ and the worker's IAM policy."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from components import ComponentArgsError
from components.queue import PRODUCER_ACTIONS, WORKER_ACTIONS, Queue, QueueArgs

ARN = "arn:aws:sqs:us-east-1:123456789012:"


def _queue(run_program, capture=None, **overrides):
    args = QueueArgs(queue_name="demo-agent-execution", **overrides)

    def program():
        q = Queue("agents", args)
        if capture is not None:
            capture["queue"] = q
    return run_program(program)


def test_defaults(run_program):
    p = _queue(run_program)
    queue = p.one("aws:sqs/queue:Queue", "agents-queue")
    dlq = p.one("aws:sqs/queue:Queue", "agents-dlq")
    assert queue.inputs["name"] == "demo-agent-execution" and dlq.inputs["name"] == "demo-agent-execution-dlq"
    assert queue.inputs["visibilityTimeoutSeconds"] == 900 + 60
    assert queue.inputs["messageRetentionSeconds"] == 345600
    assert dlq.inputs["messageRetentionSeconds"] == 1209600
    assert queue.inputs["receiveWaitTimeSeconds"] == 20
    assert queue.inputs["sqsManagedSseEnabled"] is True and dlq.inputs["sqsManagedSseEnabled"] is True
    # BullMQ attempts: 2 in the seed -> two deliveries, then the DLQ
    assert json.loads(queue.inputs["redrivePolicy"]) == {"deadLetterTargetArn": f"{ARN}demo-agent-execution-dlq",
                                                         "maxReceiveCount": 2}
    assert queue.options["protect"] is True and dlq.options["protect"] is True


def test_dlq_accepts_redrives_only_from_the_main_queue(run_program):
    p = _queue(run_program)
    allow = p.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy")
    assert allow.inputs["queueUrl"] == p.one("aws:sqs/queue:Queue", "agents-dlq").outputs["url"]
    assert json.loads(allow.inputs["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue", "sourceQueueArns": [f"{ARN}demo-agent-execution"]}


def test_overrides(run_program):
    p = _queue(run_program, max_agent_run_seconds=3600, visibility_margin_seconds=120, max_receive_count=5,
               protect=False)
    queue = p.one("aws:sqs/queue:Queue", "agents-queue")
    assert queue.inputs["visibilityTimeoutSeconds"] == 3720
    assert json.loads(queue.inputs["redrivePolicy"])["maxReceiveCount"] == 5
    assert queue.options["protect"] is False
    assert p.one("aws:sqs/queue:Queue", "agents-dlq").options["protect"] is False


def test_visibility_above_twelve_hours_is_refused(run_program):
    from components.queue import Queue
    with pytest.raises(ValueError, match=r"maxAgentRunSeconds \+ visibilityMarginSeconds at most 43200 \(SQS's 12 h "
                                         r"limit\), got 43201") as err:
        run_program(lambda: Queue("q", QueueArgs(queue_name="q", max_agent_run_seconds=43200,
                                                 visibility_margin_seconds=1)))
    # a RunError: the Pulumi CLI prints the message alone, without a traceback
    assert isinstance(err.value, ComponentArgsError) and isinstance(err.value, pulumi.RunError)


def test_worker_policy_is_least_privilege(run_program):
    captured = {}
    _queue(run_program, capture=captured)
    policy = json.loads(_sync_await(captured["queue"].worker_policy_json.future()))
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert set(by_sid["AgentQueue"]["Action"]) == {
        "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes"}
    assert by_sid["AgentQueue"]["Resource"] == f"{ARN}demo-agent-execution"
    assert by_sid["DeadLetterDepth"] == {"Sid": "DeadLetterDepth", "Effect": "Allow",
                                         "Action": ["sqs:GetQueueAttributes"],
                                         "Resource": f"{ARN}demo-agent-execution-dlq"}
    for statement in policy["Statement"]:
        assert "*" not in json.dumps(statement)
    producer = json.loads(_sync_await(captured["queue"].producer_policy_json.future()))
    assert producer["Statement"][0]["Action"] == PRODUCER_ACTIONS
    assert set(PRODUCER_ACTIONS) < set(WORKER_ACTIONS)


@pytest.mark.parametrize("override, expected", [
    ({"maxAgentRunSeconds": 43200, "visibilityMarginSeconds": 60},
     "stacks/Pulumi.dev.yaml: cofounder:queues.visibilityMarginSeconds = 60 is not allowed: expected "
     "maxAgentRunSeconds + visibilityMarginSeconds at most 43200 (SQS's 12 h limit), got 43260"),
    ({"maxReceiveCount": 0},
     "stacks/Pulumi.dev.yaml: cofounder:queues.maxReceiveCount = 0 is not allowed: expected a value between 1 and 1000"),
    ({"messageRetentionSeconds": 604800, "dlqMessageRetentionSeconds": 86400},
     "stacks/Pulumi.dev.yaml: cofounder:queues.dlqMessageRetentionSeconds = 86400 is not allowed: expected at "
     "least messageRetentionSeconds (604800): a message's age carries over into the DLQ"),
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
    queue = p.one("aws:sqs/queue:Queue", "agent-queue-queue")
    assert queue.inputs["name"] == f"cofounder-{stack}-agent-execution"
    assert queue.inputs["visibilityTimeoutSeconds"] == 960
    assert queue.inputs["messageRetentionSeconds"] == retention
    assert json.loads(queue.inputs["redrivePolicy"])["maxReceiveCount"] == 2
    assert queue.options["protect"] is protect
    assert p.one("aws:sqs/queue:Queue", "agent-queue-dlq").options["protect"] is protect
    assert p.outputs["agentQueueUrl"] == f"https://sqs.us-east-1.amazonaws.com/123456789012/cofounder-{stack}-agent-execution"
