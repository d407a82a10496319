"""The agent worker's scaler: the weighted backlog of every priority tier as one KEDA metric.

The worker's ScaledObject has one ``aws-sqs-queue`` trigger per tier (``queue_<tier>``), each
reading ``ApproximateNumberOfMessages + ApproximateNumberOfMessagesNotVisible`` (waiting plus
running, ``scaleOnInFlight``), and ``advanced.scalingModifiers`` combines them into one composite
metric, ``sum(weight x backlog)``, with the worker's concurrency per pod as its AverageValue
target. So the HPA KEDA owns asks for ``ceil(sum(weight x backlog) / concurrency)`` replicas (or
more, for CPU or memory), bounded by maxReplicas: every waiting or running message of every tier
has ``weight`` agent slots, so a burst in one tier adds pods for it without taking any from the
others.

Pure Python, no Pulumi: the AppService component builds the formula with these functions, the
preview's agent-queues report and the pack's ``sqs-queue-scaled-by-keda`` rule read it back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from capacity.numbers import plain

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TERM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*\*\s*([A-Za-z_][A-Za-z0-9_]*)\s*$")


def trigger_name(tier: str) -> str:
    """The ScaledObject trigger of one tier's queue (an identifier of KEDA's formula language, expr)."""
    return f"queue_{tier}"


def formula(weights: Iterable[tuple[str, float]]) -> str:
    """``scalingModifiers.formula`` for (tier, weight) pairs: ``2 * queue_high + 1 * queue_normal``."""
    return " + ".join(f"{plain(w)} * {trigger_name(t)}" for t, w in weights)


def formula_names(text: str) -> set[str]:
    """Every identifier a formula uses (trigger names, and any expr function)."""
    return set(_IDENTIFIER.findall(text))


def formula_weights(text: str) -> dict[str, float] | None:
    """Trigger name -> weight of a formula shaped like ``formula()`` writes it; None for any other shape."""
    weights = {}
    for term in text.split("+"):
        match = _TERM.match(term)
        if not match:
            return None
        weights[match.group(2)] = float(match.group(1))
    return weights


def desired_replicas(backlog: Mapping[str, int], weights: Mapping[str, float], concurrency_per_pod: int,
                     min_replicas: int, max_replicas: int) -> int:
    """What the composite metric asks for: ``ceil(sum(weight x backlog) / concurrency)`` in bounds."""
    slots = sum(weights[name] * count for name, count in backlog.items())
    return max(min_replicas, min(max_replicas, math.ceil(slots / concurrency_per_pod)))


def pre_stop_seconds(pod_spec: Mapping) -> int:
    """The longest ``lifecycle.preStop.sleep`` of a pod's containers (0 without one)."""
    longest = 0
    for container in pod_spec.get("containers") or []:
        sleep = (((container.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {})
        longest = max(longest, int(sleep.get("seconds") or 0))
    return longest
