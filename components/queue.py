"""Queue: the SQS agent-execution queue and its dead-letter queue.

The seed enqueues agent runs with BullMQ (``attempts: 2``); on AWS the same contract is an SQS
queue whose messages move to a dead-letter queue after ``max_receive_count`` deliveries: with 2,
a run is tried once and retried once, then parked in the DLQ for inspection and redrive.

The visibility timeout is the longest agent run plus a margin, so a message is never handed to a
second worker while the first is still running it (SQS caps it at 12 hours). Both queues are
encrypted (SQS-managed SSE), the DLQ accepts redrives only from this queue, and
``worker_policy_json`` is the least-privilege IAM policy the worker's IRSA role attaches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_aws as aws

from components import Between, require_valid

MAX_VISIBILITY_TIMEOUT_SECONDS = 43200

#: What a worker does with the queue: take a run, extend it while it runs, finish it, re-enqueue.
WORKER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                  "sqs:SendMessage", "sqs:GetQueueAttributes"]
#: What an API pod does: enqueue runs and read the queue depth.
PRODUCER_ACTIONS = ["sqs:SendMessage", "sqs:GetQueueAttributes"]


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    """``cofounder:queues``: the SQS agent-execution queue and its dead-letter queue."""

    #: The longest an agent run may take; the visibility timeout is this plus the margin.
    max_agent_run_seconds: Annotated[int, Between(1, 43200)] = 900
    #: Added to the longest run for the visibility timeout (worker start-up, result upload).
    visibility_margin_seconds: Annotated[int, Between(0, 3600)] = 60
    #: Deliveries before a message moves to the DLQ; the seed's BullMQ `attempts: 2`.
    max_receive_count: Annotated[int, Between(1, 1000)] = 2
    #: How long an unconsumed message stays in the main queue (4 days).
    message_retention_seconds: Annotated[int, Between(60, 1209600)] = 345600
    #: How long a dead message stays in the DLQ (14 days, the SQS maximum).
    dlq_message_retention_seconds: Annotated[int, Between(60, 1209600)] = 1209600
    #: Pulumi ``protect`` on both queues.
    protect: bool = True

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.max_agent_run_seconds + self.visibility_margin_seconds

    def checks(self):
        if self.visibility_timeout_seconds > MAX_VISIBILITY_TIMEOUT_SECONDS:
            yield ("visibility_margin_seconds", self.visibility_margin_seconds,
                   f"maxAgentRunSeconds + visibilityMarginSeconds at most {MAX_VISIBILITY_TIMEOUT_SECONDS} "
                   f"(SQS's 12 h limit), got {self.visibility_timeout_seconds}")
        if self.dlq_message_retention_seconds < self.message_retention_seconds:
            yield ("dlq_message_retention_seconds", self.dlq_message_retention_seconds,
                   f"at least messageRetentionSeconds ({self.message_retention_seconds}): a message's "
                   f"age carries over into the DLQ")


@dataclass(frozen=True, kw_only=True)
class QueueArgs(QueueSettings):
    """Settings plus the wiring."""

    #: Physical name of the main queue; the DLQ is ``<queue_name>-dlq``.
    queue_name: str
    #: Long polling: receives wait up to this long for a message instead of returning empty.
    receive_wait_time_seconds: int = 20
    tags: dict[str, str] = field(default_factory=dict)


def queue_policy(queue_arn: str, dlq_arn: str, actions: list[str]) -> str:
    """IAM policy: ``actions`` on the main queue, queue attributes (depth) of the DLQ, nothing else."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "AgentQueue", "Effect": "Allow", "Action": actions, "Resource": queue_arn},
            {"Sid": "DeadLetterDepth", "Effect": "Allow", "Action": ["sqs:GetQueueAttributes"],
             "Resource": dlq_arn},
        ],
    })


class Queue(pulumi.ComponentResource):
    """An encrypted SQS queue with a dead-letter queue and the IAM policies to use it."""

    queue_name: pulumi.Output[str]
    dlq_name: pulumi.Output[str]
    queue_url: pulumi.Output[str]
    queue_arn: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    dlq_arn: pulumi.Output[str]
    #: For the agent worker's IrsaRole (``IrsaRoleArgs.policy_json``).
    worker_policy_json: pulumi.Output[str]
    #: For the API's IrsaRole: enqueue only.
    producer_policy_json: pulumi.Output[str]

    def __init__(self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:Queue", name, None, opts)
        require_valid(f"Queue {name}", args)
        tags = {**args.tags, "component": "data"}
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)

        dlq = aws.sqs.Queue(
            f"{name}-dlq",
            name=f"{args.queue_name}-dlq",
            message_retention_seconds=args.dlq_message_retention_seconds,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=stateful,
        )
        queue = aws.sqs.Queue(
            f"{name}-queue",
            name=args.queue_name,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=args.message_retention_seconds,
            receive_wait_time_seconds=args.receive_wait_time_seconds,
            sqs_managed_sse_enabled=True,
            redrive_policy=dlq.arn.apply(lambda arn: json.dumps({
                "deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count})),
            tags=tags,
            opts=stateful,
        )
        # A separate resource: inline on the DLQ it would need the main queue's ARN, which needs the DLQ's.
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq-redrive-allow",
            queue_url=dlq.url,
            redrive_allow_policy=queue.arn.apply(lambda arn: json.dumps({
                "redrivePermission": "byQueue", "sourceQueueArns": [arn]})),
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.queue_name = queue.name
        self.dlq_name = dlq.name
        self.queue_url = queue.url
        self.queue_arn = queue.arn
        self.dlq_url = dlq.url
        self.dlq_arn = dlq.arn
        self.worker_policy_json = pulumi.Output.all(queue.arn, dlq.arn).apply(
            lambda v: queue_policy(v[0], v[1], WORKER_ACTIONS))
        self.producer_policy_json = pulumi.Output.all(queue.arn, dlq.arn).apply(
            lambda v: queue_policy(v[0], v[1], PRODUCER_ACTIONS))
        self.register_outputs({
            "queue_url": self.queue_url,
            "queue_arn": self.queue_arn,
            "dlq_url": self.dlq_url,
            "worker_policy_json": self.worker_policy_json,
        })
