"""Kubernetes workloads the program declares directly (not Helm charts' own objects): pod
hygiene and security, autoscaler bounds and behavior, and a PodDisruptionBudget for every
autoscaled Deployment.

An autoscaled Deployment is driven by a native HorizontalPodAutoscaler or by a KEDA ScaledObject
(the worker, in every stack); the autoscaler rules read both the way the capacity rules do:
``autoscalers`` turns each into the HPA that really drives the Deployment
(``capacity/scale_up.py`` ``autoscaled``: a ScaledObject becomes the HPA KEDA generates).
"""

from __future__ import annotations

import re
from typing import Any

from capacity.scale_up import HPA_KIND, SCALED_OBJECT_KIND, Autoscaled, autoscaled
from cofounder_policies.rules import ADVISORY, MANDATORY, get, items, of_type, plain, resource_rule, stack_rule
from cofounder_policies.settings import setting

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SERVICE = "kubernetes:core/v1:Service"
TARGET_GROUP_BINDING = "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"
#: Long-running workloads: these need probes (a Job's pod is done when it exits).
SERVING = [DEPLOYMENT, "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
           "kubernetes:apps/v1:ReplicaSet"]
#: Everything that declares pods.
WORKLOADS = SERVING + ["kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod"]
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _pod_spec(props):
    """The pod spec of a workload, whichever kind (found by its shape, as props carry no type)."""
    for path in ("spec.template.spec", "spec.jobTemplate.spec.template.spec"):
        spec = get(props, path)
        if spec is not None:
            return spec
    return get(props, "spec", {})


def _containers(props, init: bool = True):
    spec = _pod_spec(props)
    found = [("container", c) for c in items(get(spec, "containers"))]
    if init:
        found += [("initContainer", c) for c in items(get(spec, "initContainers"))]
    return found


def _resources(props, settings):
    for kind, c in _containers(props):
        needed = ["requests.cpu", "requests.memory", "limits.memory"]
        missing = [n for n in needed if get(c, f"resources.{n}") is None]
        if missing:
            yield f"{kind} {get(c, 'name')!r} has no resources.{', resources.'.join(missing)}"


#: The Kubernetes pause image: a container that only sleeps and serves nothing (the pre-warmed
#: headroom placeholders), so readiness and liveness have no meaning for it.
_PAUSE_IMAGE = re.compile(r"^(registry\.k8s\.io|k8s\.gcr\.io)/pause[:@]")


def _probes(props, settings):
    for _, c in _containers(props, init=False):
        if _PAUSE_IMAGE.match(str(get(c, "image") or "")):
            continue
        missing = [p for p in ("readinessProbe", "livenessProbe") if get(c, p) is None]
        if missing:
            yield f"container {get(c, 'name')!r} has no {' or '.join(missing)}"


def image_pinned(image: str) -> bool:
    """True for ``repo:tag`` (not ``latest``) or ``repo@sha256:...``."""
    if _DIGEST.search(image):
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def _image_pinned(props, settings):
    for kind, c in _containers(props):
        image = str(get(c, "image", ""))
        if not image_pinned(image):
            yield f"{kind} {get(c, 'name')!r} uses image {image!r} without a fixed tag or digest"


def _image_digest(props, settings):
    allowed = set(settings["allowTagOnly"])
    for kind, c in _containers(props):
        image = str(get(c, "image", ""))
        if not _DIGEST.search(image) and image not in allowed:
            yield (f"{kind} {get(c, 'name')!r} runs {image!r} without a digest: whoever can push to the "
                   f"registry can change what that tag runs")


def _non_root(props, settings):
    pod_level = get(_pod_spec(props), "securityContext.runAsNonRoot")
    for kind, c in _containers(props):
        own = get(c, "securityContext.runAsNonRoot")
        if not (own is True or (own is None and pod_level is True)):
            yield f"{kind} {get(c, 'name')!r} may run as root (runAsNonRoot is not true)"


def _no_privilege(props, settings):
    if get(_pod_spec(props), "hostNetwork") is True or get(_pod_spec(props), "hostPID") is True:
        yield "the pod shares the node's network or PID namespace"
    for kind, c in _containers(props):
        ctx = get(c, "securityContext", {})
        if get(ctx, "privileged") is True:
            yield f"{kind} {get(c, 'name')!r} is privileged"
        if get(ctx, "allowPrivilegeEscalation") is not False:
            yield f"{kind} {get(c, 'name')!r} does not set allowPrivilegeEscalation=false"


def _no_api_token(props, settings):
    if get(_pod_spec(props), "automountServiceAccountToken") is not False:
        yield ("the pod spec does not set automountServiceAccountToken: false, so every container gets "
               "a token for the Kubernetes API")


SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


def _monitor_keeps_target_labels(props, settings):
    spec = get(props, "spec", {})
    for key in ("endpoints", "podMetricsEndpoints"):
        for i, endpoint in enumerate(items(get(spec, key))):
            if get(endpoint, "honorLabels") is True:
                yield (f"{key}[{i}] sets honorLabels: true, so a scraped series may carry its own namespace "
                       f"and pod labels in place of the target's")




def autoscalers(resources) -> list[Autoscaled]:
    """Every HPA and KEDA ScaledObject as the HPA that drives its Deployment (a ScaledObject as the
    HPA KEDA generates), keyed by the autoscaler's URN, with that Deployment's manifest."""
    return autoscaled([plain(d.props) for d in of_type(resources, DEPLOYMENT)],
                      [(r.urn, kind, plain(r.props))
                       for kind, type_ in ((HPA_KIND, HPA), (SCALED_OBJECT_KIND, SCALED_OBJECT))
                       for r in of_type(resources, type_)])


#: Where each HPA field is declared on a ScaledObject, for messages that point at the real key.
_SCALED_OBJECT_FIELDS = {"minReplicas": "minReplicaCount", "maxReplicas": "maxReplicaCount",
                         "behavior": "advanced.horizontalPodAutoscalerConfig.behavior"}


def _declared(a: Autoscaled, field: str) -> str:
    """``<app> (<kind>) spec.<field as that kind names it>``."""
    name = _SCALED_OBJECT_FIELDS[field] if a.kind == SCALED_OBJECT_KIND else field
    return f"{a.app or '?'} ({a.kind}) spec.{name}"


def _hpa_max(resources, settings):
    cap = int(settings["maximum"])
    for a in autoscalers(resources):
        # None: unknown in a preview (an HPA without maxReplicas is refused by the API server)
        top = a.hpa_spec.get("maxReplicas")
        if top is not None and top > cap:
            yield f"{_declared(a, 'maxReplicas')} {top} is above the stack's cap of {cap}", a.key


def _hpa_min(resources, settings):
    floor = int(settings["minimum"])
    for a in autoscalers(resources):
        if a.min_pods < floor:
            yield f"{_declared(a, 'minReplicas')} {a.min_pods} is below the stack's minimum of {floor}", a.key


def _hpa_behavior(resources, settings):
    for a in autoscalers(resources):
        missing = [b for b in ("scaleUp", "scaleDown") if (a.hpa_spec.get("behavior") or {}).get(b) is None]
        if missing:
            yield f"{_declared(a, 'behavior')} has no {' or '.join(missing)}", a.key


def _namespace(resource) -> str:
    return get(resource.props, "metadata.namespace", "default")


def _selects(selector, labels) -> bool:
    """Whether a LabelSelector matches a set of labels (an empty selector matches nothing in a PDB)."""
    match, expressions = get(selector, "matchLabels", {}), items(get(selector, "matchExpressions"))
    if not match and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for e in expressions:
        key, op, values = get(e, "key"), get(e, "operator"), items(get(e, "values"))
        ok = {"In": key in labels and labels[key] in values,
              "NotIn": key not in labels or labels[key] not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not ok:
            return False
    return True


def scaled_deployments(resources) -> list[tuple[Autoscaled, Any | None]]:
    """Each autoscaler of a Deployment (HPA or ScaledObject, as ``autoscalers`` reads it) with the
    Deployment resource its scaleTargetRef names, None when the stack declares no such Deployment."""
    by_name = {(_namespace(d), get(d.props, "metadata.name")): d for d in of_type(resources, DEPLOYMENT)}
    namespaces = {r.urn: _namespace(r) for r in of_type(resources, HPA, SCALED_OBJECT)}
    return [(a, by_name.get((namespaces[a.key], a.app)))
            for a in autoscalers(resources)
            if ((a.hpa_spec.get("scaleTargetRef") or {}).get("kind") or "Deployment") == "Deployment"]


def _pdb_per_scaled_deployment(resources, settings):
    pdbs = of_type(resources, PDB)
    for autoscaler, deployment in scaled_deployments(resources):
        if deployment is None:
            yield (f"{autoscaler.kind} targets Deployment {autoscaler.app!r}, "
                   f"which the stack does not declare"), autoscaler.key
            continue
        labels = dict(get(deployment.props, "spec.template.metadata.labels", {}))
        if not any(_namespace(p) == _namespace(deployment) and _selects(get(p.props, "spec.selector"), labels)
                   for p in pdbs):
            yield "the Deployment is autoscaled but no PodDisruptionBudget selects its pods", deployment.urn


def _load_balanced_readiness(resources, settings):
    """Every pod a TargetGroupBinding puts behind the ALB has a readiness probe."""
    services = {(_namespace(svc), get(svc.props, "metadata.name")): svc for svc in of_type(resources, SERVICE)}
    deployments = of_type(resources, DEPLOYMENT)
    for binding in of_type(resources, TARGET_GROUP_BINDING):
        name = get(binding.props, "spec.serviceRef.name")
        service = services.get((_namespace(binding), name))
        if service is None:
            yield f"the binding refers to Service {name!r}, which the stack does not declare", binding.urn
            continue
        selector = {"matchLabels": get(service.props, "spec.selector", {})}
        for deployment in deployments:
            labels = dict(get(deployment.props, "spec.template.metadata.labels", {}))
            if _namespace(deployment) != _namespace(service) or not _selects(selector, labels):
                continue
            for _, container in _containers(deployment.props, init=False):
                if get(container, "readinessProbe") is None:
                    yield (f"container {get(container, 'name')!r} is behind the load balancer (Service {name!r}) "
                           f"but has no readinessProbe"), deployment.urn


POLICIES = [
    resource_rule(
        "k8s-workload-resources",
        "Without requests the scheduler packs pods blindly and the capacity arithmetic is "
        "meaningless; without a memory limit one pod can starve its node. Fix: set "
        "resources.requests.cpu, resources.requests.memory and resources.limits.memory on every "
        "container (a CPU limit is optional: throttling hurts latency more than it protects).",
        ADVISORY, WORKLOADS, _resources),
    resource_rule(
        "k8s-workload-probes",
        "Without a readiness probe traffic reaches pods that are not ready (every rollout and "
        "scale-up drops requests); without a liveness probe a hung pod is never restarted. Fix: "
        "add readinessProbe and livenessProbe to every container.",
        ADVISORY, SERVING, _probes),
    resource_rule(
        "k8s-workload-image-pinned",
        "A mutable tag (`latest`, or none) changes what runs without a change in this repository. "
        "Fix: pin every image to a version tag or an @sha256 digest.",
        MANDATORY, WORKLOADS, _image_pinned),
    resource_rule(
        "k8s-workload-image-digest",
        "A tag is a pointer the registry (or anyone who can push to it) can move: the same manifest "
        "then runs different code on the next pod start, unreviewed. Fix: pin every image by digest, "
        "repo:tag@sha256:<digest> (the runtime pulls the digest; the tag is for the reader); app "
        "images in cofounder:apps.<name>.image. An image for which no verifiable digest exists yet "
        "may be listed, as its exact repo:tag, in allowTagOnly.",
        ADVISORY, WORKLOADS, _image_digest,
        config={"allowTagOnly": {"type": "array", "items": {"type": "string"}, "default": [],
                                 "description": "Exact repo:tag images allowed without a digest"}}),
    resource_rule(
        "k8s-workload-run-as-non-root",
        "A container escape from a root process starts as root on the node. Fix: set "
        "securityContext.runAsNonRoot=true (pod or container) with a non-zero runAsUser, as the "
        "namespace's Pod Security Admission 'restricted' level demands.",
        MANDATORY, WORKLOADS, _non_root),
    resource_rule(
        "k8s-workload-no-privilege",
        "Privileged containers, privilege escalation and host namespaces give a pod the node. Fix: "
        "securityContext.privileged unset or false, allowPrivilegeEscalation=false on every "
        "container, no hostNetwork/hostPID.",
        MANDATORY, WORKLOADS, _no_privilege),
    stack_rule(
        "k8s-hpa-max-replicas-bounded",
        "An unbounded autoscaler turns a traffic spike or a metrics bug into a cost spike and exhausts "
        "database connections. Checked on every HPA and KEDA ScaledObject (as the HPA KEDA generates; "
        "a ScaledObject without maxReplicaCount scales to KEDA's default of 100). Fix: set "
        "maxReplicas (maxReplicaCount on a ScaledObject) at or below the stack's cap, sized by the "
        "connection budget: cofounder:apps.<name>.maxReplicas, at most cofounder:scaling.maxReplicasPerApp, "
        "which is also this rule's maximum.",
        ADVISORY, _hpa_max,
        config={"maximum": setting("scaling.maxReplicasPerApp")}),
    stack_rule(
        "k8s-hpa-min-replicas",
        "One replica means every node drain or crash is an outage. Checked on every HPA and KEDA "
        "ScaledObject, whose Deployment goes down to minReplicaCount (default 0) or idleReplicaCount "
        "while idle, below the HPA KEDA generates. Fix: set minReplicas (minReplicaCount on a "
        "ScaledObject, no idleReplicaCount) to at least the stack's minimum (2 in production): "
        "cofounder:apps.<name>.minReplicas.",
        ADVISORY, _hpa_min,
        config={"minimum": {"type": "integer", "minimum": 1, "default": 2,
                            "description": "Smallest minReplicas allowed"}}),
    stack_rule(
        "k8s-hpa-scaling-behavior",
        "Default HPA behavior scales down after 5 minutes of any dip and flaps on bursty agent "
        "traffic. Checked on every HPA and KEDA ScaledObject. Fix: set spec.behavior.scaleUp and "
        "spec.behavior.scaleDown explicitly (stabilization windows and policies; on a ScaledObject "
        "under spec.advanced.horizontalPodAutoscalerConfig.behavior): cofounder:apps.<name>.scaleUp "
        "and cofounder:apps.<name>.scaleDown.",
        ADVISORY, _hpa_behavior),
    resource_rule(
        "k8s-workload-no-api-token",
        "A container that never calls the Kubernetes API should not hold a token for it: a "
        "compromised app pod could otherwise act as its service account (CIS EKS 4.1.6). IRSA does not "
        "need it, as the pod identity webhook mounts its own projected token. Fix: set "
        "automountServiceAccountToken: false in the pod spec (and on its ServiceAccount).",
        MANDATORY, WORKLOADS, _no_api_token),
    resource_rule(
        "k8s-monitor-keeps-target-labels",
        "prometheus-adapter attributes cofounder_active_agents and request rates to pods by the "
        "namespace and pod labels Prometheus attaches to each target. With honorLabels an app's "
        "own labels win, so a bug or a compromised pod could scale another Deployment. Fix: leave "
        "honorLabels unset on ServiceMonitor and PodMonitor endpoints (conflicting app labels are "
        "kept as exported_<name>).",
        MANDATORY, [SERVICE_MONITOR, POD_MONITOR], _monitor_keeps_target_labels),
    stack_rule(
        "k8s-scaled-deployment-has-pdb",
        "Node drains (upgrades, Cluster Autoscaler scale-down) may evict every replica of an "
        "autoscaled Deployment at once. Fix: add a policy/v1 PodDisruptionBudget in the same "
        "namespace whose selector matches the Deployment's pod labels (e.g. maxUnavailable 1).",
        ADVISORY, _pdb_per_scaled_deployment),
    stack_rule(
        "k8s-load-balanced-pods-ready",
        "A pod behind the load balancer without a readiness probe takes requests before it can "
        "serve them, and its readiness gate means nothing: every rollout and scale-up drops "
        "requests. Fix: give every container of a Deployment selected by a TargetGroupBinding's "
        "Service a readinessProbe (cofounder:apps.<app>.probes.readinessPath).",
        MANDATORY, _load_balanced_readiness),
]
