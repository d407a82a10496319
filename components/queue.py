"""Queue: the SQS agent-execution queues, one per priority tier, each with its dead-letter queue.

The seed enqueues agent runs with BullMQ (``priority: getUserPriority(userId)``, ``attempts: 2``,
``backoff: {type: 'exponential', delay: 5000}``, ``concurrency: 5``). SQS has no message
priority, so each priority tier is its own queue (``<queue_name>-<tier>``, highest tier first in
``tiers``), all with the same encryption (SQS-managed SSE), retention and redrive rules:

- attempts: a message moves to its tier's DLQ (``<queue_name>-<tier>-dlq``) after
  ``max_receive_count`` deliveries; with 2, a run is tried once and retried once;
- backoff: the worker's job. On a failed attempt it calls ``ChangeMessageVisibility`` with
  ``retry_backoff_base_seconds x 2^(receive count - 1)``; SQS refuses a visibility that ends
  more than 12 hours after the receive (API_ChangeMessageVisibility: "The maximum is 12 hours";
  https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_ChangeMessageVisibility.html),
  so the visibility timeout plus the longest backoff is checked against that limit;
- the visibility timeout is the longest agent run plus a margin, so a message is never handed to
  a second worker while the first still runs it (the worker ends a run at ``max_agent_run_seconds``).

Each DLQ accepts redrives only from its own tier's queue. ``worker_policy_json`` (receive,
delete, change visibility) and ``producer_policy_json`` (send, get the URL) are the
least-privilege IAM policies of the consumer's and the producers' IRSA roles, on the tier queues
only. ``app_settings`` is what both read from the ``cofounder-queue`` ConfigMap: the tier names
and URLs in priority order, the attempts, the backoff base, the longest run and the concurrency.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_aws as aws

from capacity.numbers import plain
from components import Between, Matches, require_valid

#: SQS's ceiling on a visibility timeout, and on a message's visibility after a receive.
MAX_VISIBILITY_TIMEOUT_SECONDS = 43200
#: SQS queue names: up to 80 characters (CreateQueue, QueueName).
MAX_QUEUE_NAME_LENGTH = 80
MAX_TIERS = 10
#: A tier name is part of the queue name, an environment variable (AGENT_QUEUE_URL_<TIER>) and
#: a KEDA trigger name used in the scaler's formula (an expr identifier), so letters and digits only.
TIER_NAME = Matches(r"[a-z][a-z0-9]{0,15}", "a lowercase name of letters and digits starting with a letter "
                                              "(at most 16)")

#: What the agent worker does with a message: take it, finish it, or put it back later (backoff).
WORKER_ACTIONS = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
#: What a producer (the API) does: enqueue a run in the tier of the user's priority.
PRODUCER_ACTIONS = ["sqs:SendMessage", "sqs:GetQueueUrl"]


@dataclass(frozen=True, kw_only=True)
class QueueTier:
    """One entry of ``cofounder:queues.tiers``: a priority tier, its queue and its DLQ."""

    #: Tier name: the queue is ``cofounder-<stack>-agent-execution-<name>``, its URL AGENT_QUEUE_URL_<NAME>.
    name: Annotated[str, TIER_NAME]
    #: Agent slots the worker's scaler keeps per message of this tier (waiting or running): above 1
    #: keeps free slots for the tier's next runs, below 1 lets its backlog wait for slots.
    scaling_weight: Annotated[float, Between(0.1, 10)] = 1.0


def default_tiers() -> list[QueueTier]:
    """high, normal, low; ``high`` keeps one spare slot per message so its next run starts at once."""
    return [QueueTier(name="high", scaling_weight=2.0), QueueTier(name="normal"), QueueTier(name="low")]


@dataclass(frozen=True, kw_only=True)
class QueueSettings:
    """``cofounder:queues``: the agent-execution queues (one per priority tier) and the run contract."""

    #: Priority tiers, highest first: one queue and DLQ each; the worker gets them in this order.
    tiers: list[QueueTier] = field(default_factory=default_tiers)
    #: The tier a producer enqueues into when it knows no priority for the user.
    default_tier: Annotated[str, TIER_NAME] = "normal"
    #: The longest an agent run may take (the worker ends it there); the visibility timeout is this plus the margin.
    max_agent_run_seconds: Annotated[int, Between(1, 43200)] = 900
    #: Added to the longest run for the visibility timeout (the worker reports a timed-out run).
    visibility_margin_seconds: Annotated[int, Between(10, 3600)] = 60
    #: Deliveries before a message moves to its DLQ; the seed's BullMQ `attempts: 2`.
    max_receive_count: Annotated[int, Between(1, 1000)] = 2
    #: The first retry's delay; retry n waits this x 2^(n-1) (the seed's exponential backoff, 5000 ms).
    retry_backoff_base_seconds: Annotated[int, Between(0, 43200)] = 5
    #: Agent runs one worker pod executes at once (the seed's concurrency 5): the scaler's target per pod.
    concurrency_per_pod: Annotated[int, Between(1, 100)] = 5
    #: How long a run's result stays in Redis (the seed's SETEX result:<job id> 3600).
    result_ttl_seconds: Annotated[int, Between(60, 604800)] = 3600
    #: How long an unconsumed message stays in its tier's queue (4 days).
    message_retention_seconds: Annotated[int, Between(60, 1209600)] = 345600
    #: How long a dead message stays in a DLQ (14 days, the SQS maximum).
    dlq_message_retention_seconds: Annotated[int, Between(60, 1209600)] = 1209600
    #: Pulumi ``protect`` on every queue and DLQ.
    protect: bool = True

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.max_agent_run_seconds + self.visibility_margin_seconds

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def backoff_seconds(self, failed_attempt: int) -> int:
        """The delay the worker sets after attempt ``failed_attempt`` (1-based) fails."""
        return self.retry_backoff_base_seconds * 2 ** (failed_attempt - 1)

    @property
    def longest_backoff_seconds(self) -> int:
        """The last retry's delay; the final attempt's failure goes to the DLQ, not into a backoff."""
        return self.backoff_seconds(self.max_receive_count - 1) if self.max_receive_count > 1 else 0

    @property
    def longest_message_life_seconds(self) -> int:
        """Every attempt at its full visibility timeout, plus every backoff between them."""
        backoffs = sum(self.backoff_seconds(n) for n in range(1, self.max_receive_count))
        return self.max_receive_count * self.visibility_timeout_seconds + backoffs

    def checks(self):
        names = self.tier_names
        if not 1 <= len(names) <= MAX_TIERS:
            yield "tiers", names, f"between 1 and {MAX_TIERS} tiers"
        elif len(set(names)) != len(names):
            yield "tiers", names, "distinct tier names"
        elif self.default_tier not in names:
            yield "default_tier", self.default_tier, "one of the tiers (" + ", ".join(names) + ")"
        if self.visibility_timeout_seconds > MAX_VISIBILITY_TIMEOUT_SECONDS:
            yield ("visibility_margin_seconds", self.visibility_margin_seconds,
                   f"maxAgentRunSeconds + visibilityMarginSeconds at most {MAX_VISIBILITY_TIMEOUT_SECONDS} "
                   f"(SQS's 12 h limit), got {self.visibility_timeout_seconds}")
        elif self.visibility_timeout_seconds + self.longest_backoff_seconds > MAX_VISIBILITY_TIMEOUT_SECONDS:
            yield ("retry_backoff_base_seconds", self.retry_backoff_base_seconds,
                   f"a backoff that ends within 12 h of the receive: the visibility timeout "
                   f"{self.visibility_timeout_seconds} + the last retry's delay {self.retry_backoff_base_seconds} "
                   f"x 2^{self.max_receive_count - 2} = {self.longest_backoff_seconds} exceeds "
                   f"{MAX_VISIBILITY_TIMEOUT_SECONDS} (SQS refuses ChangeMessageVisibility beyond it)")
        if self.message_retention_seconds < self.longest_message_life_seconds:
            yield ("message_retention_seconds", self.message_retention_seconds,
                   f"at least {self.longest_message_life_seconds} (maxReceiveCount {self.max_receive_count} x "
                   f"visibility timeout {self.visibility_timeout_seconds} + backoffs): SQS deletes a message "
                   f"at its retention limit, before its last attempt or the DLQ")
        if self.dlq_message_retention_seconds < self.message_retention_seconds:
            yield ("dlq_message_retention_seconds", self.dlq_message_retention_seconds,
                   f"at least messageRetentionSeconds ({self.message_retention_seconds}): a message's "
                   f"age carries over into the DLQ")


@dataclass(frozen=True, kw_only=True)
class QueueArgs(QueueSettings):
    """Settings plus the wiring."""

    #: Physical name prefix: each tier's queue is ``<queue_name>-<tier>``, its DLQ ``<queue_name>-<tier>-dlq``.
    queue_name: str
    #: Long polling: receives wait up to this long for a message instead of returning empty.
    receive_wait_time_seconds: int = 20
    tags: dict[str, str] = field(default_factory=dict)

    def checks(self):
        yield from QueueSettings.checks(self)
        longest = max((len(n) for n in self.tier_names), default=0)
        if len(self.queue_name) + 1 + longest + len("-dlq") > MAX_QUEUE_NAME_LENGTH:
            yield ("queue_name", self.queue_name,
                   f"a prefix that leaves '<prefix>-<tier>-dlq' within SQS's {MAX_QUEUE_NAME_LENGTH} characters")


def queue_policy(sid: str, actions: Sequence[str], queue_arns: Sequence[str]) -> str:
    """IAM policy: ``actions`` on exactly these queues (the tiers, not their DLQs), nothing else."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": sorted(queue_arns)}]})


def env_name(tier: str) -> str:
    """``AGENT_QUEUE_URL_<TIER>``: where the apps find one tier's queue URL."""
    return f"AGENT_QUEUE_URL_{tier.upper()}"


class Queue(pulumi.ComponentResource):
    """One encrypted SQS queue and DLQ per priority tier, the IAM policies to use them and the
    settings the apps read."""

    #: Tier names, highest priority first.
    tiers: list[str]
    #: Per tier (in priority order): the queue's name, URL and ARN, and its DLQ's.
    queue_names: dict[str, pulumi.Output[str]]
    queue_urls: dict[str, pulumi.Output[str]]
    queue_arns: dict[str, pulumi.Output[str]]
    dlq_names: dict[str, pulumi.Output[str]]
    dlq_urls: dict[str, pulumi.Output[str]]
    dlq_arns: dict[str, pulumi.Output[str]]
    #: Per tier: the agent slots the worker's scaler keeps per message (``QueueTier.scaling_weight``).
    scaling_weights: dict[str, float]
    #: For the agent worker's IrsaRole (``IrsaRoleArgs.policy_json``): receive, delete, change visibility.
    worker_policy_json: pulumi.Output[str]
    #: For the producers' IrsaRoles (the API): send and get the queue URL only.
    producer_policy_json: pulumi.Output[str]
    #: The ConfigMap data the apps load (``AGENT_QUEUE_*``, ``AGENT_*``).
    app_settings: dict[str, pulumi.Input[str]]

    def __init__(self, name: str, args: QueueArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:Queue", name, None, opts)
        require_valid(f"Queue {name}", args)
        self.tiers = args.tier_names
        self.queue_names, self.queue_urls, self.queue_arns = {}, {}, {}
        self.dlq_names, self.dlq_urls, self.dlq_arns = {}, {}, {}
        for tier in self.tiers:
            queue, dlq = self._tier(name, tier, args)
            self.queue_names[tier], self.queue_urls[tier], self.queue_arns[tier] = queue.name, queue.url, queue.arn
            self.dlq_names[tier], self.dlq_urls[tier], self.dlq_arns[tier] = dlq.name, dlq.url, dlq.arn
        self.scaling_weights = {t.name: t.scaling_weight for t in args.tiers}
        arns = pulumi.Output.all(*self.queue_arns.values())
        self.worker_policy_json = arns.apply(lambda a: queue_policy("ConsumeAgentRuns", WORKER_ACTIONS, a))
        self.producer_policy_json = arns.apply(lambda a: queue_policy("EnqueueAgentRuns", PRODUCER_ACTIONS, a))
        self.app_settings = self._app_settings(args)
        self.register_outputs({
            "queue_urls": self.queue_urls,
            "queue_arns": self.queue_arns,
            "dlq_urls": self.dlq_urls,
            "worker_policy_json": self.worker_policy_json,
            "producer_policy_json": self.producer_policy_json,
        })

    def _tier(self, name: str, tier: str, args: QueueArgs) -> tuple[aws.sqs.Queue, aws.sqs.Queue]:
        """``<queue_name>-<tier>`` and its DLQ, which accepts redrives from it alone."""
        tags = {**args.tags, "component": "data", "agent-tier": tier}
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        dlq = aws.sqs.Queue(
            f"{name}-{tier}-dlq",
            name=f"{args.queue_name}-{tier}-dlq",
            message_retention_seconds=args.dlq_message_retention_seconds,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=stateful,
        )
        queue = aws.sqs.Queue(
            f"{name}-{tier}-queue",
            name=f"{args.queue_name}-{tier}",
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=args.message_retention_seconds,
            receive_wait_time_seconds=args.receive_wait_time_seconds,
            sqs_managed_sse_enabled=True,
            redrive_policy=dlq.arn.apply(lambda arn: json.dumps({
                "deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count})),
            tags=tags,
            opts=stateful,
        )
        # A separate resource: inline on the DLQ it would need the queue's ARN, which needs the DLQ's.
        aws.sqs.RedriveAllowPolicy(
            f"{name}-{tier}-dlq-redrive-allow",
            queue_url=dlq.url,
            redrive_allow_policy=queue.arn.apply(lambda arn: json.dumps({
                "redrivePermission": "byQueue", "sourceQueueArns": [arn]})),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return queue, dlq

    def _app_settings(self, args: QueueArgs) -> dict[str, pulumi.Input[str]]:
        """What producers and the worker read: the tiers in priority order and the run contract."""
        urls = [self.queue_urls[t] for t in self.tiers]
        return {
            "AGENT_QUEUE_TIERS": ",".join(self.tiers),
            "AGENT_QUEUE_URLS": pulumi.Output.all(*urls).apply(lambda u: ",".join(u)),
            **{env_name(t): self.queue_urls[t] for t in self.tiers},
            "AGENT_QUEUE_DEFAULT_TIER": args.default_tier,
            "AGENT_QUEUE_WEIGHTS": ",".join(plain(self.scaling_weights[t]) for t in self.tiers),
            "AGENT_MAX_ATTEMPTS": str(args.max_receive_count),
            "AGENT_RETRY_BACKOFF_BASE_SECONDS": str(args.retry_backoff_base_seconds),
            "AGENT_MAX_RUN_SECONDS": str(args.max_agent_run_seconds),
            "AGENT_VISIBILITY_TIMEOUT_SECONDS": str(args.visibility_timeout_seconds),
            "AGENT_CONCURRENCY": str(args.concurrency_per_pod),
            "AGENT_RESULT_TTL_SECONDS": str(args.result_ttl_seconds),
        }
