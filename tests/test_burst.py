"""The burst simulation (capacity/burst.py) on small hand-computed cases, and on prod."""

from __future__ import annotations

import dataclasses

from capacity.burst import headroom_to_meet, simulate
from capacity.fleet import Declared, cluster_autoscaler, node_groups, workloads
from capacity.scale_up import ScalingSettings

#: Load triples (or quadruples) at t=0; the first HPA sync that sees it is at 15 s.
TARGETS = ScalingSettings(peak_multiplier=3, metric_lag_seconds=15, pod_startup_seconds=30,
                          node_provisioning_seconds=120, ready_goal_seconds=60)


def cluster(max_size=4, max_replicas=3, placeholders=0):
    """One m6i.large group (1737m of 1930m allocatable for pods), one app of 500m/512Mi at 1 replica."""
    resources = [
        Declared("aws:eks/nodeGroup:NodeGroup", "apps", {
            "instanceTypes": ["m6i.large"], "labels": {"node-pool": "apps"},
            "scalingConfig": {"minSize": 1, "maxSize": max_size, "desiredSize": 1}}),
        Declared("kubernetes:apps/v1:Deployment", "app", {
            "metadata": {"name": "app", "namespace": "apps"},
            "spec": {"template": {"spec": {"containers": [{"resources": {"requests": {"cpu": "500m",
                                                                                      "memory": "512Mi"}}}]}}}}),
        Declared("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "app-hpa", {
            "metadata": {"name": "app", "namespace": "apps"},
            "spec": {"scaleTargetRef": {"name": "app"}, "minReplicas": 1, "maxReplicas": max_replicas}}),
        Declared("kubernetes:helm.sh/v3:Release", "ca", {
            "chart": "cluster-autoscaler", "values": {"extraArgs": {"scan-interval": "10s"}}}),
    ]
    if placeholders:
        resources += [
            Declared("kubernetes:scheduling.k8s.io/v1:PriorityClass", "pc",
                     {"metadata": {"name": "placeholder"}, "value": -10}),
            Declared("kubernetes:apps/v1:Deployment", "headroom", {
                "metadata": {"name": "headroom", "namespace": "apps"},
                "spec": {"replicas": placeholders, "template": {"spec": {
                    "priorityClassName": "placeholder", "nodeSelector": {"node-pool": "apps"},
                    "containers": [{"resources": {"requests": {"cpu": "500m", "memory": "512Mi"}}}]}}}})]
    return node_groups(resources), workloads(resources), cluster_autoscaler(resources)


def test_a_burst_that_fits_the_headroom_is_ready_after_one_sync_and_start_up():
    # At rest: the app's pod and 2 placeholders (1500m) on one node, 237m free. The sync at 15 s asks
    # for 3 replicas: the 2 new pods preempt the 2 placeholders and are Ready at 15 + 30 = 45 s.
    groups, pods, ca = cluster(placeholders=2)
    burst = simulate(groups, pods, TARGETS, ca)
    assert burst.ready_seconds() == {"app": 45}
    assert burst.ok
    # The evicted placeholders are Pending from 15 s: the scan at 20 s asks for a node, Ready at 140 s.
    assert burst.nodes_before == {"apps": 1} and burst.nodes_after == {"apps": 2}


def test_a_burst_that_needs_one_new_node_waits_for_the_scan_the_node_and_the_start_up():
    # 4x: 4 replicas. At rest one pod (500m) and 1237m free: 2 new pods fit, the third is Pending
    # from 15 s; the scan at 20 s asks for a node, Ready at 140 s; the pod is Ready at 170 s.
    groups, pods, ca = cluster(max_replicas=4)
    burst = simulate(groups, pods, dataclasses.replace(TARGETS, peak_multiplier=4), ca)
    assert burst.ready_seconds() == {"app": 170}
    assert not burst.ok
    assert burst.nodes_after == {"apps": 2}


def test_a_burst_capped_by_max_size_is_never_ready():
    groups, pods, ca = cluster(max_size=1, max_replicas=4)
    burst = simulate(groups, pods, dataclasses.replace(TARGETS, peak_multiplier=4), ca)
    assert burst.ready_seconds() == {"app": None}
    assert burst.capped_groups == ["apps"]


def test_the_headroom_that_meets_the_goal_is_found():
    # The 4x case with one placeholder: at rest app + placeholder (1000m), 737m free. Of the 3 new
    # pods one takes the free room, one preempts the placeholder, one waits for a node: 170 s. One
    # more placeholder only takes the free room (same 170 s); two more do not fit the node at rest,
    # so a second node runs there: its free room and the placeholders hold all 3 pods at 15 s.
    groups, pods, ca = cluster(max_replicas=4, placeholders=0)
    targets = dataclasses.replace(TARGETS, peak_multiplier=4)
    assert headroom_to_meet(groups, pods, targets, ca) is None  # no placeholder declared to grow
    groups, pods, ca = cluster(max_replicas=4, placeholders=1)
    assert simulate(groups, pods, targets, ca).ready_seconds() == {"app": 170}
    assert headroom_to_meet(groups, pods, targets, ca) == 2


def _prod(stack_program):
    from toolkit.cost_reports import declared, scaling

    program = stack_program("prod")
    items = declared(program)
    return node_groups(items), workloads(items), cluster_autoscaler(items), scaling(program)


def test_prod_meets_its_ready_goal(stack_program):
    groups, pods, ca, targets = _prod(stack_program)
    burst = simulate(groups, pods, targets, ca)
    assert burst.ok and burst.target_seconds == 60
    assert max(burst.ready_seconds().values()) <= 60


def test_removing_the_headroom_lengthens_the_prod_burst(stack_program):
    # At prod's declared baseline (minReplicas) the idle room of the three minSize nodes holds the
    # whole peak, headroom or not (docs/cost-and-burst.md). With a baseline (today's peak) of 4
    # replicas per app the peak exceeds that room and the placeholders decide who waits for a node.
    groups, pods, ca, targets = _prod(stack_program)
    targets = dataclasses.replace(targets, baseline_replicas={"backend": 4, "frontend": 4, "worker": 4})
    with_headroom = simulate(groups, pods, targets, ca)
    without = simulate(groups, [w for w in pods if not w.placeholder], targets, ca)
    worst = max(with_headroom.ready_seconds().values())
    assert max(without.ready_seconds().values()) > worst
