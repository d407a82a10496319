"""What a node group can hold: allocatable CPU and memory per EC2 instance type on EKS.

Allocatable is what the kubelet offers pods after the EKS AMI's reservations (the formulas in
the EKS AMI's bootstrap): kube-reserved memory 255 MiB + 11 MiB per pod slot, 100 MiB eviction
threshold, kube-reserved CPU 6% of the first core, 1% of the second, 0.5% of cores 3-4 and
0.25% of the rest. Memory capacity is taken as 97% of the nominal size. Pod slots are the VPC
CNI's ENI limit (no prefix delegation).
"""

from __future__ import annotations

from dataclasses import dataclass

from capacity import classes

#: instance type -> (vCPU, memory GiB, max pods): the EC2 rows of capacity/instance-classes.yaml,
#: which are the types a node group may use (capacity/classes.py).
INSTANCE_TYPES: dict[str, tuple[int, float, int]] = {
    name: (c.vcpus, c.memory_gib, c.max_pods or 0) for name, c in classes.of("ec2").items()}


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
