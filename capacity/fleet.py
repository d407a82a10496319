"""The cluster as the scheduler and the Cluster Autoscaler see it, read from the declared resources.

Pure functions over ``Declared`` resources (type, key, camelCase properties: what the program
sends to its providers; the preview reports and the policy pack build the list alike). What it
reads, generically, so a stack may declare any number of node groups per pool and any number of
apps:
- every EKS managed node group: its first instance type (the Cluster Autoscaler assumes one shape
  per group), capacity type, min/max size, labels, taints and root volume (from its launch
  template), and what one node offers pods (``capacity/nodes.py`` allocatable);
- every Deployment: the autoscaled apps (with the HPA or ScaledObject that drives them), the
  fixed ones (``spec.replicas``) and the headroom placeholders (pods at a negative priority);
  each pod's requests, node selector and tolerations;
- the Cluster Autoscaler release's ``scan-interval`` and ``expendable-pods-priority-cutoff``.

A pod fits a node group when the group's labels include the pod's ``nodeSelector`` and the pod
tolerates each of the group's NoSchedule/NoExecute taints. ``pack`` places pods first-fit
decreasing (highest priority first) on the nodes of the groups they fit, opening a node in the
admitting group with the fewest nodes (``balance-similar-node-groups``) up to its maxSize; the
nodes' share of allocatable for declared pods is ``nodePodShare`` (the rest is left to DaemonSets
and the pods Helm charts add, which the program does not declare one by one).
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from capacity.hpa import pod_requests
from capacity.nodes import INSTANCE_TYPES, Allocatable, allocatable
from capacity.scale_up import HPA_KIND, SCALED_OBJECT_KIND, Autoscaled, autoscaled
from capacity.timings import load_timings

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
#: EKS API taint effects -> Kubernetes'.
_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
#: Cluster Autoscaler defaults (capacity/timings.yaml, from its FAQ): the scan interval; pods with a
#: priority below the cutoff are expendable and never cause a scale-up.
DEFAULT_SCAN_INTERVAL_SECONDS = load_timings().high("clusterAutoscalerScanIntervalSeconds")
DEFAULT_EXPENDABLE_CUTOFF = load_timings().expendable_cutoff


@dataclass(frozen=True)
class Declared:
    """One declared resource: its type, a key to report it by (URN or name), its properties."""

    type: str
    key: Hashable
    props: dict


def value_at(value: Any, path: str, default: Any = None) -> Any:
    """``value`` at a dotted ``path`` of nested mappings (``"spec.template.spec"``), or ``default``."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str


@dataclass(frozen=True)
class NodeGroup:
    """One EKS managed node group: the shape of its nodes and its bounds."""

    key: Hashable
    name: str
    instance_type: str
    capacity_type: str
    min_size: int
    max_size: int
    labels: dict[str, str]
    taints: tuple[Taint, ...]
    disk_gib: int | None
    #: None when the instance type is not in ``capacity/nodes.py`` (nothing can be placed on it).
    allocatable: Allocatable | None


@dataclass(frozen=True)
class PodShape:
    cpu_millicores: int
    memory_mib: int
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[tuple[str, str], ...], ...] = ()

    def admitted_by(self, group: NodeGroup) -> bool:
        if any(group.labels.get(k) != v for k, v in self.node_selector):
            return False
        hard = [t for t in group.taints if t.effect in ("NoSchedule", "NoExecute")]
        return all(any(_tolerates(dict(tol), t) for tol in self.tolerations) for t in hard)


def _tolerates(toleration: dict, taint: Taint) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.effect:
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.key
    return toleration.get("key") == taint.key and (toleration.get("value") or "") == taint.value


@dataclass(frozen=True)
class Workload:
    """A Deployment's pods: ``replicas`` at rest, the autoscaler when there is one."""

    key: Hashable
    name: str
    pod: PodShape
    replicas: int
    priority: int = 0
    autoscaled: Autoscaled | None = None

    @property
    def placeholder(self) -> bool:
        return self.priority < 0


def pod_shape(pod_spec: dict) -> PodShape:
    cpu, mem = pod_requests(pod_spec)
    selector = tuple(sorted((pod_spec.get("nodeSelector") or {}).items()))
    tolerations = tuple(tuple(sorted((k, str(v)) for k, v in t.items() if v is not None))
                        for t in pod_spec.get("tolerations") or [])
    return PodShape(cpu, mem, selector, tolerations)


def node_groups(declared: Iterable[Declared]) -> list[NodeGroup]:
    """Every managed node group, in declaration order, with its launch template's root volume."""
    items = list(declared)
    templates = {r.props["id"]: r.props for r in items if r.type == LAUNCH_TEMPLATE and r.props.get("id")}
    # Before the first create (a preview of a new stack) ids are unknown: the program names a node
    # group's launch template after the group (components/eks_cluster.py).
    by_name = {_short(r.key): r.props for r in items if r.type == LAUNCH_TEMPLATE}
    groups = []
    for r in items:
        if r.type != NODE_GROUP:
            continue
        p = r.props
        types = p.get("instanceTypes") or []
        template_id = value_at(p, "launchTemplate.id")
        template = (templates.get(template_id) if template_id else by_name.get(_short(r.key))) or {}
        itype = types[0] if types else template.get("instanceType") or ""
        disk = value_at((template.get("blockDeviceMappings") or [{}])[0], "ebs.volumeSize", p.get("diskSize"))
        groups.append(NodeGroup(
            key=r.key, name=str(p.get("nodeGroupName") or _short(r.key)), instance_type=str(itype),
            capacity_type=str(p.get("capacityType") or "ON_DEMAND"),
            min_size=int(value_at(p, "scalingConfig.minSize", 0)),
            max_size=int(value_at(p, "scalingConfig.maxSize", 0)),
            labels=dict(p.get("labels") or {}),
            taints=tuple(Taint(t.get("key", ""), t.get("value") or "", _EFFECTS.get(t.get("effect"), t.get("effect")))
                         for t in p.get("taints") or []),
            disk_gib=int(disk) if disk is not None else None,
            allocatable=allocatable(itype) if itype in INSTANCE_TYPES else None))
    return groups


def _short(key: Hashable) -> str:
    return str(key).rsplit("::", 1)[-1]


def workloads(declared: Iterable[Declared]) -> list[Workload]:
    """Every Deployment's pods: autoscaled apps at minReplicas, fixed ones at spec.replicas,
    placeholders at a negative priority. Sorted by priority (highest first), then name."""
    items = list(declared)
    priorities = {(r.props.get("metadata") or {}).get("name"): int(r.props.get("value") or 0)
                  for r in items if r.type == PRIORITY_CLASS}
    deployments = [(r.key, r.props) for r in items if r.type == DEPLOYMENT]
    scaled = autoscaled([d for _, d in deployments],
                        [(r.key, kind, r.props) for r in items
                         for kind, type_ in ((HPA_KIND, HPA), (SCALED_OBJECT_KIND, SCALED_OBJECT)) if r.type == type_])
    by_target = {(value_at(a.deployment, "metadata.namespace"), value_at(a.deployment, "metadata.name")): a
                 for a in scaled if a.deployment}
    found = []
    for key, d in deployments:
        meta, spec = d.get("metadata") or {}, d.get("spec") or {}
        pod_spec = value_at(spec, "template.spec", {}) or {}
        app = by_target.get((meta.get("namespace"), meta.get("name")))
        priority = priorities.get(pod_spec.get("priorityClassName"), 0)
        replicas = int(app.hpa_spec.get("minReplicas", 1)) if app else int(spec.get("replicas", 1))
        found.append(Workload(key=key, name=app.app if app else str(meta.get("name") or _short(key)),
                              pod=pod_shape(pod_spec), replicas=replicas, priority=priority, autoscaled=app))
    return sorted(found, key=lambda w: (-w.priority, w.name))


def _seconds(duration: Any, default: int) -> int:
    match = re.fullmatch(r"([0-9]+)(s|m|h)?", str(duration or "").strip())
    if not match:
        return default
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


@dataclass(frozen=True)
class AutoscalerSettings:
    """What the declared Cluster Autoscaler release does on a burst."""

    scan_interval_seconds: int = DEFAULT_SCAN_INTERVAL_SECONDS
    expendable_cutoff: int = DEFAULT_EXPENDABLE_CUTOFF
    declared: bool = False


def cluster_autoscaler(declared: Iterable[Declared]) -> AutoscalerSettings:
    for r in declared:
        if r.type == HELM_RELEASE and str(r.props.get("chart", "")).rsplit("/", 1)[-1] == "cluster-autoscaler":
            args = value_at(r.props, "values.extraArgs", {}) or {}
            return AutoscalerSettings(
                scan_interval_seconds=_seconds(args.get("scan-interval"), DEFAULT_SCAN_INTERVAL_SECONDS),
                expendable_cutoff=int(args.get("expendable-pods-priority-cutoff", DEFAULT_EXPENDABLE_CUTOFF)),
                declared=True)
    return AutoscalerSettings()


# --- placement --------------------------------------------------------------------------------


@dataclass
class Node:
    group: NodeGroup
    free_cpu: float
    free_mem: float
    free_pods: int
    #: (workload name, priority, shape) of the pods on this node.
    pods: list[tuple[str, int, PodShape]] = field(default_factory=list)

    def fits(self, pod: PodShape) -> bool:
        return self.free_pods >= 1 and self.free_cpu >= pod.cpu_millicores and self.free_mem >= pod.memory_mib

    def place(self, name: str, priority: int, pod: PodShape) -> None:
        self.free_cpu -= pod.cpu_millicores
        self.free_mem -= pod.memory_mib
        self.free_pods -= 1
        self.pods.append((name, priority, pod))

    def evict(self, index: int) -> tuple[str, int, PodShape]:
        name, priority, pod = self.pods.pop(index)
        self.free_cpu += pod.cpu_millicores
        self.free_mem += pod.memory_mib
        self.free_pods += 1
        return name, priority, pod


def new_node(group: NodeGroup, share: float) -> Node:
    a = group.allocatable
    assert a is not None
    return Node(group, a.cpu_millicores * share, a.memory_mib * share, a.pods)


@dataclass
class Placement:
    """Nodes per group after ``pack``; pods that found no node (a group at maxSize, or none fits)."""

    nodes: list[Node]
    unplaced: list[tuple[str, int, PodShape]]

    def count(self, group: NodeGroup) -> int:
        return sum(1 for n in self.nodes if n.group is group)

    def capped(self, groups: list[NodeGroup]) -> list[NodeGroup]:
        """Groups at maxSize while pods they would admit found no node."""
        return [g for g in groups if self.count(g) >= g.max_size
                and any(p.admitted_by(g) for _, prio, p in self.unplaced if prio >= 0)]


def open_node(nodes: list[Node], groups: list[NodeGroup], pod: PodShape, share: float,
              extra: dict[int, int] | None = None) -> Node | None:
    """A new node in the admitting group with the fewest nodes, below its maxSize, that holds ``pod``.

    ``extra`` counts nodes per group (by ``id``) that are not in ``nodes`` yet (being provisioned)."""
    counts = {id(g): sum(1 for n in nodes if n.group is g) + (extra or {}).get(id(g), 0) for g in groups}
    candidates = [g for g in groups if g.allocatable is not None and pod.admitted_by(g)
                  and counts[id(g)] < g.max_size and new_node(g, share).fits(pod)]
    if not candidates:
        return None
    group = min(candidates, key=lambda g: (counts[id(g)], groups.index(g)))
    return new_node(group, share)


def pack(groups: list[NodeGroup], pods: list[tuple[str, int, PodShape]], share: float) -> Placement:
    """Place pods ``(name, priority, shape)`` on every group's minSize nodes and as many more as needed.

    Highest priority first, then largest first; first fit over the nodes in order of creation."""
    nodes = [new_node(g, share) for g in groups if g.allocatable is not None for _ in range(g.min_size)]
    unplaced = []
    order = sorted(pods, key=lambda p: (-p[1], -p[2].cpu_millicores, -p[2].memory_mib, p[0]))
    for name, priority, pod in order:
        node = next((n for n in nodes if pod.admitted_by(n.group) and n.fits(pod)), None)
        if node is None:
            node = open_node(nodes, groups, pod, share)
            if node is not None:
                nodes.append(node)
        if node is None:
            unplaced.append((name, priority, pod))
        else:
            node.place(name, priority, pod)
    return Placement(nodes, unplaced)


def expand(workload: Workload, replicas: int | None = None) -> list[tuple[str, int, PodShape]]:
    """The pods of ``workload`` at ``replicas`` (default: its replicas at rest)."""
    n = workload.replicas if replicas is None else replicas
    return [(workload.name, workload.priority, workload.pod)] * n
