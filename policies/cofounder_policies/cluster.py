"""EKS control plane, managed node groups and their launch templates."""

from __future__ import annotations

from cofounder_policies.rules import ADVISORY, MANDATORY, get, items, of_type, resource_rule, stack_rule

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
WORLD = {"0.0.0.0/0", "::/0"}
CONTROL_PLANE_LOGS = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def _endpoint_not_public(props, settings):
    vpc = get(props, "vpcConfig", {})
    if get(vpc, "endpointPublicAccess", True) is False:  # the provider's default is public
        return
    cidrs = set(items(get(vpc, "publicAccessCidrs")))
    if not cidrs:
        yield "the public endpoint is enabled with no publicAccessCidrs, which means 0.0.0.0/0"
    elif cidrs & WORLD:
        yield f"publicAccessCidrs contains {sorted(cidrs & WORLD)}"


def _secrets_encrypted(props, settings):
    configs = items(get(props, "encryptionConfig"))
    if not configs and get(props, "encryptionConfig.resources"):  # a single object, as some SDKs send it
        configs = [get(props, "encryptionConfig")]
    ok = any("secrets" in items(get(c, "resources")) and get(c, "provider.keyArn") for c in configs)
    if not ok:
        yield "encryptionConfig does not encrypt 'secrets' with a KMS key (provider.keyArn)"


def _control_plane_logs(props, settings):
    missing = [t for t in CONTROL_PLANE_LOGS if t not in items(get(props, "enabledClusterLogTypes"))]
    if missing:
        yield f"enabledClusterLogTypes is missing {missing}"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split(".")[:2])


def _version_supported(props, settings):
    version, minimum = get(props, "version"), str(settings["minimumVersion"])
    if version is None:
        yield f"version is not pinned (EKS would pick its default); pin {minimum} or later"
    elif _version_tuple(version) < _version_tuple(minimum):
        yield f"version {version} is older than the minimum supported {minimum}"


def _imdsv2(props, settings):
    if get(props, "metadataOptions.httpEndpoint") == "disabled":
        return  # no metadata service at all is safer still
    tokens = get(props, "metadataOptions.httpTokens")
    if tokens != "required":
        yield f"metadataOptions.httpTokens is {tokens!r}, not 'required'"


def _node_group_launch_template(props, settings):
    if not (get(props, "launchTemplate.id") or get(props, "launchTemplate.name")):
        yield "the node group has no launchTemplate, so EKS's default template (IMDSv1 allowed) is used"


def _autoscaling_range(props, settings):
    lo, hi = get(props, "scalingConfig.minSize"), get(props, "scalingConfig.maxSize")
    desired = get(props, "scalingConfig.desiredSize")
    if lo is None or hi is None or lo >= hi:
        yield f"scalingConfig minSize {lo} is not below maxSize {hi}: the autoscaler cannot add nodes"
    elif desired is not None and not lo <= desired <= hi:
        yield f"scalingConfig desiredSize {desired} is outside [{lo}, {hi}]"


def _discovery_tags(props, settings):
    tags = get(props, "tags", {})
    if str(tags.get("k8s.io/cluster-autoscaler/enabled", "")).lower() != "true":
        yield "tag k8s.io/cluster-autoscaler/enabled=true is missing"
    cluster = get(props, "clusterName")
    if cluster and f"k8s.io/cluster-autoscaler/{cluster}" not in tags:
        yield f"tag k8s.io/cluster-autoscaler/{cluster}=owned is missing"


RELEASE = "kubernetes:helm.sh/v3:Release"
STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"


def _volume_workloads(resources):
    """(what, nodeSelector, urn) of every pod the stack pins to nodes by selector and gives an EBS
    volume claim: a StatefulSet with volumeClaimTemplates, or kube-prometheus-stack's Prometheus."""
    for sts in of_type(resources, STATEFUL_SET):
        if items(get(sts.props, "spec.volumeClaimTemplates")):
            yield (f"StatefulSet {get(sts.props, 'metadata.name')}",
                   dict(get(sts.props, "spec.template.spec.nodeSelector", {})), sts.urn)
    for release in of_type(resources, RELEASE):
        spec = get(release.props, "values.prometheus.prometheusSpec", {})
        if get(spec, "storageSpec.volumeClaimTemplate"):
            yield (f"Prometheus of release {get(release.props, 'name') or release.name}",
                   dict(get(spec, "nodeSelector", {})), release.urn)


def _volume_pool_per_zone(resources, settings):
    groups = of_type(resources, NODE_GROUP)
    for what, selector, urn in _volume_workloads(resources):
        if not selector:
            continue  # not pinned to a pool: any zone's nodes can take it
        pool = [g for g in groups if all(get(g.props, f"labels.{k}") == v for k, v in selector.items())]
        spanning = sorted(g.name for g in pool if len(items(get(g.props, "subnetIds"))) != 1)
        if spanning:
            yield (f"{what} keeps an EBS volume on the nodes labelled {selector}, but node groups "
                   f"{', '.join(spanning)} span several zones' subnets"), urn


POLICIES = [
    resource_rule(
        "eks-cluster-endpoint-not-public",
        "The EKS API server must not be reachable from the whole internet. Fix: set "
        "vpcConfig.endpointPublicAccess=false (private endpoint only), or keep it public with "
        "vpcConfig.publicAccessCidrs limited to your office/VPN ranges.",
        MANDATORY, [CLUSTER], _endpoint_not_public),
    resource_rule(
        "eks-cluster-secrets-encrypted",
        "Kubernetes Secrets must be envelope-encrypted with a KMS key so an etcd snapshot does not "
        "leak them. Fix: set encryptionConfig={resources: ['secrets'], provider: {keyArn: <KMS key ARN>}}.",
        MANDATORY, [CLUSTER], _secrets_encrypted),
    resource_rule(
        "eks-cluster-control-plane-logs",
        "All five control-plane log types are needed to audit and debug the cluster. Fix: set "
        "enabledClusterLogTypes to api, audit, authenticator, controllerManager and scheduler.",
        ADVISORY, [CLUSTER], _control_plane_logs),
    resource_rule(
        "eks-cluster-version-supported",
        "The cluster must run a pinned Kubernetes version still in EKS standard support (older "
        "versions get no security patches and cost extended-support fees). Fix: pin version to the "
        "stack's cofounder:cluster.kubernetesVersion at or above the pack's minimumVersion.",
        MANDATORY, [CLUSTER], _version_supported,
        config={"minimumVersion": {"type": "string", "pattern": r"^\d+\.\d+$", "default": "1.32",
                                   "description": "Oldest Kubernetes minor in EKS standard support"}}),
    resource_rule(
        "ec2-launch-template-imdsv2-required",
        "Instances must require IMDSv2 so a pod cannot steal the node role's credentials through "
        "an SSRF to the metadata service. Fix: metadataOptions={httpTokens: 'required', "
        "httpPutResponseHopLimit: 1 or 2, httpEndpoint: 'enabled'}.",
        MANDATORY, [LAUNCH_TEMPLATE], _imdsv2),
    resource_rule(
        "eks-node-group-imdsv2-required",
        "Managed node groups must launch from our launch template (which requires IMDSv2), not from "
        "EKS's default template. Fix: set launchTemplate={id: <template id>, version: <version>}.",
        MANDATORY, [NODE_GROUP], _node_group_launch_template),
    resource_rule(
        "eks-node-group-autoscaling-range",
        "A node group whose minSize equals its maxSize cannot scale, so bursts wait forever. Fix: "
        "set scalingConfig minSize < maxSize with desiredSize between them.",
        ADVISORY, [NODE_GROUP], _autoscaling_range),
    resource_rule(
        "eks-node-group-autoscaler-discovery-tags",
        "The Cluster Autoscaler finds node groups by tag; without them it never scales this group. "
        "Fix: tag the node group k8s.io/cluster-autoscaler/enabled=true and "
        "k8s.io/cluster-autoscaler/<cluster name>=owned.",
        ADVISORY, [NODE_GROUP], _discovery_tags),
    stack_rule(
        "eks-volume-pool-one-group-per-zone",
        "An EBS volume lives in one zone, and so must the pod that mounts it. When a node under such "
        "a pod goes, the Cluster Autoscaler adds a node to a group whose template fits the pod; a "
        "group spanning zones lets the Auto Scaling group pick the zone, and the pod may stay "
        "Pending. Fix: give the pool one node group per zone, each in its zone's subnet "
        "(cofounder:cluster.nodeGroups.<pool>.oneGroupPerZone: true).",
        MANDATORY, _volume_pool_per_zone),
]
