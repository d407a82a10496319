"""components/load_balancer_controller.py: the official chart, pinned, on the system nodes, with an
IRSA role whose policy is the published one, scoped, never widened."""

from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest

from components.load_balancer_controller import (
    CHART_VERSION,
    LoadBalancerController,
    LoadBalancerControllerArgs,
    published_policy,
    scoped_policy,
    scoped_statements,
)

RELEASE = "kubernetes:helm.sh/v3:Release"
#: sha256 of docs/install/iam_policy.json at kubernetes-sigs/aws-load-balancer-controller tag v3.5.0.
UPSTREAM_POLICY_SHA256 = "16f232c9d9f79366fe949c4550ad517a202380058a9e48d45a4e215044a20a6a"
CLUSTER = "cofounder-test-eks"
VPC_ARN = "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-0123"
TG_ARNS = ["arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/a/1",
           "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/b/2"]


def _controller(run_program, **overrides):
    args = dict(cluster_name=CLUSTER, region="us-east-1", vpc_id="vpc-0123", vpc_arn=VPC_ARN,
                oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X",
                oidc_issuer_url="https://oidc.eks.us-east-1.amazonaws.com/id/X", target_group_arns=TG_ARNS,
                node_selector={"node-pool": "system"},
                tolerations=[{"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true",
                              "effect": "NoSchedule"}])
    args.update(overrides)
    return run_program(lambda: LoadBalancerController("lbc", LoadBalancerControllerArgs(**args)))


def test_the_shipped_policy_is_the_published_one_byte_for_byte():
    text = resources.files("components").joinpath("data", "aws-load-balancer-controller-iam-policy.json").read_bytes()
    assert hashlib.sha256(text).hexdigest() == UPSTREAM_POLICY_SHA256


def _scoped() -> dict:
    return scoped_policy(published_policy(), cluster_name=CLUSTER, vpc_arn=VPC_ARN, target_group_arns=TG_ARNS)


def _grants(policy: dict) -> set[str]:
    return {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}


def test_scoping_removes_no_action():
    assert _grants(_scoped()) == _grants(published_policy())


def test_scoping_never_widens_a_statement():
    """Each upstream statement becomes statements with the same actions, its resources (or fewer,
    never a wildcard it did not have) and all its conditions (or more)."""
    for origin in published_policy()["Statement"]:
        narrowed = scoped_statements(origin, cluster_name=CLUSTER, vpc_arn=VPC_ARN, target_group_arns=TG_ARNS)
        assert narrowed
        for statement in narrowed:
            assert statement["Action"] == origin["Action"]
            for operator, keys in (origin.get("Condition") or {}).items():
                assert statement["Condition"][operator].items() >= keys.items()
            if origin["Resource"] != "*":
                assert statement["Resource"] in (origin["Resource"], TG_ARNS)


def test_tag_conditions_name_this_cluster():
    for statement in _scoped()["Statement"]:
        for kind in ("RequestTag", "ResourceTag"):
            key = f"aws:{kind}/elbv2.k8s.aws/cluster"
            if statement.get("Condition", {}).get("Null", {}).get(key) == "false":
                assert statement["Condition"]["StringEquals"][key] == CLUSTER


def _statement_with(action: str) -> list[dict]:
    return [s for s in _scoped()["Statement"] if action in s["Action"]]


def test_targets_are_registered_only_in_this_programs_groups_or_the_clusters_own():
    own, tagged = _statement_with("elasticloadbalancing:RegisterTargets")
    assert own["Resource"] == TG_ARNS and "Condition" not in own
    assert tagged["Condition"] == {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": CLUSTER}}


def test_security_group_rules_stay_in_this_vpc():
    unconditioned = [s for s in _statement_with("ec2:AuthorizeSecurityGroupIngress") if "Null" not in s["Condition"]]
    assert [s["Condition"] for s in unconditioned] == [{"ArnEquals": {"ec2:Vpc": VPC_ARN}}]


def test_the_controller_cannot_rewire_the_programs_listener():
    for action in ("elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener",
                   "elasticloadbalancing:SetWebAcl", "elasticloadbalancing:CreateRule"):
        for statement in _statement_with(action):
            assert statement["Condition"]["StringEquals"]["aws:ResourceTag/elbv2.k8s.aws/cluster"] == CLUSTER


def test_the_release_is_the_pinned_official_chart_on_the_system_nodes(run_program):
    p = _controller(run_program, replicas=3)
    release = p.one(RELEASE).inputs
    assert (release["chart"], release["version"], release["namespace"]) == (
        "aws-load-balancer-controller", CHART_VERSION, "kube-system")
    assert release["repositoryOpts"] == {"repo": "https://aws.github.io/eks-charts"}
    assert release["atomic"] is True  # waits for the webhook: bindings are refused without its endpoints
    values = release["values"]
    assert (values["clusterName"], values["region"], values["vpcId"]) == (CLUSTER, "us-east-1", "vpc-0123")
    assert values["replicaCount"] == 3
    assert values["nodeSelector"] == {"node-pool": "system"}
    assert values["tolerations"][0]["key"] == "CriticalAddonsOnly"
    role = p.one("aws:iam/role:Role").outputs["arn"]
    assert values["serviceAccount"] == {"create": True, "name": "aws-load-balancer-controller",
                                        "annotations": {"eks.amazonaws.com/role-arn": role}}
    # never the implementation of LoadBalancer Services; stable webhook certificate; no ALB WAF calls
    assert values["enableServiceMutatorWebhook"] is False
    assert values["keepTLSSecret"] is True
    assert (values["enableShield"], values["enableWaf"], values["enableWafv2"]) == (False, False, False)
    assert values["podMutatorWebhookConfig"] == {"failurePolicy": "Ignore"}
    assert values["podDisruptionBudget"] == {"maxUnavailable": 1}


def test_the_irsa_role_is_for_the_controllers_service_account_with_the_scoped_policy(run_program):
    p = _controller(run_program)
    trust = json.loads(p.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Condition"]["StringEquals"]["oidc.eks.us-east-1.amazonaws.com/id/X:sub"] == \
        "system:serviceaccount:kube-system:aws-load-balancer-controller"
    policy = json.loads(p.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert policy == _scoped()


@pytest.mark.parametrize("replicas", [0, 4])
def test_replicas_are_bounded(run_program, replicas):
    from components import ComponentArgsError
    with pytest.raises(ComponentArgsError, match="replicas"):
        _controller(run_program, replicas=replicas)


def test_every_stack_installs_it_before_the_bindings(stack_program):
    for stack in ("dev", "staging", "prod"):
        p = stack_program(stack)
        release = next(r for r in p.of_type(RELEASE) if r.inputs["chart"] == "aws-load-balancer-controller")
        for binding in p.of_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"):
            assert release.urn in binding.options["dependsOn"]


def test_no_read_ends_up_under_a_resource_tag_condition():
    """Describe/Get/List take no resource-level condition: under one, the TargetGroupBinding webhook's
    DescribeTargetGroups and the reconciler's DescribeTargetHealth are denied and the ALB answers 503."""
    for statement in _scoped()["Statement"]:
        tagged = [key for operator in (statement.get("Condition") or {}).values() for key in operator
                  if key.startswith("aws:ResourceTag/")]
        reads = [a for a in statement["Action"] if a.split(":")[1].startswith(("Describe", "Get", "List"))]
        assert not (tagged and reads), (reads, tagged)


def test_the_published_read_statement_is_left_exactly_as_published():
    [read] = [s for s in published_policy()["Statement"] if "elasticloadbalancing:DescribeTargetHealth" in s["Action"]]
    assert read in _scoped()["Statement"]


def test_a_statement_mixing_reads_and_changes_is_split_and_only_the_changes_are_scoped():
    mixed = {"Effect": "Allow", "Resource": "*",
             "Action": ["elasticloadbalancing:DescribeRules", "elasticloadbalancing:ModifyRule"]}
    changes, reads = scoped_statements(mixed, cluster_name=CLUSTER, vpc_arn=VPC_ARN, target_group_arns=TG_ARNS)
    assert reads == {**mixed, "Action": ["elasticloadbalancing:DescribeRules"]}
    assert changes["Action"] == ["elasticloadbalancing:ModifyRule"]
    assert changes["Condition"] == {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": CLUSTER}}
