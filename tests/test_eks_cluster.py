"""components/eks_cluster.py: control plane, IRSA, node groups, add-ons, provider and namespace."""

from __future__ import annotations

import dataclasses
import json

import pulumi
import pytest

from components.eks_cluster import AddonVersions, EksCluster, EksClusterArgs, NodeGroupSpec, NodeTaint, kubeconfig
from components.headroom import HeadroomSettings
from toolkit.harness import reveal

ADMIN = "arn:aws:iam::123456789012:role/platform-admin"
VERSIONS = AddonVersions(vpc_cni="v1.20.4-eksbuild.2", coredns="v1.12.3-eksbuild.1",
                         kube_proxy="v1.34.0-eksbuild.2", aws_ebs_csi_driver="v1.54.0-eksbuild.1")
SYSTEM = NodeGroupSpec(instance_types=["m6i.large"], min_size=2, desired_size=2, max_size=4,
                       labels={"node-pool": "system"},
                       taints=[NodeTaint(key="CriticalAddonsOnly", value="true", effect="NoSchedule")])
APPS = NodeGroupSpec(instance_types=["m6i.xlarge", "m7i.xlarge"], capacity_type="SPOT", min_size=0,
                     desired_size=1, max_size=10, disk_size_gib=80, labels={"node-pool": "apps"},
                     max_unavailable=2)


def _cluster(run_program, **overrides):
    args = dict(cluster_name="demo-eks", region="us-east-1", private_subnet_ids=["subnet-a", "subnet-b"],
                admin_role_arns=[ADMIN], node_groups={"system": SYSTEM, "apps": APPS},
                addon_versions=VERSIONS)
    args.update(overrides)
    holder = {}

    def program():
        cluster = holder["cluster"] = EksCluster("platform", EksClusterArgs(**args))
        for attr in ("cluster_name", "oidc_provider_arn", "oidc_issuer_url", "node_security_group_id",
                     "app_namespace", "kubeconfig"):
            pulumi.export(attr, getattr(cluster, attr))
    program_ = run_program(program)
    return program_, holder["cluster"]


@pytest.fixture(scope="module")
def defaults():
    from toolkit import harness
    return _cluster(harness.run)


# --- control plane ---------------------------------------------------------------------------


def test_control_plane_defaults_are_private_encrypted_and_fully_logged(defaults):
    p, _ = defaults
    cluster = p.one("aws:eks/cluster:Cluster").inputs
    assert cluster["name"] == "demo-eks"
    assert cluster["version"] == "1.34"
    assert cluster["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert cluster["vpcConfig"]["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in cluster["vpcConfig"]
    assert cluster["accessConfig"] == {"authenticationMode": "API",
                                       "bootstrapClusterCreatorAdminPermissions": False}
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager",
                                                 "scheduler"]
    key = p.one("aws:kms/key:Key", "platform-secrets")
    assert key.inputs["enableKeyRotation"] is True
    assert cluster["encryptionConfig"] == {"provider": {"keyArn": key.outputs["arn"]}, "resources": ["secrets"]}
    logs = p.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert logs == {**logs, "name": "/aws/eks/demo-eks/cluster", "retentionInDays": 90}


def test_control_plane_logs_go_to_the_declared_encrypted_group_created_first(defaults):
    p, _ = defaults
    group = p.one("aws:cloudwatch/logGroup:LogGroup")
    # the name EKS writes to: otherwise EKS creates its own group, without key or retention
    assert group.inputs["name"] == f"/aws/eks/{p.one('aws:eks/cluster:Cluster').inputs['name']}/cluster"
    key = p.one("aws:kms/key:Key", "platform-log-key")
    assert group.inputs["kmsKeyId"] == key.outputs["arn"]  # its own key, not the secrets key
    assert key.inputs["enableKeyRotation"] is True
    assert group.urn in p.one("aws:eks/cluster:Cluster").options["dependsOn"]


def test_public_endpoint_only_for_listed_cidrs(run_program):
    p, _ = _cluster(run_program, endpoint_public_access=True,
                    endpoint_public_access_cidrs=["203.0.113.0/24"], kubernetes_version="1.33",
                    addon_versions=dataclasses.replace(VERSIONS, kube_proxy="v1.33.0-eksbuild.1"),
                    enabled_log_types=["audit"], log_retention_days=7)
    cluster = p.one("aws:eks/cluster:Cluster").inputs
    assert cluster["vpcConfig"]["endpointPublicAccess"] is True
    assert cluster["vpcConfig"]["publicAccessCidrs"] == ["203.0.113.0/24"]
    assert cluster["version"] == "1.33"
    assert cluster["enabledClusterLogTypes"] == ["audit"]
    assert p.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == 7


def test_component_refuses_an_open_public_endpoint(run_program):
    with pytest.raises(ValueError, match="0.0.0.0/0"):
        _cluster(run_program, endpoint_public_access=True, endpoint_public_access_cidrs=["0.0.0.0/0"])


def test_private_endpoint_admits_only_listed_networks_on_443(run_program, defaults):
    program, _ = defaults
    assert not program.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    program, _ = _cluster(run_program, endpoint_private_access_cidrs=["10.30.0.0/16"])
    (rule,) = program.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    cluster = program.one("aws:eks/cluster:Cluster")
    assert rule.inputs["securityGroupId"] == cluster.outputs["vpcConfig"]["clusterSecurityGroupId"]
    assert (rule.inputs["cidrIpv4"], rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) \
        == ("10.30.0.0/16", "tcp", 443, 443)


def test_cluster_role_is_eks_only_with_kms_scoped_to_its_key(defaults):
    p, _ = defaults
    role = p.one("aws:iam/role:Role", "platform-cluster")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "eks.amazonaws.com"}
    assert p.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "platform-cluster").inputs["policyArn"] == \
        "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
    kms = json.loads(p.one("aws:iam/rolePolicy:RolePolicy", "platform-cluster-kms").inputs["policy"])
    (statement,) = kms["Statement"]
    assert statement["Resource"] == p.one("aws:kms/key:Key", "platform-secrets").outputs["arn"]
    assert all(a.startswith("kms:") for a in statement["Action"])


def test_admins_are_explicit_access_entries(run_program):
    other = "arn:aws:iam::123456789012:role/ci-deployer"
    p, _ = _cluster(run_program, admin_role_arns=[ADMIN, other])
    entries = sorted(e.inputs["principalArn"] for e in p.of_type("aws:eks/accessEntry:AccessEntry"))
    assert entries == sorted([ADMIN, other])
    for assoc in p.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert assoc.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
        assert assoc.inputs["accessScope"] == {"type": "cluster"}
        assert assoc.inputs["clusterName"] == "demo-eks"


# --- IRSA ------------------------------------------------------------------------------------


def test_oidc_provider_trusts_the_cluster_issuer_for_sts(defaults):
    p, _ = defaults
    issuer = p.one("aws:eks/cluster:Cluster").outputs["identities"][0]["oidcs"][0]["issuer"]
    oidc = p.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["url"] == issuer
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]


def test_ebs_csi_driver_gets_its_own_irsa_role_with_the_managed_policy(defaults):
    p, _ = defaults
    issuer = p.one("aws:eks/cluster:Cluster").outputs["identities"][0]["oidcs"][0]["issuer"].removeprefix("https://")
    role = p.one("aws:iam/role:Role", "platform-ebs-csi-role")
    condition = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]["StringEquals"]
    assert condition[f"{issuer}:sub"] == "system:serviceaccount:kube-system:ebs-csi-controller-sa"
    assert p.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "platform-ebs-csi-managed-0").inputs[
        "policyArn"] == "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    addon = p.one("aws:eks/addon:Addon", "platform-ebs-csi").inputs
    assert addon["serviceAccountRoleArn"] == role.outputs["arn"]


# --- node groups -----------------------------------------------------------------------------


def test_launch_templates_require_imdsv2_and_encrypted_gp3(defaults):
    p, _ = defaults
    for ng, size in (("system", 50), ("apps", 80)):
        lt = p.one("aws:ec2/launchTemplate:LaunchTemplate", f"platform-{ng}").inputs
        assert lt["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                         "httpPutResponseHopLimit": 1}
        (device,) = lt["blockDeviceMappings"]
        assert device["deviceName"] == "/dev/xvda"
        assert device["ebs"] == {"volumeSize": size, "volumeType": "gp3", "encrypted": "true",
                                 "deleteOnTermination": "true"}
        group = p.one("aws:eks/nodeGroup:NodeGroup", f"platform-{ng}").inputs
        template = p.one("aws:ec2/launchTemplate:LaunchTemplate", f"platform-{ng}")
        assert group["launchTemplate"] == {"id": template.outputs["id"], "version": "1"}
        assert "diskSize" not in group  # the launch template owns the disk


def test_node_groups_follow_their_spec(defaults):
    p, _ = defaults
    apps = p.one("aws:eks/nodeGroup:NodeGroup", "platform-apps").inputs
    assert apps["instanceTypes"] == ["m6i.xlarge", "m7i.xlarge"]
    assert apps["capacityType"] == "SPOT"
    assert apps["scalingConfig"] == {"minSize": 0, "desiredSize": 1, "maxSize": 10}
    assert apps["updateConfig"] == {"maxUnavailable": 2}
    assert apps["labels"] == {"node-pool": "apps"}
    assert "taints" not in apps
    assert apps["subnetIds"] == ["subnet-a", "subnet-b"]
    assert apps["amiType"] == "AL2023_x86_64_STANDARD"
    system = p.one("aws:eks/nodeGroup:NodeGroup", "platform-system").inputs
    assert system["capacityType"] == "ON_DEMAND"
    assert system["taints"] == [{"key": "CriticalAddonsOnly", "value": "true", "effect": "NO_SCHEDULE"}]


def test_pulumi_up_never_resets_the_desired_size(defaults):
    p, _ = defaults
    for group in p.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert group.options["ignoreChanges"] == ["scalingConfig.desiredSize"]


def test_node_groups_carry_autoscaler_discovery_and_node_template_tags(defaults):
    p, _ = defaults
    system = p.one("aws:eks/nodeGroup:NodeGroup", "platform-system")
    tags = system.inputs["tags"]
    assert tags["k8s.io/cluster-autoscaler/enabled"] == "true"
    assert tags["k8s.io/cluster-autoscaler/demo-eks"] == "owned"
    assert tags["k8s.io/cluster-autoscaler/node-template/label/node-pool"] == "system"
    assert tags["k8s.io/cluster-autoscaler/node-template/taint/CriticalAddonsOnly"] == "true:NoSchedule"
    assert tags["component"] == "cluster"
    # ...and the node-template tags are on the Auto Scaling group, where the autoscaler reads them
    asg = system.outputs["resources"][0]["autoscalingGroups"][0]["name"]
    on_asg = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"] for t in p.of_type("aws:autoscaling/tag:Tag")
              if t.inputs["autoscalingGroupName"] == asg}
    assert on_asg == {"k8s.io/cluster-autoscaler/node-template/label/node-pool": "system",
                      "k8s.io/cluster-autoscaler/node-template/taint/CriticalAddonsOnly": "true:NoSchedule"}
    assert all(t.inputs["tag"]["propagateAtLaunch"] is False for t in p.of_type("aws:autoscaling/tag:Tag"))


def test_node_role_has_exactly_the_worker_policies(defaults):
    p, _ = defaults
    trust = json.loads(p.one("aws:iam/role:Role", "platform-node").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    node_role = p.one("aws:iam/role:Role", "platform-node").outputs["name"]
    attached = sorted(a.inputs["policyArn"] for a in p.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
                      if a.inputs["role"] == node_role)
    assert attached == ["arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
                        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
                        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]
    for group in p.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert group.inputs["nodeRoleArn"] == p.one("aws:iam/role:Role", "platform-node").outputs["arn"]


def test_a_pool_per_zone_is_one_group_per_subnet_with_the_pool_sizes_each(run_program):
    zonal = dataclasses.replace(SYSTEM, one_group_per_zone=True, min_size=1, desired_size=1, max_size=2)
    p, _ = _cluster(run_program, node_groups={"system": zonal, "apps": APPS},
                    availability_zones=["us-east-1a", "us-east-1b"])
    groups = {g.name: g for g in p.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert set(groups) == {"platform-apps", "platform-system-us-east-1a", "platform-system-us-east-1b"}
    assert groups["platform-apps"].inputs["subnetIds"] == ["subnet-a", "subnet-b"]  # the other pool spans zones
    for zone, subnet in (("us-east-1a", "subnet-a"), ("us-east-1b", "subnet-b")):
        group = groups[f"platform-system-{zone}"]
        assert group.inputs["subnetIds"] == [subnet]
        assert group.inputs["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 2}
        assert group.inputs["labels"] == {"node-pool": "system"}
        # each zone's group is discovered and templated for the autoscaler on its own
        assert group.inputs["tags"]["k8s.io/cluster-autoscaler/node-template/label/node-pool"] == "system"
        assert group.inputs["tags"]["node-group"] == f"system-{zone}"
    asgs = {t.inputs["autoscalingGroupName"] for t in p.of_type("aws:autoscaling/tag:Tag")}
    assert len(asgs) == 3


def test_a_pool_per_zone_needs_the_zones(run_program):
    zonal = dataclasses.replace(SYSTEM, one_group_per_zone=True)
    with pytest.raises(ValueError, match=r"availability_zones = \[\] is not allowed: expected the zones of "
                                         r"private_subnet_ids \(node groups \['system'\] are per zone\)"):
        _cluster(run_program, node_groups={"system": zonal, "apps": APPS})


def test_missing_required_node_group_is_refused(run_program):
    with pytest.raises(ValueError, match=r"node_groups = \['system'\] is not allowed: expected node groups named "
                                         r"system and apps \(missing: apps\)"):
        _cluster(run_program, node_groups={"system": SYSTEM})


# --- add-ons ---------------------------------------------------------------------------------


def test_core_addons_are_pinned_and_ordered_around_the_nodes(defaults):
    p, _ = defaults
    versions = VERSIONS
    addons = {a.inputs["addonName"]: a for a in p.of_type("aws:eks/addon:Addon")}
    assert {name: a.inputs["addonVersion"] for name, a in addons.items()} == {
        "vpc-cni": versions.vpc_cni, "kube-proxy": versions.kube_proxy,
        "coredns": versions.coredns, "aws-ebs-csi-driver": versions.aws_ebs_csi_driver}
    groups = {g.urn for g in p.of_type("aws:eks/nodeGroup:NodeGroup")}
    for group in p.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert {addons["vpc-cni"].urn, addons["kube-proxy"].urn} <= set(group.options["dependsOn"])
    for name in ("coredns", "aws-ebs-csi-driver"):
        assert groups <= set(addons[name].options["dependsOn"])
    for a in addons.values():
        assert a.inputs["resolveConflictsOnCreate"] == "OVERWRITE"


def test_addon_pods_run_on_the_system_nodes(defaults):
    p, cluster = defaults
    toleration = {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"}
    assert cluster.system_node_selector == {"node-pool": "system"}
    assert cluster.system_tolerations == [toleration]
    coredns = json.loads(p.one("aws:eks/addon:Addon", "platform-coredns").inputs["configurationValues"])
    assert coredns == {"nodeSelector": {"node-pool": "system"}, "tolerations": [toleration]}
    ebs = json.loads(p.one("aws:eks/addon:Addon", "platform-ebs-csi").inputs["configurationValues"])
    assert ebs["controller"] == coredns


def test_the_vpc_cni_runs_its_network_policy_agent(defaults):
    p, _ = defaults
    vpc_cni = p.one("aws:eks/addon:Addon", "platform-vpc-cni").inputs
    # the add-on schema's key, a string; the agent then enforces NetworkPolicy on every node
    assert json.loads(vpc_cni["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_a_vpc_cni_older_than_network_policy_support_is_refused(run_program):
    with pytest.raises(ValueError, match=r"addon_versions.vpc_cni = 'v1.13.4-eksbuild.1' is not allowed: "
                                         r"expected v1.14.0-eksbuild.3 or later"):
        _cluster(run_program, addon_versions=dataclasses.replace(VERSIONS, vpc_cni="v1.13.4-eksbuild.1"))
    with pytest.raises(ValueError, match="v1.14.0-eksbuild.3 or later"):
        _cluster(run_program, addon_versions=dataclasses.replace(VERSIONS, vpc_cni="v1.14.0-eksbuild.2"))
    p, _ = _cluster(run_program, addon_versions=dataclasses.replace(VERSIONS, vpc_cni="v1.14.0-eksbuild.3"))
    assert p.one("aws:eks/addon:Addon", "platform-vpc-cni").inputs["addonVersion"] == "v1.14.0-eksbuild.3"


def test_addon_versions_override(run_program):
    p, _ = _cluster(run_program, addon_versions=dataclasses.replace(VERSIONS, coredns="v1.12.4-eksbuild.1"))
    assert p.one("aws:eks/addon:Addon", "platform-coredns").inputs["addonVersion"] == "v1.12.4-eksbuild.1"


# --- Kubernetes side -------------------------------------------------------------------------


def test_kubeconfig_uses_aws_eks_get_token_and_is_secret(defaults):
    p, cluster = defaults
    provider = p.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"]["4dabf18193072939515e22adb298388d"]  # wrapped as a secret
    doc = json.loads(reveal(provider.inputs["kubeconfig"]))
    eks = p.one("aws:eks/cluster:Cluster").outputs
    assert doc["clusters"][0]["cluster"] == {"server": eks["endpoint"],
                                             "certificate-authority-data": eks["certificateAuthority"]["data"]}
    exec_ = doc["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws"
    assert exec_["args"][:6] == ["eks", "get-token", "--cluster-name", "demo-eks", "--region", "us-east-1"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    # the provider waits for access, nodes and add-ons
    deps = set(provider.options["dependsOn"])
    assert {a.urn for a in p.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")} <= deps
    assert {g.urn for g in p.of_type("aws:eks/nodeGroup:NodeGroup")} <= deps


def test_kubeconfig_helper_has_no_credentials():
    doc = json.loads(kubeconfig("c", "https://x", "Q0E=", "eu-west-1"))
    assert set(doc["users"][0]["user"]) == {"exec"}  # no token or key: minted per call by the AWS CLI
    assert doc["current-context"] == "c"


def test_app_namespace_enforces_restricted_and_uses_the_cluster_provider(defaults, validate_k8s):
    p, _ = defaults
    ns = p.one("kubernetes:core/v1:Namespace")
    doc = validate_k8s(ns)
    assert doc["metadata"]["name"] == "cofounder"
    assert doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert doc["metadata"]["labels"]["pod-security.kubernetes.io/enforce-version"] == "v1.34"
    provider = p.one("pulumi:providers:kubernetes").urn
    for r in p.resources:
        if r.type.startswith("kubernetes:"):
            assert r.options["provider"] == provider, r.urn


def test_app_namespace_name_override(run_program):
    p, _ = _cluster(run_program, app_namespace="agents")
    assert p.one("kubernetes:core/v1:Namespace").inputs["metadata"]["name"] == "agents"
    assert p.one("kubernetes:apps/v1:Deployment").inputs["metadata"]["namespace"] == "agents"


def test_headroom_lands_on_the_burst_node_group(run_program):
    p, cluster = _cluster(run_program, headroom=HeadroomSettings(replicas=3, cpu_millicores=750, memory_mib=1536))
    dep = p.one("kubernetes:apps/v1:Deployment").inputs
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"node-pool": "apps"}
    assert (cluster.headroom.total_cpu_millicores, cluster.headroom.total_memory_mib) == (2250, 4608)


def test_outputs_expose_the_shared_interface(defaults):
    p, _ = defaults
    out = p.outputs
    eks = p.one("aws:eks/cluster:Cluster")
    assert out["node_security_group_id"] == eks.outputs["vpcConfig"]["clusterSecurityGroupId"]
    assert out["oidc_issuer_url"] == eks.outputs["identities"][0]["oidcs"][0]["issuer"]
    assert out["oidc_provider_arn"] == p.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").outputs["arn"]
    assert out["cluster_name"] == "demo-eks"
    assert out["app_namespace"] == "cofounder"
    assert out["kubeconfig"]["4dabf18193072939515e22adb298388d"]  # secret


def test_every_child_is_parented_named_and_tagged(defaults):
    p, _ = defaults
    component = p.one("cofounder:cluster:EksCluster")
    for r in p.resources:
        if r is component:
            continue
        assert r.urn.split("::")[2].startswith("cofounder:cluster:EksCluster"), r.urn
        assert r.name.startswith("platform-"), r.name
        if r.type.startswith("aws:") and "tags" in _taggable(r.type):
            assert r.inputs["tags"]["component"] in ("cluster", "irsa"), r.urn


def _taggable(type_: str) -> set[str]:
    untagged = {"aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
                "aws:eks/accessPolicyAssociation:AccessPolicyAssociation", "aws:kms/alias:Alias",
                "aws:autoscaling/tag:Tag"}
    return set() if type_ in untagged else {"tags"}


# --- storage, preview access, API reachability before the provider ---------------------------

def test_a_default_encrypted_gp3_storage_class_exists_for_volume_claims(defaults, validate_k8s):
    p, _ = defaults
    sc = p.one("kubernetes:storage.k8s.io/v1:StorageClass")
    validate_k8s(sc)
    assert sc.inputs["metadata"]["name"] == "gp3"  # what cofounder:observability.storageClass names
    assert sc.inputs["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert sc.inputs["provisioner"] == "ebs.csi.aws.com"
    assert sc.inputs["parameters"] == {"type": "gp3", "encrypted": "true"}
    # bound where the pod lands, so a volume never sits in a zone its pod cannot reach
    assert sc.inputs["volumeBindingMode"] == "WaitForFirstConsumer"
    assert sc.inputs["allowVolumeExpansion"] is True


def test_prometheus_waits_for_the_storage_class(stack_program):
    p = stack_program("prod")
    sc = p.one("kubernetes:storage.k8s.io/v1:StorageClass")
    release = next(r for r in p.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "kube-prometheus-stack")
    assert sc.urn in release.options["dependsOn"]


def test_preview_roles_get_view_access_without_secrets(run_program):
    preview = "arn:aws:iam::123456789012:role/cofounder-preview"
    p, _ = _cluster(run_program, preview_role_arns=[preview])
    associations = {a.inputs["principalArn"]: a.inputs["policyArn"]
                    for a in p.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")}
    assert associations[preview] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
    assert associations[ADMIN] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def test_the_provider_waits_until_the_deployer_can_reach_the_private_endpoint(run_program):
    p, _ = _cluster(run_program, endpoint_private_access_cidrs=["10.30.0.0/16"])
    rule = p.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "platform-api-private-0")
    assert rule.urn in p.one("pulumi:providers:kubernetes").options["dependsOn"]
