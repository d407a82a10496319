"""Network policy rules: a default deny wherever the stack runs pods, and the agent that enforces it."""

import json

import pytest

from tests.conftest import STACKS
from tests.policies.helpers import resource, stack_violations, violations

NP = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
ADDON = "aws:eks/addon:Addon"
DENY = {"metadata": {"name": "default-deny", "namespace": "cofounder"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}
RULES = ("k8s-namespace-default-deny", "eks-vpc-cni-network-policy-enabled")


def _deployment(name: str, namespace: str = "cofounder"):
    return resource(DEPLOYMENT, name, {"metadata": {"name": name, "namespace": namespace},
                                       "spec": {"template": {"spec": {"containers": []}}}})


def _policy(name: str, props: dict):
    return resource(NP, name, props)


def test_a_namespace_with_a_default_deny_passes():
    assert stack_violations("k8s-namespace-default-deny", [_deployment("api"), _policy("deny", DENY)]) == []


@pytest.mark.parametrize("spec", [
    {"podSelector": {}, "policyTypes": ["Ingress"]},                                   # egress stays open
    {"podSelector": {}},                                                               # Ingress only, implicitly
    {"podSelector": {"matchLabels": {"app": "api"}}, "policyTypes": ["Ingress", "Egress"]},  # not every pod
    {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "egress": [{}]},         # allows all egress
    {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, "policyTypes": ["Ingress", "Egress"]},
])
def test_a_policy_that_is_not_a_default_deny_does_not_count(spec):
    found = stack_violations("k8s-namespace-default-deny",
                             [_deployment("api"), _policy("p", {"metadata": DENY["metadata"], "spec": spec})])
    assert len(found) == 1 and "namespace 'cofounder' runs pods" in found[0][0]


def test_one_violation_per_namespace_and_a_deny_elsewhere_does_not_help():
    other = {"metadata": {"name": "default-deny", "namespace": "other"}, "spec": DENY["spec"]}
    found = stack_violations("k8s-namespace-default-deny",
                             [_deployment("api"), _deployment("worker"), _deployment("job", "batch"),
                              _policy("deny", other)])
    assert sorted(m.split("'")[1] for m, _ in found) == ["batch", "cofounder"]
    assert found[0][1].endswith("::api")  # the first workload of the namespace


def test_a_namespace_without_workloads_needs_none():
    assert stack_violations("k8s-namespace-default-deny", [_policy("p", {"metadata": {"namespace": "x"}})]) == []


def _addon(name: str, config: dict | str | None) -> dict:
    props = {"addonName": name, "addonVersion": "v1.20.4-eksbuild.2"}
    if config is not None:
        props["configurationValues"] = config if isinstance(config, str) else json.dumps(config)
    return props


@pytest.mark.parametrize("config", [None, {}, {"enableNetworkPolicy": "false"}, "{not json"])
def test_a_vpc_cni_without_the_network_policy_agent_is_a_violation(config):
    assert violations("eks-vpc-cni-network-policy-enabled", ADDON, _addon("vpc-cni", config))


def test_a_vpc_cni_with_the_agent_passes_and_other_addons_are_not_checked():
    assert violations("eks-vpc-cni-network-policy-enabled", ADDON, _addon("vpc-cni", {"enableNetworkPolicy": "true"})) == []
    assert violations("eks-vpc-cni-network-policy-enabled", ADDON, _addon("coredns", None)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] in RULES] == []
