"""Stack rules on the capacity arithmetic: can the cluster actually reach what the HPAs allow?

The arithmetic itself lives in the top-level pure package ``capacity`` (shared with the program
and the preview reports), installed into the pack's environment from policies/requirements.txt.
"""

from __future__ import annotations

from capacity.headroom import cpu_millicores, memory_mib
from capacity.nodes import INSTANCE_TYPES, allocatable
from cofounder_policies.cluster import CLUSTER, LAUNCH_TEMPLATE, NODE_GROUP
from cofounder_policies.rules import ADVISORY, get, items, of_type, stack_rule
from cofounder_policies.workloads import HPA, scaled_deployments

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
EKS_ADDON = "aws:eks/addon:Addon"
CUSTOM_METRIC_TYPES = {"Pods", "Object", "External"}


def _charts(resources) -> set[str]:
    charts = {str(get(r.props, "chart", "")).rsplit("/", 1)[-1] for r in of_type(resources, HELM_RELEASE)}
    return charts | {str(get(r.props, "addonName")) for r in of_type(resources, EKS_ADDON)}


def _autoscalers_present(resources, settings):
    charts = _charts(resources)
    if of_type(resources, CLUSTER) and not charts & set(settings["clusterAutoscalerCharts"]):
        yield ("the stack declares an EKS cluster but no Cluster Autoscaler release "
               f"(chart one of {settings['clusterAutoscalerCharts']})"), None
    hpas = of_type(resources, HPA)
    metric_types = {get(m, "type") for h in hpas for m in items(get(h.props, "spec.metrics"))}
    if "Resource" in metric_types and not charts & set(settings["resourceMetricsCharts"]):
        yield ("an HPA scales on CPU/memory but no metrics-server is declared "
               f"(Helm chart or EKS add-on one of {settings['resourceMetricsCharts']})"), None
    if metric_types & CUSTOM_METRIC_TYPES and not charts & set(settings["customMetricsCharts"]):
        yield ("an HPA scales on a custom metric but no metrics adapter is declared "
               f"(chart one of {settings['customMetricsCharts']})"), None


def _pod_requests(deployment) -> tuple[int, int]:
    containers = items(get(deployment.props, "spec.template.spec.containers"))
    return (sum(cpu_millicores(get(c, "resources.requests.cpu", 0)) for c in containers),
            sum(memory_mib(get(c, "resources.requests.memory", 0)) for c in containers))


def _node_group_instance_type(group, launch_templates) -> str | None:
    types = items(get(group.props, "instanceTypes"))
    if types:
        return types[0]
    ref = get(group.props, "launchTemplate.id")
    for lt in launch_templates:
        if ref in (get(lt.props, "id"), get(lt.props, "name")) or lt.urn in {
                d.urn for d in (group.property_dependencies or {}).get("launchTemplate", [])}:
            return get(lt.props, "instanceType")
    return None


def _nodes_hold_hpa_max(resources, settings):
    pairs = [(h, d) for h, d in scaled_deployments(resources) if d is not None]
    if not pairs:
        return
    need_cpu = need_mem = 0
    for hpa, deployment in pairs:
        cpu, mem = _pod_requests(deployment)
        need_cpu += int(get(hpa.props, "spec.maxReplicas", 0)) * cpu
        need_mem += int(get(hpa.props, "spec.maxReplicas", 0)) * mem
    have_cpu = have_mem = 0
    launch_templates = of_type(resources, LAUNCH_TEMPLATE)
    for group in of_type(resources, NODE_GROUP):
        instance_type = _node_group_instance_type(group, launch_templates)
        if instance_type not in INSTANCE_TYPES:
            yield (f"instance type {instance_type!r} is not in the pack's table (capacity/nodes.py); "
                   f"add it so node capacity can be checked"), group.urn
            continue
        nodes = int(get(group.props, "scalingConfig.maxSize", 0))
        have_cpu += nodes * allocatable(instance_type).cpu_millicores
        have_mem += nodes * allocatable(instance_type).memory_mib
    share = float(settings["maximumShare"])
    if need_cpu > have_cpu * share or need_mem > have_mem * share:
        yield (f"every HPA at maxReplicas requests {need_cpu}m CPU and {need_mem} MiB, but the node "
               f"groups at maxSize offer {have_cpu}m and {have_mem} MiB allocatable "
               f"(limit {share:.0%} of it, the rest is for daemonsets and system pods)"), None


POLICIES = [
    stack_rule(
        "capacity-autoscalers-present",
        "HPAs and node groups only scale if their controllers exist: the Cluster Autoscaler for "
        "nodes, metrics-server for CPU/memory metrics and an adapter (prometheus-adapter or KEDA) "
        "for custom metrics. Fix: install the missing Helm release (pinned chart version).",
        ADVISORY, _autoscalers_present,
        config={
            "clusterAutoscalerCharts": {"type": "array", "items": {"type": "string"},
                                        "default": ["cluster-autoscaler", "karpenter"]},
            "resourceMetricsCharts": {"type": "array", "items": {"type": "string"},
                                      "default": ["metrics-server"]},
            "customMetricsCharts": {"type": "array", "items": {"type": "string"},
                                    "default": ["prometheus-adapter", "keda"]},
        }),
    stack_rule(
        "capacity-node-groups-hold-hpa-max",
        "If every HPA reaches maxReplicas, the pods must fit on the node groups at maxSize, or the "
        "burst ends with Pending pods. Fix: raise node group maxSize (or the instance size), or "
        "lower the HPAs' maxReplicas / pod requests.",
        ADVISORY, _nodes_hold_hpa_max,
        config={"maximumShare": {"type": "number", "minimum": 0.1, "maximum": 1, "default": 0.9,
                                 "description": "Share of allocatable the app pods may need"}}),
]
