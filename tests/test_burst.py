"""The burst simulation (capacity/burst.py) on small hand-computed cases, and on prod."""

from __future__ import annotations

import dataclasses

from capacity.burst import distribution, facts_for, headroom_to_meet, simulate
from capacity.fleet import Declared, cluster_autoscaler, node_groups, workloads
from capacity.scale_up import ScalingSettings
from capacity.timings import Draw, load_timings

#: Load triples (or quadruples) at t=0; the first HPA sync that sees it is at 15 s.
TARGETS = ScalingSettings(peak_multiplier=3, ready_goal_seconds=60)
#: The hand-computed cases' point timings: metric lag 15 s, pod start-up 30 s, a node in 120 s.
POINT = Draw.point(metric_lag_seconds=15, pod_startup_seconds=30, node_provisioning_seconds=120)


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
    burst = simulate(groups, pods, TARGETS, ca, POINT)
    assert burst.ready_seconds() == {"app": 45}
    assert burst.ok
    # The evicted placeholders are Pending from 15 s: the scan at 20 s asks for a node, Ready at 140 s.
    assert burst.nodes_before == {"apps": 1} and burst.nodes_after == {"apps": 2}


def test_a_burst_that_needs_one_new_node_waits_for_the_scan_the_node_and_the_start_up():
    # 4x: 4 replicas. At rest one pod (500m) and 1237m free: 2 new pods fit, the third is Pending
    # from 15 s; the scan at 20 s asks for a node, Ready at 140 s; the pod is Ready at 170 s.
    groups, pods, ca = cluster(max_replicas=4)
    burst = simulate(groups, pods, dataclasses.replace(TARGETS, peak_multiplier=4), ca, POINT)
    assert burst.ready_seconds() == {"app": 170}
    assert not burst.ok
    assert burst.nodes_after == {"apps": 2}


def test_a_burst_capped_by_max_size_is_never_ready():
    groups, pods, ca = cluster(max_size=1, max_replicas=4)
    burst = simulate(groups, pods, dataclasses.replace(TARGETS, peak_multiplier=4), ca, POINT)
    assert burst.ready_seconds() == {"app": None}
    assert burst.capped_groups == ["apps"]


def test_the_headroom_that_meets_the_goal_is_found():
    # The 4x case with one placeholder: at rest app + placeholder (1000m), 737m free. Of the 3 new
    # pods one takes the free room, one preempts the placeholder, one waits for a node: 170 s. One
    # more placeholder only takes the free room (same 170 s); two more do not fit the node at rest,
    # so a second node runs there: its free room and the placeholders hold all 3 pods at 15 s.
    groups, pods, ca = cluster(max_replicas=4, placeholders=0)
    targets = dataclasses.replace(TARGETS, peak_multiplier=4)
    assert headroom_to_meet(groups, pods, targets, ca, point=POINT) is None  # no placeholder declared to grow
    groups, pods, ca = cluster(max_replicas=4, placeholders=1)
    assert simulate(groups, pods, targets, ca, POINT).ready_seconds() == {"app": 170}
    assert headroom_to_meet(groups, pods, targets, ca, point=POINT) == 2


def test_a_pod_on_a_new_node_pulls_its_image_in_the_worst_case():
    # Every timing at its high end (capacity/timings.yaml; no declared facts: a CPU metric at 15 s
    # resolution, no probes, no ALB). The HPA clock stands at 14 s: syncs at 14, 29, 44; CPU shows in
    # full after 15 + 15 = 30 s, so the sync at 44 asks for 4. Two new pods fit the node at rest, which
    # ran the app (cached pull): 44 + 5 start + 1 pull + 8 boot = 58. The third is Pending from 44;
    # the scan (phase 9 of 10 s) at 49 asks for a node, Ready at 49 + 180 = 229; there the image is
    # pulled: 3 s + 0.5 GiB x 40 s/GiB, then 5 + 8: Ready at 229 + 36 = 265.
    groups, pods, ca = cluster(max_replicas=4)
    targets = dataclasses.replace(TARGETS, peak_multiplier=4)
    worst = Draw.worst(load_timings(), {})
    burst = simulate(groups, pods, targets, ca, worst)
    assert burst.ready_seconds() == {"app": 265}
    ready = [p["apps"]["app"]["ready"] for p in burst.series]
    assert burst.series[ready.index(3)]["t"] == 60  # the two cached pods, sampled every 5 s


def test_the_distribution_is_seeded_and_judged_at_p95():
    groups, pods, ca = cluster(placeholders=2)
    first = distribution(groups, pods, TARGETS, ca, {}, samples=40)
    again = distribution(groups, pods, TARGETS, ca, {}, samples=40)
    assert first.as_dict() == again.as_dict()
    spread = first.as_dict()["app"]
    assert spread["p50"] <= spread["p95"] <= spread["worst"]
    # Every pod preempts a placeholder: the decision (lag 15-30 s, sync phase 0-15 s) plus a cached
    # start (1-5 s + 0-1 s pull + 2-8 s boot) stays within 30 + 14 + 14; the worst case is that sum.
    assert spread["worst"] == 44 + 14
    assert first.ok is (spread["p95"] <= 60)


def _prod(stack_program):
    from toolkit.cost_reports import declared, scaling

    program = stack_program("prod")
    items = declared(program)
    pods = workloads(items)
    return node_groups(items), pods, cluster_autoscaler(items), scaling(program), facts_for(items, pods)


def test_prod_meets_its_ready_goal_at_p95(stack_program):
    groups, pods, ca, targets, facts = _prod(stack_program)
    d = distribution(groups, pods, targets, ca, facts)
    assert d.target_seconds == 60
    assert d.ok, d.as_dict()
    # Under the timing table's ranges prod's p95 is 52-54 s behind the ALB, not the 45 s issue 22
    # asks for (docs/cost-and-burst.md says what closes the gap); the worker, without the ALB, is 39 s.
    assert all(a.p95 is not None and a.p95 <= 60 for a in d.apps)
    assert d.as_dict()["worker"]["p95"] <= 45


def test_removing_the_headroom_lengthens_the_prod_burst(stack_program):
    # With a baseline (today's peak) of 4 replicas per app the peak exceeds the idle room of the
    # nodes at rest and the placeholders decide who waits for a node.
    groups, pods, ca, targets, facts = _prod(stack_program)
    targets = dataclasses.replace(targets, baseline_replicas={"backend": 4, "frontend": 4, "worker": 4})
    with_headroom = distribution(groups, pods, targets, ca, facts, samples=40)
    without = distribution(groups, [w for w in pods if not w.placeholder], targets, ca, facts, samples=40)
    assert max(a.p95 or 10**6 for a in without.apps) > max(a.p95 or 10**6 for a in with_headroom.apps)
