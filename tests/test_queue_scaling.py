"""capacity/queue_scaling.py: the worker's composite metric, written and read back the same way."""

from __future__ import annotations

from capacity.queue_scaling import desired_replicas, formula, formula_names, formula_weights, pre_stop_seconds

WEIGHTS = [("high", 2.0), ("normal", 1.0), ("low", 0.5)]


def test_the_formula_round_trips():
    text = formula(WEIGHTS)
    assert text == "2 * queue_high + 1 * queue_normal + 0.5 * queue_low"
    assert formula_weights(text) == {"queue_high": 2.0, "queue_normal": 1.0, "queue_low": 0.5}
    assert formula_names(text) == {"queue_high", "queue_normal", "queue_low"}
    # a hand-written formula of another shape is not guessed at
    assert formula_weights("max(queue_high, queue_low)") is None
    assert formula_names("max(queue_high, queue_low)") == {"max", "queue_high", "queue_low"}


def test_a_burst_in_one_tier_adds_pods_without_taking_any_from_another():
    weights = dict(formula_weights(formula(WEIGHTS)) or {})
    low_only = desired_replicas({"queue_low": 100}, weights, 5, 1, 40)
    assert low_only == 10  # 100 x 0.5 slots / 5 per pod
    with_high = desired_replicas({"queue_low": 100, "queue_high": 10}, weights, 5, 1, 40)
    assert with_high == 14  # + 10 x 2 slots
    assert desired_replicas({"queue_low": 1000}, weights, 5, 1, 40) == 40  # maxReplicas
    assert desired_replicas({}, weights, 5, 3, 40) == 3  # minReplicas


def test_pre_stop_is_the_longest_sleep_of_the_pod():
    assert pre_stop_seconds({"containers": [{"lifecycle": {"preStop": {"sleep": {"seconds": 15}}}},
                                            {"name": "sidecar"}]}) == 15
    assert pre_stop_seconds({"containers": [{"lifecycle": {"preStop": {"exec": {"command": ["true"]}}}}]}) == 0
    assert pre_stop_seconds({}) == 0
