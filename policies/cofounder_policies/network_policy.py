"""Kubernetes network policies: every namespace the program runs pods in denies by default, and
the VPC CNI's network policy agent is on to enforce it (a NetworkPolicy is accepted either way)."""

from __future__ import annotations

import json

from pulumi_policy.proxy import UnknownValueError

from cofounder_policies.rules import MANDATORY, get, items, of_type, resource_rule, stack_rule
from cofounder_policies.workloads import WORKLOADS

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
ADDON = "aws:eks/addon:Addon"
BOTH = {"Ingress", "Egress"}


def _namespace(resource) -> str | None:
    """The object's namespace; None while a preview does not know it yet."""
    try:
        return get(resource.props, "metadata.namespace", "default")
    except UnknownValueError:
        return None


def is_default_deny(props) -> bool:
    """Selects every pod of its namespace, isolates both directions and admits nothing."""
    selector = get(props, "spec.podSelector", {})
    selects_all = not get(selector, "matchLabels") and not items(get(selector, "matchExpressions"))
    types = set(items(get(props, "spec.policyTypes")))
    rules = items(get(props, "spec.ingress")) + items(get(props, "spec.egress"))
    return selects_all and types >= BOTH and not rules


def _default_deny_per_namespace(resources, settings):
    denied = {_namespace(p) for p in of_type(resources, NETWORK_POLICY) if is_default_deny(p.props)}
    reported: set[str] = set()
    for workload in of_type(resources, *WORKLOADS):
        namespace = _namespace(workload)
        if namespace is None or namespace in denied or namespace in reported:
            continue
        reported.add(namespace)
        yield (f"namespace {namespace!r} runs pods but has no default-deny NetworkPolicy "
               f"(podSelector {{}}, policyTypes Ingress and Egress, no rules)"), workload.urn


def _vpc_cni_network_policy(props, settings):
    if get(props, "addonName") != "vpc-cni":
        return
    raw = get(props, "configurationValues")
    try:
        values = json.loads(raw) if raw else {}
    except ValueError:
        yield "configurationValues is not JSON"
        return
    if str(values.get("enableNetworkPolicy", "false")).lower() != "true":
        yield "configurationValues does not set enableNetworkPolicy to \"true\": no NetworkPolicy is enforced"


POLICIES = [
    stack_rule(
        "k8s-namespace-default-deny",
        "Without a default deny every pod of the cluster (each add-on's included) reaches the pods of "
        "the namespace, and they reach anything; each allowance then says what a flow needs. Fix: in "
        "every namespace the stack runs pods in, a NetworkPolicy with podSelector {}, policyTypes "
        "[Ingress, Egress] and no rules (cofounder:networkPolicies.enabled), plus one allowance per flow.",
        MANDATORY, _default_deny_per_namespace),
    resource_rule(
        "eks-vpc-cni-network-policy-enabled",
        "The VPC CNI enforces NetworkPolicy only with its network policy agent on; otherwise every "
        "policy is accepted and nothing is enforced. Fix: the vpc-cni add-on's configurationValues "
        "{\"enableNetworkPolicy\": \"true\"} (cofounder:cluster.addonVersions.vpcCni v1.14.0-eksbuild.3 or later).",
        MANDATORY, [ADDON], _vpc_cni_network_policy),
]
