"""SQS rules: a dead-letter queue for every work queue, encryption, and the agent queues'
contract with their consumer: attempts, visibility against the longest run, KEDA on every tier."""

import dataclasses
import json

import pytest

from tests.conftest import STACKS
from tests.policies.helpers import resource, stack_violations, violations
from toolkit import policy_runner

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


# --- the agent queues' contract with their consumer ------------------------------------------

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
URL = "https://sqs.us-east-1.amazonaws.com/123456789012/"
ARN = "arn:aws:sqs:us-east-1:123456789012:"
TIERS = ("high", "low")


def _tier_queues(visibility=960, receives=2):
    found = []
    for tier in TIERS:
        name = f"agents-{tier}"
        dlq = resource(QUEUE, f"{name}-dlq", {"name": f"{name}-dlq", "arn": f"{ARN}{name}-dlq", "url": f"{URL}{name}-dlq",
                                              "sqsManagedSseEnabled": True})
        queue = resource(QUEUE, name, {
            "name": name, "arn": f"{ARN}{name}", "url": f"{URL}{name}", "sqsManagedSseEnabled": True,
            "visibilityTimeoutSeconds": visibility,
            "redrivePolicy": json.dumps({"deadLetterTargetArn": f"{ARN}{name}-dlq", "maxReceiveCount": receives})})
        found += [dlq, queue]
    return found


def _trigger(tier, url=None):
    return {"type": "aws-sqs-queue", "name": f"queue_{tier}",
            "metadata": {"queueURL": url if url is not None else f"{URL}agents-{tier}", "awsRegion": "us-east-1"}}


def _worker(triggers=None, formula="2 * queue_high + 1 * queue_low", grace=960, pre_stop=15, deps=None):
    spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "triggers": [{"type": "cpu", "metadata": {"value": "70"}}] + (
                triggers if triggers is not None else [_trigger(t) for t in TIERS])}
    if formula is not None:
        spec["advanced"] = {"scalingModifiers": {"formula": formula, "target": "5"}}
    so = resource(SCALED_OBJECT, "worker-scaledobject", {"metadata": {"name": "worker", "namespace": "cofounder"},
                                                         "spec": spec}, property_dependencies=deps)
    deployment = resource(DEPLOYMENT, "worker-deployment", {
        "metadata": {"name": "worker", "namespace": "cofounder"},
        "spec": {"template": {"spec": {"terminationGracePeriodSeconds": grace, "containers": [
            {"name": "worker", "lifecycle": {"preStop": {"sleep": {"seconds": pre_stop}}}}]}}}})
    return [so, deployment]


def _names(found):
    return [urn.rsplit("::", 1)[1] for _, urn in found]


def test_the_agent_queues_as_the_program_declares_them_pass():
    stack = _tier_queues() + _worker()
    for rule in ("sqs-queue-dead-letter-queue", "sqs-queue-max-receive-count", "sqs-queue-visibility-covers-agent-run",
                 "sqs-queue-scaled-by-keda"):
        assert stack_violations(rule, stack) == [], rule


def test_max_receive_count_must_match_the_attempts_setting():
    assert stack_violations("sqs-queue-max-receive-count", _tier_queues(receives=2)) == []
    found = stack_violations("sqs-queue-max-receive-count", _tier_queues(receives=5))
    assert _names(found) == ["agents-high", "agents-low"]
    assert found[0][0] == ("redrivePolicy.maxReceiveCount is 5, but the stack's agent runs get 2 attempts "
                           "(cofounder:queues.maxReceiveCount)")
    # the stack's own setting comes through the pack config (make docs writes it)
    assert stack_violations("sqs-queue-max-receive-count", _tier_queues(receives=5), {"maxReceiveCount": 5}) == []


def test_the_visibility_timeout_must_cover_the_longest_run():
    found = stack_violations("sqs-queue-visibility-covers-agent-run", _tier_queues(visibility=900) + _worker())
    assert _names(found) == ["agents-high", "agents-low"]
    assert found[0][0].startswith("visibilityTimeoutSeconds 900 does not cover the longest agent run (900 s")
    assert stack_violations("sqs-queue-visibility-covers-agent-run", _tier_queues(visibility=960) + _worker(),
                            {"maxAgentRunSeconds": 1200})
    # a queue without one gets SQS's 30 s
    queue = resource(QUEUE, "bare", {"name": "bare", "redrivePolicy": json.dumps(
        {"deadLetterTargetArn": "x", "maxReceiveCount": 2})})
    [(message, _)] = stack_violations("sqs-queue-visibility-covers-agent-run", [queue])
    assert message.startswith("visibilityTimeoutSeconds 30 ")


def test_the_consumers_grace_period_must_cover_its_pre_stop_and_the_longest_run():
    found = stack_violations("sqs-queue-visibility-covers-agent-run", _tier_queues() + _worker(grace=900))
    assert _names(found) == ["worker-deployment"]  # once, though it reads two queues
    assert found[0][0].startswith("terminationGracePeriodSeconds 900 of the queue's consumer is below its preStop "
                                  "pause + the longest agent run (915 s)")
    assert stack_violations("sqs-queue-visibility-covers-agent-run", _tier_queues() + _worker(grace=915)) == []


def test_every_tier_must_be_scaled_on():
    found = stack_violations("sqs-queue-scaled-by-keda", _tier_queues() + _worker(
        triggers=[_trigger("high")], formula="2 * queue_high"))
    assert _names(found) == ["agents-low"]
    assert "no KEDA ScaledObject has an aws-sqs-queue trigger on queue 'agents-low'" in found[0][0]
    # no ScaledObject at all: every tier is reported
    assert _names(stack_violations("sqs-queue-scaled-by-keda", _tier_queues())) == ["agents-high", "agents-low"]


def test_a_trigger_left_out_of_the_formula_scales_nothing():
    found = stack_violations("sqs-queue-scaled-by-keda", _tier_queues() + _worker(formula="2 * queue_high"))
    assert _names(found) == ["worker-scaledobject"]
    assert found[0][0].startswith("trigger 'queue_low' is not in scalingModifiers.formula")
    prometheus = {"type": "prometheus", "name": "active_agents", "metadata": {"query": "sum(x)"}}
    found = stack_violations("sqs-queue-scaled-by-keda", _tier_queues() + _worker(
        triggers=[_trigger(t) for t in TIERS] + [prometheus]))
    assert [m for m, _ in found] == [
        "trigger 'active_agents' is not in scalingModifiers.formula: KEDA replaces every external trigger by the "
        "formula's composite metric, so this one scales nothing"]
    # without scalingModifiers every trigger is its own metric: nothing to check
    assert stack_violations("sqs-queue-scaled-by-keda", _tier_queues() + _worker(
        triggers=[_trigger(t) for t in TIERS] + [prometheus], formula=None)) == []


def test_a_new_queue_whose_url_is_still_unknown_counts_through_the_dependency():
    queues = _tier_queues()
    unknown = [{**_trigger(t), "metadata": {"awsRegion": "us-east-1"}} for t in TIERS]
    stack = queues + _worker(triggers=unknown, deps={"spec": [q for q in queues if "dlq" not in q.name]})
    assert stack_violations("sqs-queue-scaled-by-keda", stack) == []
    assert stack_violations("sqs-queue-scaled-by-keda", queues + _worker(triggers=unknown))


AGENT_QUEUE_RULES = {"sqs-queue-dead-letter-queue", "sqs-queue-encrypted", "sqs-queue-max-receive-count",
                     "sqs-queue-visibility-covers-agent-run", "sqs-queue-scaled-by-keda"}


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] in AGENT_QUEUE_RULES] == []


def test_fire_through_the_pack_on_a_weakened_stack(stack_program):
    """dev with the low tier's trigger dropped from the worker's ScaledObject and its queues' visibility
    cut to the longest run: both rules fire as mandatory on the real resources."""
    dev = stack_program("dev")

    def weaken(r):
        if r.type == SCALED_OBJECT:
            spec = {**r.inputs["spec"], "triggers": [t for t in r.inputs["spec"]["triggers"]
                                                     if t.get("name") != "queue_low"]}
            return dataclasses.replace(r, inputs={**r.inputs, "spec": spec}, outputs={**r.outputs, "spec": spec})
        if r.type == QUEUE and "redrivePolicy" in r.inputs:
            return dataclasses.replace(r, inputs={**r.inputs, "visibilityTimeoutSeconds": 900},
                                       outputs={**r.outputs, "visibilityTimeoutSeconds": 900})
        return r
    results = policy_runner.run_policies("dev", dataclasses.replace(dev, resources=[weaken(r) for r in dev.resources]))
    fired = {(v["policy"], v["enforcement"], v["urn"].rsplit("::", 1)[1]) for v in results
             if v["policy"] in AGENT_QUEUE_RULES}
    assert ("sqs-queue-scaled-by-keda", "mandatory", "agent-queue-low-queue") in fired
    assert {("sqs-queue-visibility-covers-agent-run", "mandatory", f"agent-queue-{t}-queue")
            for t in ("high", "normal", "low")} <= fired
