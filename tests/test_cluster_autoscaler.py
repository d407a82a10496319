"""components/cluster_autoscaler.py: least-privilege IRSA policy and the chart values behind each flag."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components.cluster_autoscaler import ClusterAutoscaler, ClusterAutoscalerArgs, iam_policy
from toolkit.harness import reveal

OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"
TOLERATION = {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def _autoscaler(run_program, **overrides):
    args = dict(cluster_name="demo-eks", region="eu-west-1", oidc_provider_arn=OIDC_ARN, oidc_issuer_url=ISSUER,
                node_selector={"node-pool": "system"}, tolerations=[TOLERATION])
    args.update(overrides)

    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        ClusterAutoscaler("ca", ClusterAutoscalerArgs(**args),
                          opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


@pytest.fixture(scope="module")
def defaults():
    from toolkit import harness
    return _autoscaler(harness.run)


def _values(p):
    return reveal(p.one("kubernetes:helm.sh/v3:Release").inputs["values"])


def test_policy_describes_everywhere_but_mutates_only_owned_groups(defaults):
    policy = json.loads(defaults.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    describe = statements["Describe"]
    assert describe["Resource"] == "*"
    for action in ("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                   "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeInstanceTypes", "ec2:DescribeImages",
                   "ec2:GetInstanceTypesFromInstanceRequirements", "eks:DescribeNodegroup"):
        assert action in describe["Action"]
    scale = statements["ScaleOwnedGroups"]
    assert sorted(scale["Action"]) == ["autoscaling:SetDesiredCapacity",
                                       "autoscaling:TerminateInstanceInAutoScalingGroup"]
    assert scale["Condition"] == {"StringEquals": {"aws:ResourceTag/k8s.io/cluster-autoscaler/demo-eks": "owned"}}


def test_no_mutating_action_is_allowed_on_star_without_a_condition(defaults):
    policy = json.loads(defaults.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    read_only = ("Describe", "Get", "List")
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any("*" in a for a in actions)
        mutating = [a for a in actions if not a.split(":")[1].startswith(read_only)]
        if mutating and statement["Resource"] == "*":
            assert statement.get("Condition"), statement


def test_policy_is_scoped_to_the_given_cluster():
    assert "k8s.io/cluster-autoscaler/other" in iam_policy("other")
    assert "demo-eks" not in iam_policy("other")


def test_irsa_role_is_for_the_chart_service_account(defaults):
    trust = json.loads(defaults.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == \
        "system:serviceaccount:kube-system:cluster-autoscaler"
    values = _values(defaults)
    assert values["rbac"]["serviceAccount"]["name"] == "cluster-autoscaler"
    assert values["rbac"]["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": defaults.one("aws:iam/role:Role").outputs["arn"]}


def test_release_is_the_pinned_official_chart_in_kube_system(defaults):
    release = defaults.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "cluster-autoscaler"
    assert release.inputs["version"] == "9.53.0"
    assert release.inputs["repositoryOpts"] == {"repo": "https://kubernetes.github.io/autoscaler"}
    assert release.inputs["namespace"] == "kube-system"
    values = _values(defaults)
    assert values["image"] == {"repository": "registry.k8s.io/autoscaling/cluster-autoscaler", "tag": "v1.34.2"}
    assert values["cloudProvider"] == "aws"
    assert values["awsRegion"] == "eu-west-1"
    assert release.options["provider"] == defaults.one("pulumi:providers:kubernetes").urn


def test_flags_default(defaults):
    values = _values(defaults)
    assert values["autoDiscovery"] == {"clusterName": "demo-eks", "tags": [
        "k8s.io/cluster-autoscaler/enabled", "k8s.io/cluster-autoscaler/demo-eks"]}
    extra = values["extraArgs"]
    assert extra["expander"] == "least-waste"
    assert extra["balance-similar-node-groups"] is True
    # the per-zone groups of a pool differ in their zone-id label, which must not make them dissimilar
    assert extra["balancing-ignore-label"] == "topology.k8s.aws/zone-id"
    assert extra["skip-nodes-with-local-storage"] is False
    assert extra["scale-down-unneeded-time"] == "10m"
    assert extra["scale-down-delay-after-add"] == "10m"
    assert extra["scan-interval"] == "10s"


def test_flags_from_arguments(run_program):
    values = _values(_autoscaler(run_program, expander="priority", scale_down_unneeded_time="5m",
                                 scale_down_delay_after_add="2m", scan_interval="20s", replicas=2))
    extra = values["extraArgs"]
    assert (extra["expander"], extra["scale-down-unneeded-time"], extra["scale-down-delay-after-add"],
            extra["scan-interval"]) == ("priority", "5m", "2m", "20s")
    assert values["replicaCount"] == 2


def test_runs_on_system_nodes_with_a_pdb(defaults):
    values = _values(defaults)
    assert values["nodeSelector"] == {"node-pool": "system"}
    assert values["tolerations"] == [TOLERATION]
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}
    assert values["priorityClassName"] == "system-cluster-critical"
    assert values["containerSecurityContext"]["allowPrivilegeEscalation"] is False
    assert values["securityContext"]["runAsNonRoot"] is True
