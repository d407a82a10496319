"""Capacity stack rules: autoscalers present, node groups can hold every HPA at max."""

from capacity.nodes import allocatable
from tests.policies.helpers import resource, stack_violations
from tests.policies.test_workloads import DEPLOYMENT, GOOD, GOOD_HPA, HPA

RELEASE = "kubernetes:helm.sh/v3:Release"


def _release(chart):
    return resource(RELEASE, chart, {"chart": chart, "version": "1.0.0"})


def test_allocatable_leaves_room_for_the_system():
    node = allocatable("m6i.xlarge")
    assert 3800 < node.cpu_millicores < 4000 and 14000 < node.memory_mib < 16384


def test_cluster_without_cluster_autoscaler_is_a_violation():
    cluster = resource("aws:eks/cluster:Cluster", "eks", {})
    [(message, _)] = stack_violations("capacity-autoscalers-present", [cluster])
    assert "Cluster Autoscaler" in message
    assert stack_violations("capacity-autoscalers-present", [cluster, _release("cluster-autoscaler")]) == []


def test_hpa_metrics_need_their_adapters():
    hpa = resource(HPA, "api", {**GOOD_HPA, "spec": {**GOOD_HPA["spec"], "metrics": [
        {"type": "Resource", "resource": {"name": "cpu"}},
        {"type": "Pods", "pods": {"metric": {"name": "cofounder_active_agents"}}}]}})
    messages = [m for m, _ in stack_violations("capacity-autoscalers-present", [hpa])]
    assert len(messages) == 2 and "metrics-server" in messages[0] and "custom metric" in messages[1]
    addon = resource("aws:eks/addon:Addon", "metrics-server", {"addonName": "metrics-server"})
    assert stack_violations("capacity-autoscalers-present", [hpa, addon, _release("prometheus-adapter")]) == []


def _capacity_stack(max_size, max_replicas=20):
    group = resource("aws:eks/nodeGroup:NodeGroup", "apps", {"instanceTypes": ["m6i.xlarge"],
                                                            "scalingConfig": {"minSize": 1, "maxSize": max_size}})
    hpa = resource(HPA, "api", {**GOOD_HPA, "spec": {**GOOD_HPA["spec"], "maxReplicas": max_replicas}})
    return [resource(DEPLOYMENT, "api", GOOD), hpa, group]


def test_node_groups_must_hold_every_hpa_at_max():
    # 20 pods x (500m, 512Mi) = 10 CPUs: three m6i.xlarge (~11.7 allocatable, 90% = 10.5) hold it, two do not
    assert stack_violations("capacity-node-groups-hold-hpa-max", _capacity_stack(3)) == []
    [(message, _)] = stack_violations("capacity-node-groups-hold-hpa-max", _capacity_stack(2))
    assert "10000m CPU" in message


def test_unknown_instance_type_is_reported():
    stack = _capacity_stack(3)
    stack[2] = resource("aws:eks/nodeGroup:NodeGroup", "apps", {"instanceTypes": ["x9.huge"],
                                                               "scalingConfig": {"minSize": 1, "maxSize": 3}})
    assert any("x9.huge" in m for m, _ in stack_violations("capacity-node-groups-hold-hpa-max", stack))
