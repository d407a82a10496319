"""What a node group can hold: allocatable CPU and memory per EC2 instance type on EKS.

Allocatable is what the kubelet offers pods after the EKS AMI's reservations (the formulas in
the EKS AMI's bootstrap): kube-reserved memory 255 MiB + 11 MiB per pod slot, 100 MiB eviction
threshold, kube-reserved CPU 6% of the first core, 1% of the second, 0.5% of cores 3-4 and
0.25% of the rest. Memory capacity is taken as 97% of the nominal size. Pod slots are the VPC
CNI's ENI limit (no prefix delegation).
"""

from __future__ import annotations

from dataclasses import dataclass

#: instance type -> (vCPU, memory GiB, max pods). A small table of the families this project uses.
INSTANCE_TYPES: dict[str, tuple[int, int, int]] = {
    "t3.medium": (2, 4, 17), "t3.large": (2, 8, 35), "t3.xlarge": (4, 16, 58),
    "t3a.medium": (2, 4, 17), "t3a.large": (2, 8, 35), "t3a.xlarge": (4, 16, 58),
    "m6i.large": (2, 8, 29), "m6i.xlarge": (4, 16, 58), "m6i.2xlarge": (8, 32, 58),
    "m6i.4xlarge": (16, 64, 234),
    "m7i.large": (2, 8, 29), "m7i.xlarge": (4, 16, 58), "m7i.2xlarge": (8, 32, 58),
    "m6g.large": (2, 8, 29), "m6g.xlarge": (4, 16, 58), "m6g.2xlarge": (8, 32, 58),
    "m7g.large": (2, 8, 29), "m7g.xlarge": (4, 16, 58), "m7g.2xlarge": (8, 32, 58),
    "c6i.large": (2, 4, 29), "c6i.xlarge": (4, 8, 58), "c6i.2xlarge": (8, 16, 58),
    "c7i.large": (2, 4, 29), "c7i.xlarge": (4, 8, 58), "c7i.2xlarge": (8, 16, 58),
    "r6i.large": (2, 16, 29), "r6i.xlarge": (4, 32, 58), "r6i.2xlarge": (8, 64, 58),
}


@dataclass(frozen=True)
class Allocatable:
    cpu_millicores: int
    memory_mib: int
    pods: int


def _reserved_cpu_millicores(vcpus: int) -> int:
    steps = [(1, 0.06), (1, 0.01), (2, 0.005), (max(vcpus - 4, 0), 0.0025)]
    total, left = 0.0, vcpus
    for cores, share in steps:
        used = min(cores, left)
        total += used * 1000 * share
        left -= used
    return round(total)


def allocatable(instance_type: str) -> Allocatable:
    """Allocatable resources of one node; KeyError for a type missing from ``INSTANCE_TYPES``."""
    vcpus, memory_gib, pods = INSTANCE_TYPES[instance_type]
    # The OS sees about 3% less than the nominal size (m6i.large: ~7.7 of 8 GiB).
    memory = int(memory_gib * 1024 * 0.97) - (255 + 11 * pods) - 100
    return Allocatable(cpu_millicores=vcpus * 1000 - _reserved_cpu_millicores(vcpus),
                       memory_mib=memory, pods=pods)
