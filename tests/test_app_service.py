"""components/app_service.py: rollout safety, pod hardening and exactly one autoscaler."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.app_service import (
    AppService,
    AppServiceArgs,
    QueueScaling,
    QueueTierScaling,
    ScalingPolicy,
    ScalingRules,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/agents"
TIERS = [QueueTierScaling(tier="high", queue_url=f"{QUEUE_URL}-high", weight=2),
         QueueTierScaling(tier="normal", queue_url=f"{QUEUE_URL}-normal", weight=1),
         QueueTierScaling(tier="low", queue_url=f"{QUEUE_URL}-low", weight=0.5)]


def _scaling(**overrides) -> QueueScaling:
    return QueueScaling(**{"tiers": TIERS, "concurrency_per_pod": 5, "aws_region": "us-east-1", **overrides})


def _app(run_program, name="backend", **overrides):
    def program():
        provider = k8s.Provider("k8s")
        AppService(name, AppServiceArgs(namespace="cofounder", image="ghcr.io/cofounder/backend:1.0.0",
                                        **overrides),
                   opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


def _pod(p, name="backend"):
    return p.one(DEPLOYMENT, f"{name}-deployment").inputs["spec"]["template"]


def test_every_kubernetes_object_matches_the_official_schema(run_program, validate_k8s):
    p = _app(run_program, active_agents_target=5, role_arn="arn:aws:iam::123456789012:role/x",
             env_from_secrets=["cofounder-database"], env_from_config_maps=["cofounder-queue"])
    objects = [r for r in p.resources if r.type.startswith("kubernetes:") and r.custom
               and not r.type.startswith("kubernetes:keda.sh") and "providers" not in r.type]
    assert len(objects) == 5
    for r in objects:
        validate_k8s(r)


def test_rollout_never_drops_below_the_current_pods_and_leaves_replicas_to_the_hpa(run_program):
    spec = _app(run_program).one(DEPLOYMENT).inputs["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
    assert "replicas" not in spec


def test_pods_are_probed_drained_and_spread(run_program):
    template = _pod(_app(run_program, pre_stop_sleep_seconds=15, termination_grace_period_seconds=60))
    pod = template["spec"]
    (c,) = pod["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz/ready", "port": 8080}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz/live"
    assert c["startupProbe"]["httpGet"]["port"] == 8080
    assert c["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    assert pod["terminationGracePeriodSeconds"] == 60
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                              "limits": {"cpu": "1", "memory": "512Mi"}}
    keys = {t["topologyKey"]: t["whenUnsatisfiable"] for t in pod["topologySpreadConstraints"]}
    assert keys == {"topology.kubernetes.io/zone": "DoNotSchedule", "kubernetes.io/hostname": "ScheduleAnyway"}
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "true"
    assert template["metadata"]["annotations"]["cofounder.dev/db-pool-size"] == "0"  # no database by default


def test_pods_are_hardened_and_get_no_api_token_without_aws(run_program):
    p = _app(run_program)
    pod = _pod(p)["spec"]
    (c,) = pod["containers"]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert pod["volumes"][0]["emptyDir"]
    assert pod["automountServiceAccountToken"] is False
    assert "env" not in c and "envFrom" not in c
    sa = p.one("kubernetes:core/v1:ServiceAccount").inputs
    assert sa["automountServiceAccountToken"] is False
    assert "annotations" not in sa["metadata"]


def test_irsa_role_settings_and_long_running_worker(run_program):
    arn = "arn:aws:iam::123456789012:role/worker"
    p = _app(run_program, name="worker", role_arn=arn, safe_to_evict=False, db_pool_size=20,
             env_from_secrets=["cofounder-database"], env_from_config_maps=["cofounder-queue"])
    sa = p.one("kubernetes:core/v1:ServiceAccount").inputs
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}
    template = _pod(p, "worker")
    # IRSA's token is the webhook's own projected volume: no API-server token even with a role
    assert template["spec"]["automountServiceAccountToken"] is False and sa["automountServiceAccountToken"] is False
    assert template["spec"]["serviceAccountName"] == "worker"
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert template["metadata"]["annotations"]["cofounder.dev/db-pool-size"] == "20"
    assert template["spec"]["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "cofounder-database"}}, {"configMapRef": {"name": "cofounder-queue"}}]


def test_default_hpa_scales_on_cpu_and_memory_with_explicit_behavior(run_program):
    p = _app(run_program)
    spec = p.one(HPA).inputs["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "backend"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu", "memory"]
    assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert spec["behavior"]["scaleUp"] == {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}, {"type": "Pods", "value": 4, "periodSeconds": 15}]}
    assert spec["behavior"]["scaleDown"] == {"stabilizationWindowSeconds": 300, "selectPolicy": "Min",
                                             "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}
    assert not p.of_type(SCALED_OBJECT)


def test_active_agents_and_custom_behavior_override(run_program):
    rules = ScalingRules(stabilization_window_seconds=0, policies=(ScalingPolicy(type="Pods", value=8),))
    spec = _app(run_program, active_agents_target=5, min_replicas=3, max_replicas=40,
                scale_up=rules).one(HPA).inputs["spec"]
    assert spec["metrics"][2] == {"type": "Pods", "pods": {
        "metric": {"name": "cofounder_active_agents"},
        "target": {"type": "AverageValue", "averageValue": "5"}}}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (3, 40)
    assert spec["behavior"]["scaleUp"]["policies"] == [{"type": "Pods", "value": 8, "periodSeconds": 15}]


def test_pdb_limits_voluntary_disruption(run_program):
    spec = _app(run_program).one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert spec["maxUnavailable"] == 1
    assert spec["selector"]["matchLabels"]["app.kubernetes.io/name"] == "backend"


def test_queue_scaling_puts_every_metric_in_one_keda_owned_hpa(run_program, validate_crd):
    p = _app(run_program, name="worker", min_replicas=3, max_replicas=40, queue_scaling=_scaling())
    assert not p.of_type(HPA)
    so = p.one(SCALED_OBJECT).inputs
    assert so["apiVersion"] == "keda.sh/v1alpha1"
    spec = so["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (3, 40)
    assert spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    triggers = spec["triggers"]
    assert [(t["type"], t.get("name")) for t in triggers] == [
        ("cpu", None), ("memory", None), ("aws-sqs-queue", "queue_high"), ("aws-sqs-queue", "queue_normal"),
        ("aws-sqs-queue", "queue_low")]
    assert triggers[0] == {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}
    auth = p.one(TRIGGER_AUTH).inputs
    for t, tier in zip(triggers[2:], ("high", "normal", "low"), strict=True):
        assert t["metadata"] == {"queueURL": f"{QUEUE_URL}-{tier}", "awsRegion": "us-east-1", "queueLength": "5",
                                 "scaleOnInFlight": "true", "scaleOnDelayed": "false"}
        assert t["authenticationRef"] == {"name": auth["metadata"]["name"]}
    # one composite metric: every tier's waiting + running messages, weighted, per 5 agent slots a pod
    assert spec["advanced"]["scalingModifiers"] == {
        "formula": "2 * queue_high + 1 * queue_normal + 0.5 * queue_low", "target": "5", "metricType": "AverageValue"}
    assert auth["spec"] == {"podIdentity": {"provider": "aws", "identityOwner": "keda"}}
    assert auth["metadata"]["namespace"] == so["metadata"]["namespace"] == "cofounder"
    scaled = p.one(SCALED_OBJECT)
    assert p.one(TRIGGER_AUTH).urn in scaled.options["dependsOn"]
    # what KEDA 2.18.1's API server would accept (vendored CRDs), no field it would prune
    validate_crd(scaled)
    validate_crd(p.one(TRIGGER_AUTH))


def test_a_queue_scaled_app_takes_no_external_trigger_beside_the_formula(run_program):
    with pytest.raises(ValueError) as err:
        _app(run_program, name="worker", active_agents_target=5, queue_scaling=_scaling())
    assert str(err.value) == ("AppService worker: active_agents_target = 5 is not allowed: expected null with "
                              "queue_scaling: KEDA's composite metric replaces every external trigger")
    with pytest.raises(ValueError, match="at least one queue tier"):
        _app(run_program, name="worker", queue_scaling=_scaling(tiers=[]))


@pytest.mark.parametrize("overrides, message", [
    ({"min_replicas": 5, "max_replicas": 3},
     "AppService backend: min_replicas = 5 is not allowed: expected at most maxReplicas (3)"),
    ({"pre_stop_sleep_seconds": 30, "termination_grace_period_seconds": 30},
     "AppService backend: termination_grace_period_seconds = 30 is not allowed: expected more than "
     "preStopSleepSeconds (30) so connections drain"),
])
def test_inconsistent_args_are_refused(run_program, overrides, message):
    with pytest.raises(ValueError) as err:
        _app(run_program, **overrides)
    assert str(err.value) == message


def test_every_child_is_parented_and_named_after_the_component(run_program):
    p = _app(run_program, queue_scaling=_scaling())
    component = p.one("cofounder:apps:AppService")
    for r in p.resources:
        if r.type.startswith("kubernetes:") and "providers" not in r.type:
            assert r.parent == component.urn and r.name.startswith("backend-")


# --- behind the ALB: a TargetGroupBinding per Service ----------------------------------------

TGB = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/backend/0123456789abcdef"


def _behind_alb(run_program, **overrides):
    from components.app_service import LoadBalancerTarget

    def program():
        provider = k8s.Provider("k8s")
        controller = k8s.helm.v3.Release("controller", chart="aws-load-balancer-controller",
                                         opts=pulumi.ResourceOptions(provider=provider))
        AppService("backend", AppServiceArgs(
            namespace="cofounder", image="ghcr.io/cofounder/backend:1.0.0",
            load_balancer=LoadBalancerTarget(target_group_arn=TG_ARN, vpc_id="vpc-0123456789abcdef0",
                                             controller=controller), **overrides),
            opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


def test_the_binding_registers_the_service_pods_in_the_target_group(run_program, validate_crd):
    p = _behind_alb(run_program)
    binding = validate_crd(p.one(TGB))
    service = p.one("kubernetes:core/v1:Service")
    assert binding["spec"] == {
        "serviceRef": {"name": service.outputs["metadata"]["name"], "port": 80},
        "targetGroupARN": TG_ARN,
        # declared, not left to the webhook, which refuses to change them later
        "targetType": "ip", "ipAddressType": "ipv4", "targetGroupProtocol": "HTTP",
        "vpcID": "vpc-0123456789abcdef0",
    }
    assert binding["metadata"]["namespace"] == "cofounder"


def test_the_binding_exists_before_the_pods_and_after_the_controller(run_program):
    p = _behind_alb(run_program)
    binding = p.one(TGB)
    # readiness gates are injected only into pods created while a binding refers to their Service
    assert binding.urn in p.one(DEPLOYMENT).options["dependsOn"]
    assert p.one("kubernetes:helm.sh/v3:Release").urn in binding.options["dependsOn"]
    # one binding per target group, immutable ARN: replaced, old one first
    assert binding.options["deleteBeforeReplace"] is True
    assert binding.options["replaceOnChanges"] == ["spec.targetGroupARN", "spec.vpcID"]


def test_no_binding_for_an_app_outside_the_load_balancer(run_program):
    p = _app(run_program)
    assert not p.of_type(TGB)
    assert p.one(DEPLOYMENT).options["dependsOn"] == []


def test_the_default_drain_fits_behind_the_alb(run_program):
    """preStop 15 s and grace 75 s: the defaults satisfy capacity/drain.py for the API's 60 s."""
    from capacity.drain import Drain
    pod = _pod(_app(run_program))["spec"]
    (c,) = pod["containers"]
    drain = Drain(pre_stop_sleep_seconds=c["lifecycle"]["preStop"]["sleep"]["seconds"],
                  termination_grace_period_seconds=pod["terminationGracePeriodSeconds"], longest_request_seconds=60)
    assert drain.problems() == [] and drain.deregistration_delay_seconds == 60
