"""LoadBalancerController: the AWS Load Balancer Controller, which registers app pods in the ALB.

The internal ALB, its listener, rules and target groups are declared by this program
(``components/app_load_balancer.py``), so that CloudFront's VPC origin can take the ALB's ARN in
the same program. The controller's job here is the part only something inside the cluster can
do: it watches each app's Service endpoints and registers the pod IPs in the app's target group
through a ``TargetGroupBinding`` (one per Service, declared by ``AppService``), deregisters pods
that terminate, and injects a readiness gate into new pods of namespaces labelled
``elbv2.k8s.aws/pod-readiness-gate-inject: enabled``, so a rollout only retires an old pod once
its replacement is healthy in the target group.

Installed from the official chart (https://aws.github.io/eks-charts, chart 3.5.0 = controller
v3.5.0, ``stable/aws-load-balancer-controller/Chart.yaml``) into kube-system on the system
nodes, with an IRSA role. The role's policy is the controller's published IAM policy at that
version (``docs/install/iam_policy.json`` at tag v3.5.0, shipped verbatim as
``components/data/aws-load-balancer-controller-iam-policy.json``), scoped where the policy
allows it (``scoped_policy``): tag conditions name this cluster, security-group rule changes
stay in this VPC (the scoping ``docs/deploy/installation.md`` recommends), target
registration is limited to this program's target groups and to groups the controller tagged
for this cluster, and listener and rule changes to resources tagged for this cluster, so the
controller can never rewire the Pulumi-managed ALB. Statements that only read (Describe*, Get*,
List*) stay as published: reads take no resource-level condition, and the controller's webhook
and reconciler read this program's own, untagged target groups.

Chart values worth knowing (``values.yaml`` at 3.5.0):
- ``enableServiceMutatorWebhook: false``: by default the controller makes itself the
  implementation of every new ``Service type: LoadBalancer``; this project declares none, and a
  later one should not silently become an NLB.
- ``keepTLSSecret: true``: the chart generates its webhook certificate with ``genCA`` on every
  render; without this flag each upgrade replaces it while old pods still serve the old one.
- ``enableShield/enableWaf/enableWafv2: false``: WAF sits on the CloudFront distribution
  (``components/web_acl.py``), not on the internal ALB; the controller then makes no WAF or
  Shield calls.
- The pod-mutating webhook keeps ``failurePolicy: Ignore`` (the chart default): while the
  controller is down, new pods start without a readiness gate instead of not starting, which
  matters more during a burst than a perfect rollout.
The chart installs its CRDs from ``crds/`` on first install; ``helm upgrade`` does not update
them, so a chart upgrade that changes a CRD needs ``kubectl apply -f crds.yaml`` of that
version first (docs/deploy/installation.md).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s

from components import Between, require_valid
from components.irsa_role import IrsaRole, IrsaRoleArgs

CHART_REPO = "https://aws.github.io/eks-charts"
#: Chart 3.5.0 ships controller v3.5.0 (``appVersion``), whose TargetGroupBinding CRD is v1beta1.
CHART_VERSION = "3.5.0"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "aws-load-balancer-controller"
#: The namespace label that turns on readiness-gate injection (docs/deploy/pod_readiness_gate.md).
READINESS_GATE_LABEL = "elbv2.k8s.aws/pod-readiness-gate-inject"
#: The tag the controller puts on everything it creates; its value is the cluster name.
CLUSTER_TAG = "elbv2.k8s.aws/cluster"
POLICY_FILE = "aws-load-balancer-controller-iam-policy.json"


@dataclass(frozen=True, kw_only=True)
class LoadBalancerControllerSettings:
    """``cofounder:loadBalancerController``: the AWS Load Balancer Controller."""

    #: Controller pods (leader-elected; the second one keeps the webhooks answering during a drain).
    replicas: Annotated[int, Between(1, 3)] = 2


@dataclass(frozen=True, kw_only=True)
class LoadBalancerControllerArgs(LoadBalancerControllerSettings):
    """Settings plus the cluster's wiring. Pass the cluster's Kubernetes provider through ``opts``."""

    cluster_name: pulumi.Input[str]
    region: str
    vpc_id: pulumi.Input[str]
    vpc_arn: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    #: ARNs of the target groups the controller may register pods in (the program's own).
    target_group_arns: pulumi.Input[Sequence[pulumi.Input[str]]] = ()
    #: Where the controller runs (the system node group), and the tolerations to get there.
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: Sequence[dict] = ()
    chart_version: str = CHART_VERSION
    tags: dict[str, str] = field(default_factory=dict)


def published_policy() -> dict:
    """The controller's IAM policy exactly as its project publishes it for v3.5.0."""
    return json.loads(resources.files("components").joinpath("data", POLICY_FILE).read_text())


def _actions(statement: dict) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def read_only(action: str) -> bool:
    """Describe*, Get* and List* change nothing. They take no resource-level condition either
    (the Service Authorization Reference lists no resource type for DescribeTargetGroups,
    DescribeTargetHealth or ec2:DescribeSubnets), so a tag condition on them denies them."""
    return action.split(":", 1)[-1].startswith(("Describe", "Get", "List"))


def scoped_policy(upstream: dict, *, cluster_name: str, vpc_arn: str, target_group_arns: Sequence[str]) -> dict:
    """The published policy with every scoping it allows applied; no action is removed."""
    return {"Version": upstream.get("Version", "2012-10-17"),
            "Statement": [scoped for original in upstream["Statement"]
                          for scoped in scoped_statements(original, cluster_name=cluster_name, vpc_arn=vpc_arn,
                                                          target_group_arns=target_group_arns)]}


def scoped_statements(original: dict, *, cluster_name: str, vpc_arn: str,
                      target_group_arns: Sequence[str]) -> list[dict]:
    """One upstream statement, narrowed: the same actions, the same or fewer resources, the same
    conditions and more. Target registration becomes two statements (ours, and the cluster's own);
    a statement that only reads is left exactly as published, and one that mixes reads with
    changes is split so that only the changes are scoped."""
    statement = copy.deepcopy(original)
    condition = statement.setdefault("Condition", {})
    actions = _actions(statement)
    # "Null: false" only asks for the tag to exist; require it to name this cluster.
    for kind in ("RequestTag", "ResourceTag"):
        key = f"aws:{kind}/{CLUSTER_TAG}"
        if condition.get("Null", {}).get(key) == "false":
            condition.setdefault("StringEquals", {})[key] = cluster_name
    on_cluster_resources = {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": cluster_name}}
    extra = []
    if original.get("Condition") is None:
        if "ec2:AuthorizeSecurityGroupIngress" in actions:
            condition["ArnEquals"] = {"ec2:Vpc": vpc_arn}
        elif "elasticloadbalancing:RegisterTargets" in actions:
            extra.append({**copy.deepcopy(original), "Condition": on_cluster_resources})
            statement["Resource"] = list(target_group_arns)
        elif statement.get("Resource") == "*" and any(a.startswith("elasticloadbalancing:") for a in actions):
            # Listener, rule and web-ACL changes: only on what the controller created for this
            # cluster, never on the ALB this program declares. Reads stay as published: the
            # TargetGroupBinding webhook calls DescribeTargetGroups and reconciling calls
            # DescribeTargetHealth (controller v3.5.0 webhooks/elbv2/targetgroupbinding_validator.go,
            # pkg/targetgroupbinding/targets_manager.go), on groups this program declares untagged.
            reads = [a for a in actions if read_only(a)]
            if len(reads) == len(actions):
                return [copy.deepcopy(original)]
            if reads:
                extra.append({**copy.deepcopy(original), "Action": reads})
                statement["Action"] = [a for a in actions if not read_only(a)]
            condition.update(copy.deepcopy(on_cluster_resources))
    if not condition:
        del statement["Condition"]
    return ([statement] if statement.get("Resource") != [] else []) + extra


def chart_values(args: LoadBalancerControllerArgs, cluster_name: str, vpc_id: str, role_arn: str) -> dict:
    return {
        "clusterName": cluster_name,
        # Both set: otherwise the controller asks the instance metadata service, which the
        # nodes' IMDSv2 hop limit of 1 keeps out of reach of pods.
        "region": args.region,
        "vpcId": vpc_id,
        "replicaCount": args.replicas,
        "serviceAccount": {"create": True, "name": SERVICE_ACCOUNT,
                           "annotations": {"eks.amazonaws.com/role-arn": role_arn}},
        "nodeSelector": dict(args.node_selector),
        "tolerations": list(args.tolerations),
        "podDisruptionBudget": {"maxUnavailable": 1},
        "enableServiceMutatorWebhook": False,
        "keepTLSSecret": True,
        "enableShield": False,
        "enableWaf": False,
        "enableWafv2": False,
        "podMutatorWebhookConfig": {"failurePolicy": "Ignore"},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    }


class LoadBalancerController(pulumi.ComponentResource):
    """The AWS Load Balancer Controller Helm release and its IRSA role."""

    role_arn: pulumi.Output[str]
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: LoadBalancerControllerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:cluster:LoadBalancerController", name, None, opts)
        require_valid(f"LoadBalancerController {name}", args)
        upstream = published_policy()
        policy = pulumi.Output.all(args.cluster_name, args.vpc_arn, args.target_group_arns).apply(
            lambda v: json.dumps(scoped_policy(upstream, cluster_name=v[0], vpc_arn=v[1],
                                               target_group_arns=v[2])))
        role = IrsaRole(f"{name}-irsa", IrsaRoleArgs(
            oidc_provider_arn=args.oidc_provider_arn,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace=NAMESPACE,
            service_account=SERVICE_ACCOUNT,
            policy_json=policy,
            tags={**args.tags, "component": "load-balancer-controller"},
        ), opts=pulumi.ResourceOptions(parent=self))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="aws-load-balancer-controller",
            chart="aws-load-balancer-controller",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=NAMESPACE,
            values=pulumi.Output.all(args.cluster_name, args.vpc_id, role.role_arn).apply(
                lambda v: chart_values(args, v[0], v[1], v[2])),
            # Waits for the controller and its webhook service: a TargetGroupBinding created
            # before the webhook has endpoints is refused ("no endpoints available for service
            # aws-load-balancer-webhook-service", kubernetes-sigs/aws-load-balancer-controller#4140).
            atomic=True,
            cleanup_on_fail=True,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role_arn = role.role_arn
        self.register_outputs({"role_arn": self.role_arn})

