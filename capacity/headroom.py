"""Pre-warmed headroom arithmetic: how much capacity the placeholder pods hold for a burst.

The placeholder pods run at a negative priority. When a real pod cannot be scheduled, the
scheduler preempts placeholders at once and the real pod starts on an already-running node;
the evicted placeholders go Pending, which makes the Cluster Autoscaler add a node in the
background. So a burst up to the headroom schedules in seconds, and only the part of a burst
beyond it waits for a new node (boot + join, typically 60-120 s on EKS).
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from capacity.hpa import quantity as parse_quantity

# Which suffixes each resource takes; the arithmetic is capacity.hpa.quantity's.
_CPU = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$")


def cpu_millicores(quantity: str | int | float) -> int:
    """A Kubernetes CPU quantity ("250m", "1", "1.5") in millicores."""
    if isinstance(quantity, (int, float)):
        return round(quantity * 1000)
    if not _CPU.match(quantity):
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    return round(parse_quantity(quantity) * 1000)


def memory_mib(quantity: str | int | float) -> int:
    """A Kubernetes memory quantity ("512Mi", "2Gi", "1G") in MiB, rounded down."""
    if isinstance(quantity, (int, float)):
        return int(quantity / 2**20)
    if not _MEMORY.match(quantity):
        raise ValueError(f"not a memory quantity: {quantity!r}")
    return math.floor(parse_quantity(quantity) / 2**20)


@dataclass(frozen=True)
class HeadroomFigures:
    """Capacity reserved by ``replicas`` placeholder pods of ``cpu_millicores``/``memory_mib`` each."""

    replicas: int
    cpu_millicores: int
    memory_mib: int

    @property
    def total_cpu_millicores(self) -> int:
        return self.replicas * self.cpu_millicores

    @property
    def total_memory_mib(self) -> int:
        return self.replicas * self.memory_mib

    def pods_absorbed(self, pod_cpu_millicores: int, pod_memory_mib: int) -> int:
        """Pods of the given request that schedule at once by preempting placeholders.

        Counted per placeholder, because a preempted placeholder frees its space on one node
        only: a pod larger than one placeholder needs several on the same node, which the
        scheduler does not guarantee, so it is counted as not absorbed.
        """
        if pod_cpu_millicores <= 0 or pod_memory_mib <= 0:
            raise ValueError("pod requests must be positive")
        per_placeholder = min(self.cpu_millicores // pod_cpu_millicores,
                              self.memory_mib // pod_memory_mib)
        return self.replicas * per_placeholder

    def as_dict(self) -> dict:
        return {"replicas": self.replicas, "cpuMillicores": self.cpu_millicores,
                "memoryMib": self.memory_mib, "totalCpuMillicores": self.total_cpu_millicores,
                "totalMemoryMib": self.total_memory_mib}


def placeholders(priority_classes: Iterable[dict],
                 deployments: Iterable[tuple[Hashable, dict]]) -> list[tuple[Hashable, HeadroomFigures]]:
    """The placeholder Deployments ``(key, manifest)`` and the capacity each holds.

    A placeholder is a Deployment whose pods use a PriorityClass (manifests ``{metadata, value}``)
    with a negative value, which is how ``components/headroom.py`` declares it.
    """
    negative = {(pc.get("metadata") or {}).get("name")
                for pc in priority_classes if (pc.get("value") or 0) < 0} - {None}
    found = []
    for key, deployment in deployments:
        spec = deployment.get("spec") or {}
        pod = (spec.get("template") or {}).get("spec") or {}
        if pod.get("priorityClassName") not in negative:
            continue
        requests = [(c.get("resources") or {}).get("requests") or {} for c in pod.get("containers") or []]
        found.append((key, HeadroomFigures(
            replicas=int(spec.get("replicas", 1)),
            cpu_millicores=sum(cpu_millicores(r.get("cpu", "0m")) for r in requests),
            memory_mib=sum(memory_mib(r.get("memory", "0Mi")) for r in requests),
        )))
    return found
