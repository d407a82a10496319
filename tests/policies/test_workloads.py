"""Kubernetes workload, HPA and PDB rules."""

import copy

import pytest

from tests.policies.helpers import resource, stack_violations, violations

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
CONTAINER = {
    "name": "api", "image": "ghcr.io/cofounder/api:1.4.2",
    "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}},
    "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}},
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}
GOOD = {"metadata": {"name": "api", "namespace": "cofounder"}, "spec": {"template": {
    "metadata": {"labels": {"app": "api"}},
    "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001}, "automountServiceAccountToken": False,
             "containers": [CONTAINER]}}}}
RULES = ["k8s-workload-resources", "k8s-workload-probes", "k8s-workload-image-pinned",
         "k8s-workload-run-as-non-root", "k8s-workload-no-privilege", "k8s-workload-no-api-token"]


def _with_container(**change):
    doc = copy.deepcopy(GOOD)
    container = doc["spec"]["template"]["spec"]["containers"][0]
    for key, value in change.items():
        if value is None:
            container.pop(key, None)
        else:
            container[key] = value
    return doc


@pytest.mark.parametrize("policy", RULES)
def test_a_hardened_deployment_passes(policy):
    assert violations(policy, DEPLOYMENT, GOOD) == []


@pytest.mark.parametrize("policy, change", [
    ("k8s-workload-resources", {"resources": {"requests": {"cpu": "1"}}}),
    ("k8s-workload-probes", {"livenessProbe": None}),
    ("k8s-workload-image-pinned", {"image": "ghcr.io/cofounder/api:latest"}),
    ("k8s-workload-image-pinned", {"image": "ghcr.io/cofounder/api"}),
    ("k8s-workload-image-pinned", {"image": "registry.local:5000/api"}),  # a port is not a tag
    ("k8s-workload-run-as-non-root", {"securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": False}}),
    ("k8s-workload-no-privilege", {"securityContext": {"allowPrivilegeEscalation": False, "privileged": True}}),
    ("k8s-workload-no-privilege", {"securityContext": {}}),
])
def test_each_unsafe_container_setting_is_a_violation(policy, change):
    assert violations(policy, DEPLOYMENT, _with_container(**change))


def test_pod_level_non_root_is_required_when_containers_do_not_set_it():
    doc = copy.deepcopy(GOOD)
    del doc["spec"]["template"]["spec"]["securityContext"]
    assert violations("k8s-workload-run-as-non-root", DEPLOYMENT, doc)


def test_digest_pinned_images_pass_and_cronjobs_are_checked():
    assert violations("k8s-workload-image-pinned", DEPLOYMENT,
                      _with_container(image="ghcr.io/cofounder/api@sha256:" + "a" * 64)) == []
    cron = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
        {"name": "job", "image": "busybox"}]}}}}}}
    assert violations("k8s-workload-image-pinned", "kubernetes:batch/v1:CronJob", cron)
    assert violations("k8s-workload-probes", "kubernetes:batch/v1:CronJob", cron) == []  # jobs need no probes


GOOD_HPA = {"metadata": {"namespace": "cofounder"}, "spec": {
    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
    "minReplicas": 2, "maxReplicas": 20,
    "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0}, "scaleDown": {"stabilizationWindowSeconds": 300}}}}
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
#: The same bounds and behavior as GOOD_HPA, declared the way KEDA takes them (the worker's shape).
GOOD_SCALED_OBJECT = {"metadata": {"namespace": "cofounder"}, "spec": {
    "scaleTargetRef": {"name": "api"}, "minReplicaCount": 2, "maxReplicaCount": 20,
    "advanced": {"horizontalPodAutoscalerConfig": {"behavior": GOOD_HPA["spec"]["behavior"]}},
    "triggers": [{"type": "aws-sqs-queue", "metadata": {"queueLength": "5"}}]}}
HPA_RULES = ["k8s-hpa-max-replicas-bounded", "k8s-hpa-min-replicas", "k8s-hpa-scaling-behavior"]


def _autoscaled(kind, spec_change=None, drop=()):
    """The Deployment and its autoscaler (``HPA`` or ``SCALED_OBJECT``), with spec keys changed or dropped."""
    doc = copy.deepcopy(GOOD_HPA if kind == HPA else GOOD_SCALED_OBJECT)
    doc["spec"].update(spec_change or {})
    for key in drop:
        doc["spec"].pop(key)
    return [resource(DEPLOYMENT, "api", GOOD), resource(kind, "api", doc)]


@pytest.mark.parametrize("kind", [HPA, SCALED_OBJECT])
@pytest.mark.parametrize("policy", HPA_RULES)
def test_a_bounded_autoscaler_with_behavior_passes(policy, kind):
    assert stack_violations(policy, _autoscaled(kind)) == []


@pytest.mark.parametrize("kind, field", [(HPA, "maxReplicas"), (SCALED_OBJECT, "maxReplicaCount")])
def test_max_replicas_above_the_cap_is_a_violation(kind, field):
    [(message, urn)] = stack_violations("k8s-hpa-max-replicas-bounded", _autoscaled(kind), {"maximum": 10})
    assert message == f"api ({kind.rsplit(':', 1)[1]}) spec.{field} 20 is above the stack's cap of 10"
    assert urn.endswith(f"{kind}::api")


def test_a_scaled_object_without_max_is_held_to_kedas_default_of_100():
    stack = _autoscaled(SCALED_OBJECT, drop=["maxReplicaCount"])
    assert stack_violations("k8s-hpa-max-replicas-bounded", stack, {"maximum": 100}) == []
    [(message, _)] = stack_violations("k8s-hpa-max-replicas-bounded", stack)  # the default cap, 50
    assert "spec.maxReplicaCount 100 is above the stack's cap of 50" in message


@pytest.mark.parametrize("kind, change, shown", [
    (HPA, {"minReplicas": 1}, "spec.minReplicas 1"),
    (SCALED_OBJECT, {"minReplicaCount": 1}, "spec.minReplicaCount 1"),
    # KEDA's own HPA never goes below 1, but KEDA takes the Deployment to 0 while idle
    (SCALED_OBJECT, {"minReplicaCount": 0}, "spec.minReplicaCount 0"),
    (SCALED_OBJECT, {"idleReplicaCount": 0}, "spec.minReplicaCount 0"),
])
def test_min_replicas_below_the_minimum_is_a_violation(kind, change, shown):
    [(message, _)] = stack_violations("k8s-hpa-min-replicas", _autoscaled(kind, change))
    assert f"{shown} is below the stack's minimum of 2" in message


def test_min_replicas_follow_the_stack_config():
    one = _autoscaled(HPA, {"minReplicas": 1})
    assert stack_violations("k8s-hpa-min-replicas", one, {"minimum": 1}) == []
    # a ScaledObject that scales to zero is below even dev's minimum of one
    assert stack_violations("k8s-hpa-min-replicas", _autoscaled(SCALED_OBJECT, drop=["minReplicaCount"]),
                            {"minimum": 1})


def test_hpa_without_behavior_is_a_violation():
    [(message, _)] = stack_violations("k8s-hpa-scaling-behavior", _autoscaled(HPA, {"behavior": {"scaleUp": {}}}))
    assert message == "api (HorizontalPodAutoscaler) spec.behavior has no scaleDown"


def test_scaled_object_without_behavior_is_a_violation():
    [(message, _)] = stack_violations("k8s-hpa-scaling-behavior", _autoscaled(SCALED_OBJECT, drop=["advanced"]))
    assert message == ("api (ScaledObject) spec.advanced.horizontalPodAutoscalerConfig.behavior "
                       "has no scaleUp or scaleDown")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_the_autoscaler_rules_see_every_app_of_every_stack(stack_program, stack):
    """The worker scales through a KEDA ScaledObject in every stack: the rules check it like the
    HPAs of the others, so a cap below each app's maximum flags all three."""
    from tests.policies.test_capacity import _as_policy_resources
    resources = _as_policy_resources(stack_program(stack))
    flagged = {tuple(m.split(" ", 2)[:2]) for m, _ in stack_violations("k8s-hpa-max-replicas-bounded", resources, {"maximum": 1})}
    assert flagged == {("frontend", "(HorizontalPodAutoscaler)"), ("backend", "(HorizontalPodAutoscaler)"),
                       ("worker", "(ScaledObject)")}
    assert {m.split(" ", 1)[0] for m, _ in stack_violations("k8s-hpa-min-replicas", resources,
                                                              {"minimum": 50})} == {"frontend", "backend", "worker"}


def _stack(pdb_selector):
    resources = [resource(DEPLOYMENT, "api", GOOD), resource(HPA, "api", GOOD_HPA)]
    if pdb_selector is not None:
        resources.append(resource(PDB, "api", {"metadata": {"namespace": "cofounder"},
                                               "spec": {"maxUnavailable": 1, "selector": pdb_selector}}))
    return resources


def test_scaled_deployment_with_matching_pdb_passes():
    assert stack_violations("k8s-scaled-deployment-has-pdb", _stack({"matchLabels": {"app": "api"}})) == []
    expr = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["api", "web"]}]}
    assert stack_violations("k8s-scaled-deployment-has-pdb", _stack(expr)) == []


@pytest.mark.parametrize("selector", [None, {"matchLabels": {"app": "worker"}}, {}])
def test_scaled_deployment_without_matching_pdb_is_a_violation(selector):
    [(message, urn)] = stack_violations("k8s-scaled-deployment-has-pdb", _stack(selector))
    assert urn.endswith(f"{DEPLOYMENT}::api")


def test_a_deployment_scaled_by_keda_needs_a_pdb_too():
    scaled = _autoscaled(SCALED_OBJECT)
    [(message, urn)] = stack_violations("k8s-scaled-deployment-has-pdb", scaled)
    assert urn.endswith(f"{DEPLOYMENT}::api")
    pdb = resource(PDB, "api", {"metadata": {"namespace": "cofounder"},
                                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "api"}}}})
    assert stack_violations("k8s-scaled-deployment-has-pdb", scaled + [pdb]) == []


def test_an_autoscaler_of_an_undeclared_deployment_is_a_violation():
    [(message, urn)] = stack_violations("k8s-scaled-deployment-has-pdb", _autoscaled(SCALED_OBJECT)[1:])
    assert message == "ScaledObject targets Deployment 'api', which the stack does not declare"
    assert urn.endswith(f"{SCALED_OBJECT}::api")


# --- images by digest ---------------------------------------------------------------------------

DIGEST = "@sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("image", ["ghcr.io/cofounder/api:1.4.2" + DIGEST, "ghcr.io/cofounder/api" + DIGEST,
                                   "registry.k8s.io/pause:3.10.1" + DIGEST])
def test_an_image_by_digest_passes(image):
    assert violations("k8s-workload-image-digest", DEPLOYMENT, _with_container(image=image)) == []


@pytest.mark.parametrize("image", ["ghcr.io/cofounder/api:1.4.2", "ghcr.io/cofounder/api:1.4.2@sha256:abc",
                                   "ghcr.io/cofounder/api:1.4.2@sha256:" + "0" * 64 + "-x"])
def test_an_image_by_tag_alone_is_a_violation(image):
    [message] = violations("k8s-workload-image-digest", DEPLOYMENT, _with_container(image=image))
    assert message.startswith(f"container 'api' runs {image!r} without a digest")


def test_init_containers_and_cronjobs_need_digests_too():
    doc = _with_container(image="ghcr.io/cofounder/api:1.4.2" + DIGEST)
    doc["spec"]["template"]["spec"]["initContainers"] = [{"name": "migrate", "image": "ghcr.io/cofounder/api:1.4.2"}]
    [message] = violations("k8s-workload-image-digest", DEPLOYMENT, doc)
    assert message.startswith("initContainer 'migrate'")
    cron = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
        {"name": "job", "image": "busybox:1.37"}]}}}}}}
    assert violations("k8s-workload-image-digest", "kubernetes:batch/v1:CronJob", cron)


def test_the_tag_only_allowance_is_exact():
    allowed = {"allowTagOnly": ["quay.io/prometheuscommunity/pgbouncer-exporter:v0.11.0"]}
    exporter = _with_container(image="quay.io/prometheuscommunity/pgbouncer-exporter:v0.11.0")
    assert violations("k8s-workload-image-digest", DEPLOYMENT, exporter, allowed) == []
    assert violations("k8s-workload-image-digest", DEPLOYMENT, exporter)  # not by default
    bumped = _with_container(image="quay.io/prometheuscommunity/pgbouncer-exporter:v0.12.0")
    assert violations("k8s-workload-image-digest", DEPLOYMENT, bumped, allowed)  # a bump must find its digest


def test_prod_requires_digests_and_the_other_stacks_advise(stack_policies):
    """Quiet in prod, whose images are all by digest (the apps' placeholders, see
    stacks/Pulumi.prod.yaml) or allowed by tag; dev and staging run the apps by tag, advised (their
    Deployments, and the prepuller's init container for each)."""
    from toolkit.policy_runner import load_config
    assert load_config("prod")["k8s-workload-image-digest"]["enforcementLevel"] == "mandatory"
    assert [v for v in stack_policies("prod") if v["policy"] == "k8s-workload-image-digest"] == []
    for stack in ("dev", "staging"):
        found = [v for v in stack_policies(stack) if v["policy"] == "k8s-workload-image-digest"]
        assert {v["enforcement"] for v in found} == {"advisory"}
        assert sorted(v["urn"].rsplit("::", 1)[1] for v in found) == [
            "backend-deployment", "frontend-deployment", *["image-prepuller-daemonset"] * 3, "worker-deployment"]


def test_pause_placeholders_need_no_probes_but_lookalikes_do():
    """The headroom placeholders run the pause image, which serves nothing; any other image
    without probes (even one named like it) is still flagged."""
    pause = _with_container(image="registry.k8s.io/pause:3.10.1", readinessProbe=None, livenessProbe=None)
    assert violations("k8s-workload-probes", DEPLOYMENT, pause) == []
    lookalike = _with_container(image="ghcr.io/evil/pause:3.10.1", readinessProbe=None, livenessProbe=None)
    assert violations("k8s-workload-probes", DEPLOYMENT, lookalike)


# --- pods behind the load balancer are ready before they take traffic ------------------------

TGB = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"


def _balanced(container: dict, service_selector: dict | None = None, service_name: str = "backend"):
    from tests.policies.helpers import resource
    labels = {"app.kubernetes.io/name": "backend"}
    return [
        resource(TGB, "backend-tgb", {"metadata": {"name": "backend", "namespace": "cofounder"},
                                      "spec": {"serviceRef": {"name": service_name, "port": 80}}}),
        resource("kubernetes:core/v1:Service", "backend-service", {
            "metadata": {"name": "backend", "namespace": "cofounder"},
            "spec": {"selector": service_selector or labels}}),
        resource("kubernetes:apps/v1:Deployment", "backend-deployment", {
            "metadata": {"name": "backend", "namespace": "cofounder"},
            "spec": {"template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}}),
    ]


def test_a_load_balanced_pod_with_a_readiness_probe_passes():
    from tests.policies.helpers import stack_violations
    ready = {"name": "backend", "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 8080}}}
    assert stack_violations("k8s-load-balanced-pods-ready", _balanced(ready)) == []


def test_a_load_balanced_pod_without_one_is_a_violation():
    from tests.policies.helpers import stack_violations
    [(message, urn)] = stack_violations("k8s-load-balanced-pods-ready", _balanced({"name": "backend"}))
    assert "container 'backend' is behind the load balancer" in message
    assert urn.endswith("::backend-deployment")


def test_pods_the_service_does_not_select_are_not_held_to_it():
    from tests.policies.helpers import stack_violations
    other = _balanced({"name": "backend"}, service_selector={"app.kubernetes.io/name": "frontend"})
    assert stack_violations("k8s-load-balanced-pods-ready", other) == []


def test_a_binding_to_an_undeclared_service_is_a_violation():
    from tests.policies.helpers import stack_violations
    [(message, _)] = stack_violations("k8s-load-balanced-pods-ready",
                                      _balanced({"name": "backend"}, service_name="api"))
    assert "Service 'api', which the stack does not declare" in message


@pytest.mark.parametrize("automount", [True, None])
def test_a_pod_with_an_api_token_is_a_violation(automount):
    doc = copy.deepcopy(GOOD)
    spec = doc["spec"]["template"]["spec"]
    if automount is None:
        del spec["automountServiceAccountToken"]
    else:
        spec["automountServiceAccountToken"] = automount
    assert violations("k8s-workload-no-api-token", DEPLOYMENT, doc) == [
        "the pod spec does not set automountServiceAccountToken: false, so every container gets a token for "
        "the Kubernetes API"]


SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


def test_a_monitor_that_honours_the_apps_labels_is_a_violation():
    honoring = {"spec": {"endpoints": [{"port": "http"}, {"port": "admin", "honorLabels": True}]}}
    assert violations("k8s-monitor-keeps-target-labels", SERVICE_MONITOR, honoring) == [
        "endpoints[1] sets honorLabels: true, so a scraped series may carry its own namespace and pod labels "
        "in place of the target's"]
    pod_monitor = {"spec": {"podMetricsEndpoints": [{"port": "metrics", "honorLabels": True}]}}
    assert len(violations("k8s-monitor-keeps-target-labels", POD_MONITOR, pod_monitor)) == 1


def test_monitors_that_keep_the_target_labels_pass():
    for endpoint in ({"port": "http"}, {"port": "http", "honorLabels": False}):
        assert violations("k8s-monitor-keeps-target-labels", SERVICE_MONITOR, {"spec": {"endpoints": [endpoint]}}) == []
