"""capacity/hpa.py: time-to-scale against hand-computed controller runs."""

from __future__ import annotations

import pytest

from capacity.hpa import (
    hpa_spec_from_scaled_object,
    pod_requests,
    quantity,
    scale_up_limit,
    scaling_rules,
    time_to_scale,
)


def spec(min_r=2, max_r=20, **scale_up):
    s = {"minReplicas": min_r, "maxReplicas": max_r}
    if scale_up:
        s["behavior"] = {"scaleUp": scale_up}
    return s


def up(*policies, window=0, select="Max"):
    return {"stabilizationWindowSeconds": window, "selectPolicy": select,
            "policies": [{"type": t, "value": v, "periodSeconds": p} for t, v, p in policies]}


def test_kubernetes_default_behavior_doubles_or_adds_four_per_sync():
    # 2 -> max(ceil(2*2)=4, 2+4=6)=6 at t=0; 6 -> min(needed 10, max(12, 10)) = 10 at t=15.
    r = time_to_scale(spec(), peak_multiplier=5)
    assert r.needed_replicas == 10
    assert r.steps == [(0, 6), (15, 10)]
    assert r.decided_at_seconds == 15
    assert r.first_step_pods == 4


def test_metric_lag_delays_the_first_sync_onto_the_15s_grid():
    r = time_to_scale(spec(), metric_lag_seconds=10)
    assert r.steps == [(15, 6), (30, 10)]
    assert r.decided_at_seconds == 30


def test_prod_behavior_triples_per_sync():
    # 3 -> max(ceil(3*3)=9, 3+8=11)=11 at 15 s; 11 -> min(15, max(33, 19)) = 15 at 30 s.
    behavior = up(("Percent", 200, 15), ("Pods", 8, 15))
    r = time_to_scale({"minReplicas": 3, "maxReplicas": 40, "behavior": {"scaleUp": behavior}},
                      metric_lag_seconds=15)
    assert r.steps == [(15, 11), (30, 15)]
    assert r.decided_at_seconds == 30 <= 45


def test_slow_behavior_misses_the_45s_goal():
    # One pod per minute: 2 -> 3 at 0 s, and one more every 60 s until 10 at 420 s.
    r = time_to_scale(spec(**up(("Pods", 1, 60))))
    assert r.steps == [(60 * i, 3 + i) for i in range(8)]
    assert r.decided_at_seconds == 420 > 45


def test_select_policy_min_takes_the_smaller_change():
    r = time_to_scale(spec(**up(("Percent", 100, 15), ("Pods", 4, 15), select="Min")))
    assert r.steps == [(0, 4), (15, 8), (30, 10)]


def test_period_longer_than_the_sync_counts_earlier_additions():
    # Percent 100 per 60 s: 2 -> 4 at 0 s; blocked until the 0 s event leaves the period.
    r = time_to_scale(spec(**up(("Percent", 100, 60))))
    assert r.steps == [(0, 4), (60, 8), (120, 10)]


def test_scale_up_stabilization_waits_for_quiet_recommendations_to_age_out():
    # Window 60 s: the last pre-burst recommendation (t=-15) leaves the window at t=45.
    r = time_to_scale(spec(**up(("Percent", 100, 15), ("Pods", 4, 15), window=60)))
    assert r.steps == [(45, 6), (60, 10)]


def test_max_replicas_caps_the_scale_up():
    r = time_to_scale(spec(max_r=8))
    assert r.capped_by_max and r.reached_replicas == 8 and r.decided_at_seconds is None


def test_disabled_scale_up_never_reaches_the_peak():
    r = time_to_scale(spec(**up(("Pods", 4, 15), select="Disabled")), horizon_seconds=300)
    assert r.steps == [] and r.decided_at_seconds is None


def test_within_tolerance_the_controller_does_not_move():
    r = time_to_scale(spec(min_r=10, max_r=20), peak_multiplier=1.05)
    assert r.needed_replicas == 11 and r.steps == [] and r.decided_at_seconds == 0


def test_baseline_above_min_needs_more_replicas():
    r = time_to_scale(spec(max_r=40), baseline_replicas=4)
    assert r.needed_replicas == 20
    assert r.steps == [(0, 6), (15, 12), (30, 20)]


def test_scale_up_limit_uses_period_start_replicas():
    rules = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 60}]}
    assert scale_up_limit(4, [(0, 2)], rules, 15) == 4      # period started at 2 replicas
    assert scale_up_limit(4, [(0, 2)], rules, 60) == 8      # the event left the period


def test_defaults_fill_an_undeclared_behavior():
    assert scaling_rules({}, "scaleUp")["policies"][1] == {"type": "Pods", "value": 4, "periodSeconds": 15}
    assert scaling_rules({}, "scaleDown")["stabilizationWindowSeconds"] == 300


def test_scaled_object_becomes_the_hpa_keda_generates():
    behavior = {"scaleUp": up(("Pods", 4, 15))}
    s = hpa_spec_from_scaled_object({"scaleTargetRef": {"name": "worker"}, "minReplicaCount": 3,
                                     "maxReplicaCount": 40,
                                     "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}}})
    assert s == {"scaleTargetRef": {"name": "worker"}, "minReplicas": 3, "maxReplicas": 40, "behavior": behavior}
    assert hpa_spec_from_scaled_object({"scaleTargetRef": {}}) == {
        "scaleTargetRef": {}, "minReplicas": 1, "maxReplicas": 100}


def test_pod_requests_and_quantities():
    pod = {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                          {"resources": {"requests": {"cpu": "0.25", "memory": "128Mi"}}}]}
    assert pod_requests(pod) == (750, 1152)
    assert quantity("2") == 2
    with pytest.raises(ValueError):
        quantity("lots")
