"""SQS queues: dead-letter queues for poison messages, encryption, and the agent queues'
contract with their consumer (attempts, visibility against the longest run, KEDA on every tier)."""

from __future__ import annotations

import json

from capacity.queue_scaling import formula_names, pre_stop_seconds
from cofounder_policies.rules import MANDATORY, get, items, of_type, plain, resource_rule, stack_rule
from cofounder_policies.settings import setting

QUEUE = "aws:sqs/queue:Queue"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SQS_TRIGGER = "aws-sqs-queue"
#: Triggers KEDA keeps as the HPA's resource metrics; every other one feeds scalingModifiers.
RESOURCE_TRIGGERS = ("cpu", "memory")
#: SQS's default when a queue declares no visibility timeout (CreateQueue, VisibilityTimeout).
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 30
#: The kubelet's default when a pod declares no terminationGracePeriodSeconds.
DEFAULT_GRACE_PERIOD_SECONDS = 30


def _redrive(props) -> dict:
    raw = get(props, "redrivePolicy")
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return {}
    return dict(raw) if raw else {}


def _work_queues(resources) -> list:
    """The queues that feed consumers: every queue with a redrive policy (a DLQ has none)."""
    return [q for q in of_type(resources, QUEUE) if _redrive(q.props)]


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


def _max_receive_count(resources, settings):
    wanted = int(settings["maxReceiveCount"])
    for q in _work_queues(resources):
        count = _redrive(q.props).get("maxReceiveCount")
        if count is not None and int(count) != wanted:
            yield (f"redrivePolicy.maxReceiveCount is {int(count)}, but the stack's agent runs get {wanted} "
                   f"attempts (cofounder:queues.maxReceiveCount)"), q.urn


# --- the consumers of the work queues: KEDA ScaledObjects and the Deployments they scale -------

def _sqs_triggers(scaled_object) -> list[dict]:
    return [t for t in items(plain(get(scaled_object.props, "spec.triggers"))) if t.get("type") == SQS_TRIGGER]


def _reads(trigger: dict, queue) -> bool:
    """Whether an aws-sqs-queue trigger names this queue (its URL, or its name as KEDA allows)."""
    url = (trigger.get("metadata") or {}).get("queueURL")
    if not url:
        return False
    name, queue_url = get(queue.props, "name"), get(queue.props, "url")
    return url == queue_url or (name is not None and (url == name or url.endswith(f"/{name}")))


def _depends_on(scaled_object, queue) -> bool:
    """The ScaledObject's spec takes an output of the queue (its URL, unknown until it exists)."""
    return queue.urn in {d.urn for d in (scaled_object.property_dependencies or {}).get("spec", [])}


def _consumers(resources) -> dict[str, list]:
    """Work queue URN -> the ScaledObjects that read it (by URL, or by dependency while unknown)."""
    scaled_objects = of_type(resources, SCALED_OBJECT)
    found: dict[str, list] = {}
    for q in _work_queues(resources):
        found[q.urn] = [so for so in scaled_objects
                        if any(_reads(t, q) for t in _sqs_triggers(so))
                        or (_depends_on(so, q) and any(not (t.get("metadata") or {}).get("queueURL")
                                                       for t in _sqs_triggers(so)))]
    return found


def _formula_names(scaled_object) -> set[str] | None:
    formula = get(scaled_object.props, "spec.advanced.scalingModifiers.formula")
    return None if not formula else formula_names(str(formula))


def _scaled_on_every_queue(resources, settings):
    consumers = _consumers(resources)
    for q in _work_queues(resources):
        if not consumers[q.urn]:
            yield (f"no KEDA ScaledObject has an {SQS_TRIGGER} trigger on queue {get(q.props, 'name')!r}: "
                   "its backlog adds no worker"), q.urn
    for so in of_type(resources, SCALED_OBJECT):
        names = _formula_names(so)
        if names is None:
            continue
        for t in items(plain(get(so.props, "spec.triggers"))):
            if t.get("type") in RESOURCE_TRIGGERS:
                continue
            name = t.get("name")
            if not name or name not in names:
                yield (f"trigger {name or t.get('type')!r} is not in scalingModifiers.formula: KEDA replaces every "
                       "external trigger by the formula's composite metric, so this one scales nothing"), so.urn


def _deployment_of(resources, scaled_object):
    ref = get(scaled_object.props, "spec.scaleTargetRef", {})
    namespace = get(scaled_object.props, "metadata.namespace")
    for d in of_type(resources, DEPLOYMENT):
        if get(d.props, "metadata.name") == get(ref, "name") and get(d.props, "metadata.namespace") == namespace:
            return d
    return None


def _visibility_covers_run(resources, settings):
    longest = int(settings["maxAgentRunSeconds"])
    consumers = _consumers(resources)
    checked = set()
    for q in _work_queues(resources):
        visibility = get(q.props, "visibilityTimeoutSeconds")
        visibility = DEFAULT_VISIBILITY_TIMEOUT_SECONDS if visibility is None else int(visibility)
        if visibility <= longest:
            yield (f"visibilityTimeoutSeconds {visibility} does not cover the longest agent run ({longest} s, "
                   "cofounder:queues.maxAgentRunSeconds): a second worker receives a run the first still "
                   "executes"), q.urn
        for so in consumers[q.urn]:
            deployment = _deployment_of(resources, so)
            if deployment is None or deployment.urn in checked:
                continue
            checked.add(deployment.urn)
            pod = plain(get(deployment.props, "spec.template.spec", {})) or {}
            grace = pod.get("terminationGracePeriodSeconds")
            grace = DEFAULT_GRACE_PERIOD_SECONDS if grace is None else int(grace)
            needed = pre_stop_seconds(pod) + longest
            if grace < needed:
                yield (f"terminationGracePeriodSeconds {grace} of the queue's consumer is below its preStop "
                       f"pause + the longest agent run ({needed} s): a stopped pod is killed mid-run and the "
                       "run is retried"), deployment.urn


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
    stack_rule(
        "sqs-queue-max-receive-count",
        "Every agent queue moves a message to its DLQ after exactly the attempts the stack promises "
        "(the seed's attempts: 2): more retries repeat a failing LLM run and its cost, fewer drop "
        "runs a retry would save. Fix: redrivePolicy.maxReceiveCount = cofounder:queues.maxReceiveCount "
        "(the Queue component sets it on every tier).",
        MANDATORY, _max_receive_count,
        # `make docs` writes each stack's value into policies/config/<stack>.json (toolkit/docs.py DERIVED).
        config={"maxReceiveCount": setting("queues.maxReceiveCount")}),
    stack_rule(
        "sqs-queue-visibility-covers-agent-run",
        "While a worker runs an agent, no other worker may receive the same message, and a worker "
        "being stopped must finish its runs: every work queue's visibilityTimeoutSeconds exceeds the "
        "longest agent run, and the Deployment a ScaledObject scales on that queue has a "
        "terminationGracePeriodSeconds of at least its preStop sleep plus the longest run. Fix: "
        "raise cofounder:queues.visibilityMarginSeconds or the worker's terminationGracePeriodSeconds, "
        "or lower maxAgentRunSeconds.",
        MANDATORY, _visibility_covers_run,
        config={"maxAgentRunSeconds": setting("queues.maxAgentRunSeconds")}),
    stack_rule(
        "sqs-queue-scaled-by-keda",
        "Every work queue (every priority tier) must add workers when it backs up: some KEDA "
        "ScaledObject has an aws-sqs-queue trigger on it, and a ScaledObject with "
        "advanced.scalingModifiers names every non-resource trigger in its formula (KEDA replaces "
        "all external triggers by the formula's one composite metric, so a trigger left out of it "
        "scales nothing). Fix: one aws-sqs-queue trigger per tier queue, each named in the formula "
        "(AppService does both from the data tier's Queue).",
        MANDATORY, _scaled_on_every_queue),
]
