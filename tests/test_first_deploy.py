"""A first `pulumi up` on an empty account, in the order the engine will run it.

The engine creates a resource once everything it depends on exists: its inputs' resources and its
explicit ``dependsOn`` (a component there stands for every resource under it). These tests read
the explicit dependencies of each stack's program and check what docs/ci.md "First deploy, in
order" promises: nothing talks to the Kubernetes API before the cluster can let the deployer in
and schedule pods, and no custom resource is sent before the release that installs its CRD.
"""

from __future__ import annotations

import pytest

from tests.conftest import STACKS

PROVIDER = "pulumi:providers:kubernetes"
#: CRD API group -> the Helm chart whose release installs it.
CRD_CHARTS = {"monitoring.coreos.com": "kube-prometheus-stack", "keda.sh": "keda"}


def _waits_for(program, resource) -> set[str]:
    """URNs of every resource ``resource`` waits for through explicit dependsOn, transitively,
    with a component standing for all its descendants (as the engine expands it)."""
    seen: set[str] = set()
    todo = list(resource.options.get("dependsOn", []))
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        dep = program.get(urn)
        todo += dep.options.get("dependsOn", [])
        todo += [r.urn for r in program.resources if r.parent == urn]
    return seen


def _addon(program, name):
    return next(r for r in program.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == name)


@pytest.mark.parametrize("stack", STACKS)
def test_the_kubernetes_provider_waits_for_access_nodes_and_the_addons_pods_need(stack_program, stack):
    program = stack_program(stack)
    waits = _waits_for(program, program.one(PROVIDER))
    grants = program.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    groups = program.of_type("aws:eks/nodeGroup:NodeGroup")
    assert grants and groups
    for needed in (*grants, *groups, _addon(program, "coredns"), _addon(program, "aws-ebs-csi-driver")):
        assert needed.urn in waits, needed.urn
    # the cluster grants its creator nothing: the deployer gets in through these grants only
    access = program.one("aws:eks/cluster:Cluster").inputs["accessConfig"]
    assert access["bootstrapClusterCreatorAdminPermissions"] is False and access["authenticationMode"] == "API"


@pytest.mark.parametrize("stack", STACKS)
def test_node_groups_wait_for_the_network_addons_and_their_role(stack_program, stack):
    program = stack_program(stack)
    for group in program.of_type("aws:eks/nodeGroup:NodeGroup"):
        waits = _waits_for(program, group)
        for name in ("vpc-cni", "kube-proxy"):
            assert _addon(program, name).urn in waits, (group.name, name)
        attachments = [r for r in program.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                       if "platform-node-" in r.name]
        assert attachments and all(a.urn in waits for a in attachments)


@pytest.mark.parametrize("stack", STACKS)
def test_every_in_cluster_resource_goes_through_the_provider_that_waits(stack_program, stack):
    program = stack_program(stack)
    provider = program.one(PROVIDER).urn
    in_cluster = [r for r in program.resources if r.custom and r.type.startswith("kubernetes:")]
    assert in_cluster
    assert all(r.options["provider"] == provider for r in in_cluster)


@pytest.mark.parametrize("stack", STACKS)
def test_custom_resources_wait_for_the_release_that_installs_their_crd(stack_program, stack):
    program = stack_program(stack)
    releases = {r.inputs["chart"]: r.urn for r in program.of_type("kubernetes:helm.sh/v3:Release")}
    custom = [r for r in program.resources
              if r.custom and r.type.split(":")[1].rsplit("/", 1)[0] in CRD_CHARTS]
    assert custom
    for resource in custom:
        chart = CRD_CHARTS[resource.type.split(":")[1].rsplit("/", 1)[0]]
        assert releases[chart] in _waits_for(program, resource), (resource.urn, chart)


@pytest.mark.parametrize("stack", STACKS)
def test_the_default_deny_waits_for_every_allowance(stack_program, stack):
    """Created last, deleted first: no running pod meets the deny without the flows it needs."""
    program = stack_program(stack)
    policies = program.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    namespaces = {p.inputs["metadata"]["namespace"] for p in policies}
    assert namespaces == {"cofounder", "tracing"}  # the apps' and the trace collector's
    for namespace in namespaces:
        mine = [p for p in policies if p.inputs["metadata"]["namespace"] == namespace]
        deny = next(p for p in mine if p.inputs["metadata"]["name"] == "default-deny")
        allowances = {p.urn for p in mine if p is not deny}
        assert allowances and allowances <= _waits_for(program, deny), namespace
