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


@pytest.mark.parametrize("policy", ["k8s-hpa-max-replicas-bounded", "k8s-hpa-min-replicas", "k8s-hpa-scaling-behavior"])
def test_a_bounded_hpa_with_behavior_passes(policy):
    assert violations(policy, HPA, GOOD_HPA) == []


def test_hpa_bounds_follow_the_stack_config():
    assert violations("k8s-hpa-max-replicas-bounded", HPA, GOOD_HPA, {"maximum": 10})
    one = {**GOOD_HPA, "spec": {**GOOD_HPA["spec"], "minReplicas": 1}}
    assert violations("k8s-hpa-min-replicas", HPA, one)
    assert violations("k8s-hpa-min-replicas", HPA, one, {"minimum": 1}) == []


def test_hpa_without_behavior_is_a_violation():
    bare = {**GOOD_HPA, "spec": {**GOOD_HPA["spec"], "behavior": {"scaleUp": {}}}}
    [message] = violations("k8s-hpa-scaling-behavior", HPA, bare)
    assert "scaleDown" in message


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
