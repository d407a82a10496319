"""SQS rules: a dead-letter queue for every work queue, and encryption."""

import json

from tests.policies.helpers import resource, stack_violations, violations

QUEUE = "aws:sqs/queue:Queue"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:queue/agent-dlq"


def _stack(work_props):
    return [resource(QUEUE, "agent-dlq", {"arn": DLQ_ARN, "sqsManagedSseEnabled": True}),
            resource(QUEUE, "agent", {"arn": "arn:aws:sqs:us-east-1:123456789012:queue/agent", **work_props})]


def test_work_queue_with_redrive_to_its_dlq_passes():
    redrive = json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 3})
    assert stack_violations("sqs-queue-dead-letter-queue", _stack({"redrivePolicy": redrive})) == []


def test_work_queue_without_redrive_is_a_violation():
    found = dict((urn.rsplit("::", 1)[1], message) for message, urn in
                 stack_violations("sqs-queue-dead-letter-queue", _stack({})))
    # nothing points at the DLQ any more either, so both queues are reported
    assert set(found) == {"agent", "agent-dlq"} and "no redrivePolicy" in found["agent"]


def test_redrive_without_max_receive_count_is_a_violation():
    redrive = json.dumps({"deadLetterTargetArn": DLQ_ARN})
    assert stack_violations("sqs-queue-dead-letter-queue", _stack({"redrivePolicy": redrive}))


def test_a_dlq_known_only_through_property_dependencies_passes():
    dlq = resource(QUEUE, "agent-dlq", {"sqsManagedSseEnabled": True})
    work = resource(QUEUE, "agent", {"redrivePolicy": json.dumps({"deadLetterTargetArn": "x", "maxReceiveCount": 3})},
                    property_dependencies={"redrivePolicy": [dlq]})
    assert stack_violations("sqs-queue-dead-letter-queue", [dlq, work]) == []


def test_queue_encryption():
    assert violations("sqs-queue-encrypted", QUEUE, {"sqsManagedSseEnabled": True}) == []
    assert violations("sqs-queue-encrypted", QUEUE, {"kmsMasterKeyId": "alias/aws/sqs"}) == []
    assert violations("sqs-queue-encrypted", QUEUE, {"sqsManagedSseEnabled": False})
