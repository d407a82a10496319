"""EKS cluster, node group and launch template rules fire on bad inputs and stay quiet on good ones."""

import pytest

from tests.policies.helpers import resource, stack_violations, violations

CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
GOOD_CLUSTER = {
    "version": "1.34",
    "vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False, "subnetIds": ["a"]},
    "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-east-1:1:key/k"}},
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
}
GOOD_NODE_GROUP = {
    "clusterName": "cofounder-prod-eks",
    "scalingConfig": {"minSize": 2, "maxSize": 10, "desiredSize": 3},
    "launchTemplate": {"id": "lt-1", "version": "1"},
    "tags": {"k8s.io/cluster-autoscaler/enabled": "true", "k8s.io/cluster-autoscaler/cofounder-prod-eks": "owned"},
}


@pytest.mark.parametrize("policy", ["eks-cluster-endpoint-not-public", "eks-cluster-secrets-encrypted",
                                    "eks-cluster-control-plane-logs", "eks-cluster-version-supported"])
def test_a_private_encrypted_logged_current_cluster_passes(policy):
    assert violations(policy, CLUSTER, GOOD_CLUSTER) == []


@pytest.mark.parametrize("vpc, expected", [
    ({"subnetIds": ["a"]}, "no publicAccessCidrs"),  # the provider's default is a public endpoint
    ({"endpointPublicAccess": True, "publicAccessCidrs": ["10.0.0.0/8", "0.0.0.0/0"]}, "0.0.0.0/0"),
    ({"endpointPublicAccess": True, "publicAccessCidrs": ["::/0"]}, "::/0"),
])
def test_endpoint_open_to_the_world_is_a_violation(vpc, expected):
    found = violations("eks-cluster-endpoint-not-public", CLUSTER, {**GOOD_CLUSTER, "vpcConfig": vpc})
    assert len(found) == 1 and expected in found[0]


def test_public_endpoint_with_restricted_cidrs_passes():
    vpc = {"endpointPublicAccess": True, "publicAccessCidrs": ["203.0.113.0/24"]}
    assert violations("eks-cluster-endpoint-not-public", CLUSTER, {**GOOD_CLUSTER, "vpcConfig": vpc}) == []


def test_secrets_without_kms_key_are_a_violation():
    bad = {**GOOD_CLUSTER, "encryptionConfig": {"resources": ["secrets"], "provider": {}}}
    assert violations("eks-cluster-secrets-encrypted", CLUSTER, bad)
    assert violations("eks-cluster-secrets-encrypted", CLUSTER, {k: v for k, v in GOOD_CLUSTER.items()
                                                                 if k != "encryptionConfig"})


def test_missing_log_types_are_named():
    bad = {**GOOD_CLUSTER, "enabledClusterLogTypes": ["api", "audit"]}
    [message] = violations("eks-cluster-control-plane-logs", CLUSTER, bad)
    assert "authenticator" in message and "scheduler" in message and "api'" not in message


def test_version_below_the_configured_minimum_or_unpinned_is_a_violation():
    assert violations("eks-cluster-version-supported", CLUSTER, {**GOOD_CLUSTER, "version": "1.29"})
    assert violations("eks-cluster-version-supported", CLUSTER, {**GOOD_CLUSTER, "version": None})
    # the minimum comes from the stack's policy config
    assert violations("eks-cluster-version-supported", CLUSTER, GOOD_CLUSTER, {"minimumVersion": "1.35"})
    assert violations("eks-cluster-version-supported", CLUSTER, {**GOOD_CLUSTER, "version": "1.9"},
                      {"minimumVersion": "1.10"})  # numeric, not string, comparison


def test_launch_template_must_require_imdsv2():
    good = {"metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled"}}
    assert violations("ec2-launch-template-imdsv2-required", LAUNCH_TEMPLATE, good) == []
    assert violations("ec2-launch-template-imdsv2-required", LAUNCH_TEMPLATE,
                      {"metadataOptions": {"httpTokens": "optional"}})
    assert violations("ec2-launch-template-imdsv2-required", LAUNCH_TEMPLATE, {})


@pytest.mark.parametrize("policy", ["eks-node-group-imdsv2-required", "eks-node-group-autoscaling-range",
                                    "eks-node-group-autoscaler-discovery-tags"])
def test_a_well_formed_node_group_passes(policy):
    assert violations(policy, NODE_GROUP, GOOD_NODE_GROUP) == []


def test_node_group_without_launch_template_is_a_violation():
    bad = {k: v for k, v in GOOD_NODE_GROUP.items() if k != "launchTemplate"}
    assert violations("eks-node-group-imdsv2-required", NODE_GROUP, bad)


@pytest.mark.parametrize("scaling", [{"minSize": 3, "maxSize": 3, "desiredSize": 3},
                                     {"minSize": 2, "maxSize": 5, "desiredSize": 8}])
def test_node_group_that_cannot_scale_is_a_violation(scaling):
    assert violations("eks-node-group-autoscaling-range", NODE_GROUP, {**GOOD_NODE_GROUP, "scalingConfig": scaling})


def test_node_group_without_discovery_tags_is_a_violation():
    found = violations("eks-node-group-autoscaler-discovery-tags", NODE_GROUP, {**GOOD_NODE_GROUP, "tags": {}})
    assert len(found) == 2


def test_other_resource_types_are_ignored():
    assert violations("eks-cluster-secrets-encrypted", NODE_GROUP, {}) == []


# --- the pool under volume-backed pods ------------------------------------------------------

def _pool(*subnets_per_group: list[str], labels=None) -> list:
    return [resource(NODE_GROUP, f"system-{i}", {"labels": labels or {"node-pool": "system"}, "subnetIds": s})
            for i, s in enumerate(subnets_per_group)]


def _prometheus(node_selector: dict, storage: bool = True):
    spec = {"nodeSelector": node_selector}
    if storage:
        spec["storageSpec"] = {"volumeClaimTemplate": {"spec": {"storageClassName": "gp3"}}}
    return resource("kubernetes:helm.sh/v3:Release", "monitoring",
                    {"name": "kube-prometheus-stack", "values": {"prometheus": {"prometheusSpec": spec}}})


def test_prometheus_on_a_pool_spanning_zones_is_a_violation():
    found = stack_violations("eks-volume-pool-one-group-per-zone",
                             [_prometheus({"node-pool": "system"}), *_pool(["a", "b", "c"])])
    assert found == [("Prometheus of release kube-prometheus-stack keeps an EBS volume on the nodes labelled "
                      "{'node-pool': 'system'}, but node groups system-0 span several zones' subnets",
                      "urn:pulumi:test::cofounder::kubernetes:helm.sh/v3:Release::monitoring")]


def test_one_group_per_zone_or_no_volume_or_another_pool_passes():
    assert stack_violations("eks-volume-pool-one-group-per-zone",
                            [_prometheus({"node-pool": "system"}), *_pool(["a"], ["b"], ["c"])]) == []
    assert stack_violations("eks-volume-pool-one-group-per-zone",
                            [_prometheus({"node-pool": "system"}, storage=False), *_pool(["a", "b"])]) == []
    # the apps pool may span zones: nothing with a volume runs there
    assert stack_violations("eks-volume-pool-one-group-per-zone",
                            [_prometheus({"node-pool": "system"}), *_pool(["a"], ["b"]),
                             *_pool(["a", "b"], labels={"node-pool": "apps"})]) == []


def test_a_stateful_set_with_claims_is_held_to_the_same_rule():
    sts = resource("kubernetes:apps/v1:StatefulSet", "db", {
        "metadata": {"name": "db"}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}],
                                             "template": {"spec": {"nodeSelector": {"node-pool": "system"}}}}})
    found = stack_violations("eks-volume-pool-one-group-per-zone", [sts, *_pool(["a"], ["b", "c"])])
    assert [m for m, _ in found] == ["StatefulSet db keeps an EBS volume on the nodes labelled "
                                     "{'node-pool': 'system'}, but node groups system-1 span several zones' subnets"]
