"""Capacity stack rules: autoscalers present, node groups can hold every HPA at max, time to scale."""

import copy
import dataclasses
import json

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from capacity.nodes import allocatable
from capacity.scale_up import ScalingSettings, ScalingTargets
from tests.conftest import STACKS
from tests.policies.helpers import POLICIES, resource, stack_violations
from tests.policies.test_workloads import DEPLOYMENT, GOOD, GOOD_HPA, HPA
from toolkit.harness import reveal
from toolkit.policy_runner import load_config
from toolkit.reports import build_reports
from toolkit.stackfile import load_stack_file

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


def test_a_scaled_object_at_max_counts_against_the_node_groups():
    # the same 20 pods, driven by KEDA (maxReplicaCount) instead of an HPA
    for max_size, fits in ((3, True), (2, False)):
        stack = _capacity_stack(max_size)
        stack[1] = resource(SCALED_OBJECT, "api", {"metadata": {"namespace": "cofounder"}, "spec": {
            "scaleTargetRef": {"name": "api"}, "minReplicaCount": 2, "maxReplicaCount": 20}})
        assert (stack_violations("capacity-node-groups-hold-hpa-max", stack) == []) is fits


def test_unknown_instance_type_is_reported():
    stack = _capacity_stack(3)
    stack[2] = resource("aws:eks/nodeGroup:NodeGroup", "apps", {"instanceTypes": ["x9.huge"],
                                                               "scalingConfig": {"minSize": 1, "maxSize": 3}})
    assert any("x9.huge" in m for m, _ in stack_violations("capacity-node-groups-hold-hpa-max", stack))


# --- capacity-time-to-scale --------------------------------------------------------------------

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
SLOW = {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}


def _app(name, *, max_replicas=20, scale_up=None, keda=False):
    """A Deployment (500m/512Mi pods) and its autoscaler: min 2, so the 5x peak needs 10."""
    deployment = copy.deepcopy(GOOD)
    deployment["metadata"]["name"] = name
    behavior = {"scaleUp": scale_up or {"stabilizationWindowSeconds": 0}, "scaleDown": {}}
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    if keda:
        autoscaler = resource(SCALED_OBJECT, name, {"metadata": {"namespace": "cofounder"}, "spec": {
            "scaleTargetRef": ref, "minReplicaCount": 2, "maxReplicaCount": max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}}}})
    else:
        autoscaler = resource(HPA, name, {"metadata": {"namespace": "cofounder"}, "spec": {
            "scaleTargetRef": ref, "minReplicas": 2, "maxReplicas": max_replicas, "behavior": behavior}})
    return [resource(DEPLOYMENT, name, deployment), autoscaler]


def _headroom(replicas, cpu="1", memory="1Gi"):
    return [resource(PRIORITY_CLASS, "hr-priority", {"metadata": {"name": "hr-placeholder"}, "value": -10}),
            resource(DEPLOYMENT, "hr-placeholder", {
                "metadata": {"name": "hr-placeholder", "namespace": "cofounder"},
                "spec": {"replicas": replicas, "template": {"spec": {
                    "priorityClassName": "hr-placeholder",
                    "containers": [{"name": "pause", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}}})]


def _tts(resources, config=None):
    return stack_violations("capacity-time-to-scale", resources, config)


def _tts_apps(resources, config=None):
    """The per-app verdicts alone: stacks without placeholders, headroom coverage not required."""
    return _tts(resources, {"requireHeadroomCoverage": False, **(config or {})})


def test_default_behavior_meets_the_goal_and_the_headroom_holds_the_first_step():
    # 2 -> 6 at 15 s (+4 pods, Pods 4 beats Percent 100) -> 10 at 30 s; 4 pods fit 2 x 1 CPU/1Gi placeholders
    assert _tts(_app("backend") + _app("worker", keda=True) + _headroom(4)) == []


def test_a_slow_behavior_misses_the_goal():
    stack = _app("backend", scale_up=SLOW) + _app("worker")
    [(message, urn)] = _tts_apps(stack)
    assert urn == stack[1].urn
    assert message.startswith("backend (HorizontalPodAutoscaler): decided at 435s for 10 replicas from 2, goal 45s")
    assert "behavior.scaleUp.policies" in message
    # a non-goal app is only held to its first step
    assert _tts_apps(stack, {"goalApps": ["worker"]}) == []


def test_a_slow_scaled_object_is_evaluated_as_the_hpa_keda_generates():
    stack = _app("worker", scale_up=SLOW, keda=True)
    [(message, urn)] = _tts_apps(stack)
    assert urn == stack[1].urn and message.startswith("worker (ScaledObject): decided at 435s")


def test_a_late_first_step_fails_every_app():
    late = {"stabilizationWindowSeconds": 120, "policies": [{"type": "Percent", "value": 900, "periodSeconds": 15}]}
    [(message, _)] = _tts_apps(_app("frontend", scale_up=late))
    assert "frontend (HorizontalPodAutoscaler)" in message and "the first step comes after 60s" in message


def test_max_replicas_below_the_peak_is_a_violation():
    [(message, _)] = _tts_apps(_app("backend", max_replicas=8))
    assert "decided never" in message
    assert "maxReplicas 8 is below the 10 replicas the peak needs" in message
    assert "raise maxReplicas to at least 10" in message
    assert _tts_apps(_app("backend", max_replicas=8), {"peakMultiplier": 4}) == []  # 8 replicas suffice


def test_headroom_too_small_for_the_first_step_when_coverage_is_required():
    stack = _app("backend") + _app("worker") + _headroom(3)  # 8 first-step pods, room for 6
    [(message, urn)] = _tts(stack)
    assert urn == stack[-1].urn
    assert "(8 pods, 4000m CPU, 4096Mi) does not fit the pre-warmed headroom (3 x 1000m/1024Mi)" in message
    assert _tts(stack, {"requireHeadroomCoverage": False}) == []
    # a pod never spans placeholders: 8 x 400m placeholders hold no 500m pod
    assert _tts(_app("backend") + _headroom(8, cpu="400m"))
    # no placeholders declared: nothing is pre-warmed, so a required coverage fails
    [(message, urn)] = _tts(_app("backend"))
    assert "does not fit the pre-warmed headroom (none declared)" in message
    assert _tts(_app("backend"), {"requireHeadroomCoverage": False}) == []


def test_baseline_replicas_raise_the_peak():
    # baseline 4 -> the peak needs 20 = maxReplicas; 2 -> 6 -> 18 -> 20 decides at 45 s
    assert _tts_apps(_app("backend"), {"baselineReplicas": {"backend": 4}}) == []
    [(message, _)] = _tts_apps(_app("backend"), {"baselineReplicas": {"backend": 5}})
    assert "maxReplicas 20 is below the 25 replicas" in message


def _as_policy_resources(program):
    """The stack's resources as the pack's AnalyzeStack sees them (outputs, secrets unwrapped)."""
    return [resource(r.type, r.name, reveal(r.outputs)) for r in program.resources]


def _pack_settings(stack):
    """The rule's settings for ``stack``: schema defaults, then policies/config/<stack>.json."""
    defaults = {k: v["default"] for k, v in POLICIES["capacity-time-to-scale"].config_schema.properties.items()}
    return {**defaults, **{k: v for k, v in load_config(stack)["capacity-time-to-scale"].items()
                           if k != "enforcementLevel"}}


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack_and_agrees_with_the_report(stack_program, stack):
    program = stack_program(stack)
    assert _tts(_as_policy_resources(program), _pack_settings(stack)) == []
    assert build_reports(program)["time-to-scale"]["ok"] is True


def test_the_rule_flags_exactly_the_apps_the_report_fails(stack_program):
    program = stack_program("prod")
    slow = {r.urn: r for r in program.of_type(HPA)}
    backend = next(r for r in slow.values() if r.inputs["spec"]["scaleTargetRef"]["name"] == "backend")
    spec = {**backend.inputs["spec"], "behavior": {**backend.inputs["spec"]["behavior"], "scaleUp": SLOW}}
    changed = dataclasses.replace(backend, inputs={**backend.inputs, "spec": spec},
                                  outputs={**backend.outputs, "spec": spec})
    program = dataclasses.replace(program, resources=[changed if r is backend else r for r in program.resources])
    failed = {row["app"] for row in build_reports(program)["time-to-scale"]["rows"] if not row["ok"]}
    flagged = {m.split(" ", 1)[0] for m, _ in _tts(_as_policy_resources(program), _pack_settings("prod"))}
    assert failed == flagged == {"backend"}


@pytest.mark.parametrize("stack", STACKS)
def test_pack_config_agrees_with_the_stack_scaling_targets(stack_program, stack):
    """policies/config/<stack>.json and cofounder:scaling cannot drift apart."""
    declared = json.loads(load_stack_file(stack).config.get("cofounder:scaling", "{}"))
    in_file = load_config(stack)["capacity-time-to-scale"]
    shared = set(declared) & set(in_file)
    assert {k: in_file[k] for k in shared} == {k: declared[k] for k in shared}
    # and with defaults filled in on both sides (the program's scalingTargets output)
    effective = stack_program(stack).outputs["scalingTargets"]
    settings = _pack_settings(stack)
    assert settings == {k: effective[k] for k in settings}


def test_pack_defaults_are_the_config_defaults():
    defaults = ScalingSettings().as_camel()
    schema = POLICIES["capacity-time-to-scale"].config_schema.properties
    assert {k: v["default"] for k, v in schema.items()} == {k: defaults[k] for k in schema}
    assert ScalingTargets().as_camel() == {k: defaults[k] for k in ScalingTargets().as_camel()}


def test_values_unknown_in_a_real_preview_do_not_stop_the_rule():
    # `pulumi preview` sends computed values (an image from a registry output, an auto-named
    # PriorityClass) as sentinels the pack's proxies raise on; the rule reads them as absent.
    stack = _app("backend", max_replicas=8) + _headroom(4)
    stack[0].props["spec"]["template"]["spec"]["containers"][0]["image"] = UNKNOWN_STRING_VALUE
    stack[-1].props["spec"]["template"]["spec"]["priorityClassName"] = UNKNOWN_STRING_VALUE
    proxied = [resource(r.resource_type, r.name, unknown_checking_proxy(r.props)) for r in stack]
    [(message, _)] = _tts_apps(proxied)  # the app still checked; the unknown placeholder is not headroom
    assert "maxReplicas 8" in message


# --- capacity-connection-budget ----------------------------------------------------------------

DB_HOST = "db.example.us-east-1.rds.amazonaws.com"


def _ini(pool=20, reserve=5, max_client_conn=1000):
    return (f"[databases]\ncofounder = host={DB_HOST} port=5432 dbname=cofounder\n\n[pgbouncer]\n"
            f"unix_socket_dir =\npool_mode = transaction\ndefault_pool_size = {pool}\n"
            f"reserve_pool_size = {reserve}\nmax_client_conn = {max_client_conn}\n")


def _data_tier(replicas=2, ini=None, instance_class="db.t4g.medium"):
    """RDS (t4g.medium: 405 max_connections), PgBouncer's Secret and the Deployment that mounts it."""
    secret = resource("kubernetes:core/v1:Secret", "pgbouncer-config", {
        "metadata": {"name": "pgbouncer-config-x1", "namespace": "cofounder"},
        "stringData": {"pgbouncer.ini": _ini() if ini is None else ini, "userlist.txt": "..."}})
    bouncer = resource(DEPLOYMENT, "pgbouncer", {
        "metadata": {"name": "pgbouncer", "namespace": "cofounder"},
        "spec": {"replicas": replicas, "template": {"spec": {
            "containers": [{"name": "pgbouncer"}],
            "volumes": [{"name": "config", "secret": {"secretName": "pgbouncer-config-x1"}}]}}}})
    db = resource("aws:rds/instance:Instance", "db", {"engine": "postgres", "instanceClass": instance_class,
                                                     "address": DB_HOST})
    return [db, secret, bouncer]


def _pooled(name, pool, max_replicas=20, keda=False):
    app = _app(name, max_replicas=max_replicas, keda=keda)
    app[0].props["spec"]["template"]["metadata"]["annotations"] = {"cofounder.dev/db-pool-size": str(pool)}
    return app


def _budget(resources, config=None):
    return stack_violations("capacity-connection-budget", resources, config)


def test_connection_budget_fits():
    # server: 2 x (20 + 5) = 50 <= 405 - 10; clients: (20 + 20) x 20 = 800 <= 2 x 1000
    stack = _data_tier() + _pooled("backend", 20) + _pooled("worker", 20, keda=True) + _app("frontend")
    assert _budget(stack) == []


def test_pgbouncer_server_pools_above_rds_max_connections():
    stack = _data_tier(replicas=16) + _pooled("backend", 20)  # 16 x 25 = 400 > 395
    [(message, urn)] = _budget(stack)
    assert urn == stack[2].urn
    assert message == ("PgBouncer server connections 16 replicas x (20 pool + 5 reserve pool) = 400 exceed RDS "
                       "max_connections 405 (db.t4g.medium) minus 10 reserved = 395")
    assert _budget(stack, {"reservedConnections": 5}) == []
    assert _budget(_data_tier(replicas=16, instance_class="db.r7g.large") + _pooled("backend", 20)) == []


def test_app_demand_at_max_scale_above_pgbouncer_client_capacity():
    # the ScaledObject's maximum counts like an HPA's; the frontend (no annotation) holds no pool
    stack = _data_tier(ini=_ini(max_client_conn=300)) + _pooled("backend", 10) + \
        _pooled("worker", 25, max_replicas=20, keda=True) + _app("frontend")
    [(message, _)] = _budget(stack)
    assert message == ("PgBouncer client capacity 2 replicas x 300 max_client_conn = 600 is below the apps' "
                       "demand at maximum scale backend 20 x 10 + worker 20 x 25 = 700")


def test_connection_budget_skips_what_it_cannot_know():
    apps = _pooled("backend", 20)
    assert _budget(apps) == []  # no PgBouncer declared
    unknown = _data_tier(replicas=50)
    unknown[1] = resource(unknown[1].resource_type, unknown[1].name,
                          unknown_checking_proxy({**unknown[1].props, "stringData": UNKNOWN_STRING_VALUE}))
    assert _budget(unknown + apps) == []  # a first preview: the ini waits for the RDS address
    [(message, _)] = _budget(_data_tier(instance_class="db.x9.huge") + apps)
    assert "'db.x9.huge' is not in capacity/connections.py" in message


@pytest.mark.parametrize("stack", STACKS)
def test_connection_budget_uses_the_figures_the_program_checks(stack_program, stack):
    """The rule's server side equals the program's own budget: quiet with the stack's reserve, and
    firing exactly when the reserve eats one connection more than the program's headroom."""
    program = stack_program(stack)
    exported = program.outputs["connectionBudget"]
    reserve = load_config(stack)["capacity-connection-budget"]["reservedConnections"]
    assert reserve == exported["reserve"]  # the pack config agrees with cofounder:postgres
    resources = _as_policy_resources(program)
    assert _budget(resources, {"reservedConnections": reserve}) == []
    edge = reserve + exported["serverHeadroom"]
    assert _budget(resources, {"reservedConnections": edge}) == []
    [(message, _)] = _budget(resources, {"reservedConnections": edge + 1})
    assert f"= {exported['serverConnections']} exceed RDS max_connections {exported['rdsMaxConnections']}" in message


# --- capacity-time-to-scale: Ready, end to end ---------------------------------------------------


def test_an_app_whose_peak_waits_for_a_node_misses_the_ready_goal(stack_program):
    # prod without its placeholders and with a baseline of 4 replicas per app: the worker's last pods
    # wait for the Cluster Autoscaler and a node (tests/test_burst.py), past the 60 s goal.
    program = stack_program("prod")
    resources = [r for r in _as_policy_resources(program)
                 if not (r.resource_type == DEPLOYMENT and "headroom" in r.name)]
    settings = {**_pack_settings("prod"), "baselineReplicas": {"backend": 4, "frontend": 4, "worker": 4}}
    ready = [m for m, _ in _tts(resources, settings) if "readyGoalSeconds" in m]  # besides the coverage one
    assert ready and all(" Ready at " in m and "goal 60s" in m for m in ready)
    assert {m.split(" ", 1)[0] for m in ready} <= {"backend", "frontend", "worker"}


# --- capacity-cost-within-budget ----------------------------------------------------------------


def _cost(resources, config):
    return stack_violations("capacity-cost-within-budget", resources, config)


def _budget_of(usd: float):
    return resource("aws:budgets/budget:Budget", "budget", {"budgetType": "COST", "limitAmount": f"{usd:.2f}",
                                                            "limitUnit": "USD", "timeUnit": "MONTHLY"})


def _priced_stack(budget_usd: float | None = None):
    """An EKS cluster only: one line, fully priced ($0.10 x 730 h = $73), and the budget if given."""
    eks = [resource("aws:eks/cluster:Cluster", "eks", {"version": "1.34"})]
    return eks + ([_budget_of(budget_usd)] if budget_usd is not None else [])


def test_the_cost_rule_is_quiet_without_a_budget():
    # budgets-cost-budget-with-alerts reports the missing budget
    assert _cost(_priced_stack(), {}) == []


def test_the_cost_rule_is_quiet_within_the_declared_budget():
    assert _cost(_priced_stack(100), {}) == []


def test_over_the_declared_budget_at_maximum_scale_is_a_violation():
    [(message, urn)] = _cost(_priced_stack(50), {})
    assert "costs $73.00 per month, over its declared AWS Budget of $50.00" in message
    assert urn.endswith("::budget")


def test_a_missing_price_counts_nothing_and_is_named_when_over_budget():
    stack = _priced_stack(1000) + [resource("aws:eks/nodeGroup:NodeGroup", "ng", {
        "instanceTypes": ["m8g.large"], "scalingConfig": {"minSize": 1, "maxSize": 2}})]
    assert _cost(stack, {}) == []  # the cost report names the missing price (and the program refuses it)
    stack[1] = _budget_of(50)
    [(message, _)] = _cost(stack, {})
    assert message.startswith("incomplete: 1 line unpriced (ec2.instance-hour.m8g.large); at maximum scale the "
                              "priced lines alone cost $73.00 per month")


def test_the_cost_rule_agrees_with_the_report(stack_program):
    program = stack_program("prod")
    config = {k: v for k, v in load_config("prod")["capacity-cost-within-budget"].items() if k != "enforcementLevel"}
    report = build_reports(program)["cost"]["data"]["monthly"]["maxScale"]
    resources = _as_policy_resources(program)
    assert _cost(resources, config) == []  # the program's budget is this very estimate plus the margin
    lowered = [_budget_of(report - 1) if r.resource_type == "aws:budgets/budget:Budget" else r for r in resources]
    found = _cost(lowered, config)
    assert found[0][0].startswith(f"at maximum scale the stack costs ${report:,.2f} per month, over its declared "
                                  "AWS Budget")
