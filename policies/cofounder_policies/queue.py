"""SQS queues: dead-letter queues for poison messages, and server-side encryption."""

from __future__ import annotations

import json

from cofounder_policies.rules import MANDATORY, get, of_type, resource_rule, stack_rule

QUEUE = "aws:sqs/queue:Queue"


def _redrive(props) -> dict:
    raw = get(props, "redrivePolicy")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return {}
    return dict(raw) if raw else {}


def _dead_letter_queue(resources, settings):
    queues = of_type(resources, QUEUE)
    targets = {_redrive(q.props).get("deadLetterTargetArn") for q in queues} - {None}
    # During a preview a new DLQ's ARN is unknown; the engine's property dependencies still name it.
    target_urns = {d.urn for q in queues for d in (q.property_dependencies or {}).get("redrivePolicy", [])}
    for q in queues:
        redrive = _redrive(q.props)
        if redrive:
            if not redrive.get("deadLetterTargetArn") or not redrive.get("maxReceiveCount"):
                yield "redrivePolicy needs deadLetterTargetArn and maxReceiveCount", q.urn
            continue
        is_dlq = (q.urn in target_urns or get(q.props, "arn") in targets
                  or get(q.props, "redriveAllowPolicy"))
        if not is_dlq:
            yield "the queue has no redrivePolicy and is no other queue's dead-letter queue", q.urn


def _encrypted(props, settings):
    if get(props, "sqsManagedSseEnabled") is not True and not get(props, "kmsMasterKeyId"):
        yield "neither sqsManagedSseEnabled=true nor kmsMasterKeyId is set"


POLICIES = [
    stack_rule(
        "sqs-queue-dead-letter-queue",
        "A message that keeps failing must land in a dead-letter queue instead of being retried "
        "forever or dropped at the retention limit. Fix: give every work queue redrivePolicy="
        "{deadLetterTargetArn: <dlq arn>, maxReceiveCount: N}; a DLQ itself is recognised by being "
        "some queue's target (or by its redriveAllowPolicy).",
        MANDATORY, _dead_letter_queue),
    resource_rule(
        "sqs-queue-encrypted",
        "Agent jobs carry user input; queues must be encrypted at rest. Fix: "
        "sqsManagedSseEnabled=true, or kmsMasterKeyId for a customer-managed key.",
        MANDATORY, [QUEUE], _encrypted),
]
