"""Headroom: pre-warmed cluster capacity held by low-priority placeholder pods.

The seed's cold-start mitigation ("use pre-warmed pods"): a Deployment of pause containers
whose PriorityClass is negative and never preempts. The placeholders request real CPU and
memory, so the Cluster Autoscaler keeps that much spare room on the nodes. When a burst
arrives, the scheduler evicts placeholders and the real pods start immediately on running
nodes; the evicted placeholders go Pending and trigger a scale-up, restoring the headroom
while the burst is already being served. The arithmetic is in ``capacity/headroom.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s

from capacity.headroom import HeadroomFigures
from components import Between, ComponentArgsError, require_valid

#: The pause image of Kubernetes 1.34 (it does nothing and runs as 65535:65535), by digest: the
#: digest registry.k8s.io serves for tag 3.10.1, as the Kubernetes image promoter's manifest
#: records it (kubernetes/k8s.io@ecf019a88caa0923c610e8982ca44a460c0303e5:
#: registry.k8s.io/images/k8s-staging-kubernetes/images.yaml, ``name: pause``).
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.1@sha256:278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c"


@dataclass(frozen=True, kw_only=True)
class HeadroomSettings:
    """``cofounder:cluster.headroom``: pre-warmed capacity held by low-priority placeholder pods."""

    #: Placeholder pods; each reserves cpu/memory that real pods take over at once by preemption (0: none).
    replicas: Annotated[int, Between(0, 200)] = 1
    #: CPU each placeholder reserves.
    cpu_millicores: Annotated[int, Between(10, 64000)] = 500
    #: Memory each placeholder reserves.
    memory_mib: Annotated[int, Between(16, 262144)] = 512


@dataclass(frozen=True, kw_only=True)
class HeadroomArgs(HeadroomSettings):
    """Settings plus the wiring. Placeholder pods must stay compliant with PSA ``restricted``."""

    #: Namespace of the placeholder Deployment (the app namespace: same nodes as the burst).
    namespace: pulumi.Input[str]
    #: Priority of the placeholders; below 0 so that every ordinary pod (priority 0) preempts them.
    priority_value: int = -10
    #: Node labels the placeholders must land on (the node group that absorbs bursts).
    node_selector: dict[str, str] = field(default_factory=dict)
    image: str = PAUSE_IMAGE


class Headroom(pulumi.ComponentResource):
    """A negative-priority PriorityClass and a Deployment of placeholder pods."""

    figures: HeadroomFigures
    priority_class_name: pulumi.Output[str]

    def __init__(self, name: str, args: HeadroomArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:cluster:Headroom", name, None, opts)
        require_valid(f"Headroom {name}", args)
        if args.priority_value >= 0:
            raise ComponentArgsError("headroom priority must be negative, or the placeholders would not yield")
        labels = {"app.kubernetes.io/name": "headroom", "app.kubernetes.io/part-of": "cofounder"}

        priority = self._priority_class(name, args, labels)
        self._placeholders(name, args, labels, priority)

        self.figures = HeadroomFigures(args.replicas, args.cpu_millicores, args.memory_mib)
        self.priority_class_name = priority.metadata.name
        self.register_outputs({"priority_class_name": self.priority_class_name,
                               "figures": self.figures.as_dict()})

    def _priority_class(self, name: str, args: HeadroomArgs, labels: dict) -> k8s.scheduling.v1.PriorityClass:
        """The negative-priority PriorityClass every real pod preempts."""
        return k8s.scheduling.v1.PriorityClass(
            f"{name}-priority",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-placeholder", labels=labels),
            value=args.priority_value,
            global_default=False,
            # Placeholders never evict anything; they only ever get evicted.
            preemption_policy="Never",
            description="Placeholder pods that hold spare capacity; any real pod preempts them.",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _placeholders(self, name: str, args: HeadroomArgs, labels: dict,
                      priority: k8s.scheduling.v1.PriorityClass) -> None:
        """The Deployment of pause pods that hold the spare capacity."""
        resources = {"cpu": f"{args.cpu_millicores}m", "memory": f"{args.memory_mib}Mi"}
        k8s.apps.v1.Deployment(
            f"{name}-placeholder",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{name}-placeholder", namespace=args.namespace,
                                                labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        priority_class_name=priority.metadata.name,
                        # Preempted placeholders must leave at once to make room for the burst.
                        termination_grace_period_seconds=0,
                        automount_service_account_token=False,
                        node_selector=args.node_selector or None,
                        # Spread so that headroom exists in every zone, not all on one node.
                        topology_spread_constraints=[k8s.core.v1.TopologySpreadConstraintArgs(
                            max_skew=1, topology_key="topology.kubernetes.io/zone",
                            when_unsatisfiable="ScheduleAnyway",
                            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels))],
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_non_root=True, run_as_user=65535, run_as_group=65535,
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")),
                        containers=[k8s.core.v1.ContainerArgs(
                            name="pause",
                            image=args.image,
                            # requests == limits: Guaranteed QoS, so the reservation is exact.
                            resources=k8s.core.v1.ResourceRequirementsArgs(requests=resources,
                                                                           limits=resources),
                            security_context=k8s.core.v1.SecurityContextArgs(
                                allow_privilege_escalation=False, read_only_root_filesystem=True,
                                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"])),
                        )],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
