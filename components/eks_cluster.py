"""EksCluster: the Kubernetes platform every CoFounder workload runs on.

Builds an EKS control plane in the private subnets (private API endpoint; a public one only for
listed CIDRs), secrets envelope-encrypted with a rotating KMS key, every control-plane log
type shipped to a log group with a retention and its own KMS key, API authentication through access entries only
(no aws-auth ConfigMap, no implicit creator admin), and the IAM OIDC provider for IRSA.

Compute is EKS managed node groups, each over a launch template that requires IMDSv2 with a
hop limit of 1 and an encrypted gp3 root volume. Hop limit 1 keeps pods (one network hop
further away than the host) off the instance metadata service, so no pod can borrow the node
role: every in-cluster AWS client gets its own IRSA role instead. Host-network daemons
(vpc-cni, kube-proxy) still reach IMDS. The groups carry the Cluster Autoscaler's discovery
tags, and their labels and taints are published as node-template tags on the Auto Scaling
group so the autoscaler can scale a group up from zero. `pulumi up` never resets a group's
desired size (the autoscaler owns it).

The core add-ons (vpc-cni, with its network policy agent enforcing NetworkPolicy, kube-proxy,
CoreDNS, EBS CSI driver) are pinned EKS add-ons. The
component also builds the Kubernetes provider (exec auth via ``aws eks get-token``) that every
in-cluster component receives, the application namespace (Pod Security Admission
``restricted``) and the pre-warmed headroom (``components/headroom.py``).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from capacity import classes
from capacity.headroom import HeadroomFigures
from components import Between, Matches, args_for, require_valid
from components.headroom import Headroom, HeadroomArgs, HeadroomSettings
from components.irsa_role import IrsaRole, IrsaRoleArgs
from components.key_policy import KeyContext, explicit_key_policy, used_through
from components.load_balancer_controller import READINESS_GATE_LABEL
from components.log_encryption import log_key

ALL_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
#: Read-only access to most objects, Secrets excluded (EKS user guide, "Access policy permissions").
CLUSTER_VIEW_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
#: The StorageClass volume claims of this project name (Prometheus); EKS ships none for gp3.
GP3_STORAGE_CLASS = "gp3"
EBS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "ecr-read": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
}
#: The node group for cluster add-ons (CoreDNS, EBS CSI controller, autoscaler, metrics-server)...
SYSTEM_NODE_GROUP = "system"
#: ... and the one that absorbs bursts (the headroom placeholders run there).
BURST_NODE_GROUP = "apps"
_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE",
                  "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


_ADDON_VERSION = Matches(r"v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+",
                         "an EKS add-on version such as v1.20.4-eksbuild.2")
_ROLE_ARN = Matches(r"arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+",
                    "an IAM role ARN such as arn:aws:iam::123456789012:role/admin")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
#: The private IPv4 ranges (RFC 1918) a VPC, a peered network or a VPN uses.
RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
#: The vpc-cni add-on's configuration: the network policy agent (the aws-node DaemonSet's
#: second container) enforces NetworkPolicy, and the ConfigMap key it sets
#: (``enable-network-policy-controller``) starts EKS's network policy controller in the control
#: plane. Without it a NetworkPolicy is accepted and enforces nothing. The key and its string
#: value are the add-on's schema (EKS user guide, cni-network-policy-configure: ``{"enableNetworkPolicy":
#: "true"}``, from v1.14.0-eksbuild.3; amazon-vpc-cni-k8s@v1.20.4:charts/aws-vpc-cni/values.yaml
#: ``enableNetworkPolicy: "false"`` is the default, and templates/daemonset.yaml passes it to the
#: agent as ``--enable-network-policy``). Enforcement stays in ``standard`` mode (that chart's
#: ``NETWORK_POLICY_ENFORCING_MODE``): a new pod starts open until its policies are in place
#: rather than closed, so no pod in a namespace without policies (kube-system, the add-ons) is
#: cut off. It needs Linux kernel 5.10+ (the AL2023 node AMIs have 6.x) and no IAM.
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
VPC_CNI_NETWORK_POLICY_MINIMUM = (1, 14, 0, 3)
#: The cluster DNS (the CoreDNS add-on's pods and its kube-dns Service select ``k8s-app: kube-dns``,
#: EKS user guide managing-coredns) and where it runs.
CLUSTER_DNS_NAMESPACE = "kube-system"
CLUSTER_DNS_SELECTOR = {"k8s-app": "kube-dns"}
CLUSTER_DNS_PORT = 53


@dataclass(frozen=True, kw_only=True)
class NodeTaint:
    """One Kubernetes taint on every node of a node group."""

    #: Taint key, such as CriticalAddonsOnly.
    key: str
    #: Taint value; empty tolerates by key alone.
    value: str = ""
    #: What the taint does to pods that do not tolerate it.
    effect: Literal["NoSchedule", "NoExecute", "PreferNoSchedule"] = "NoSchedule"


@dataclass(frozen=True, kw_only=True)
class NodeGroupSpec:
    """``cofounder:cluster.nodeGroups.<name>``: one EKS managed node group. The Cluster
    Autoscaler moves the desired size between min and max."""

    #: EC2 instance types, all of the same size class (the Cluster Autoscaler assumes one shape per group),
    #: each one of capacity/instance-classes.yaml (its allocatable and price).
    instance_types: list[Annotated[str, classes.listed("ec2")]]
    #: ON_DEMAND, or SPOT (cheaper, can be reclaimed; needs two or more instance types).
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    #: Nodes the group never goes below (the Cluster Autoscaler keeps at least these).
    min_size: Annotated[int, Between(0, 1000)] = 1
    #: Nodes at creation; afterwards the Cluster Autoscaler owns it (pulumi up never resets it).
    desired_size: Annotated[int, Between(0, 1000)] = 1
    #: Nodes the Cluster Autoscaler may grow the group to; bounds the cost of a burst.
    max_size: Annotated[int, Between(1, 1000)] = 3
    #: Size of the encrypted gp3 root volume.
    disk_size_gib: Annotated[int, Between(20, 16384)] = 50
    #: Kubernetes labels on every node (also published to the Cluster Autoscaler for scale-from-zero).
    labels: dict[str, str] = field(default_factory=dict)
    #: Kubernetes taints on every node (the system group keeps app pods off with one).
    taints: list[NodeTaint] = field(default_factory=list)
    #: Nodes replaced at once during a node-group update (AMI or launch-template change).
    max_unavailable: Annotated[int, Between(1, 100)] = 1
    #: EKS-optimized Amazon Linux 2023 AMI family; must match the instance types' architecture.
    ami_type: Literal["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD"] = "AL2023_x86_64_STANDARD"
    #: One node group per availability zone (``<name>-<zone>``, each with these sizes) instead of one
    #: group across all zones: required for a pool whose pods keep EBS volumes, which live in one zone.
    one_group_per_zone: bool = False

    def checks(self):
        if not self.instance_types:
            yield "instance_types", self.instance_types, "at least one EC2 instance type such as m6i.large"
        if self.capacity_type == "SPOT" and len(self.instance_types) < 2:
            yield ("instance_types", self.instance_types,
                   "at least two instance types for SPOT capacity (diversified pools)")
        if self.min_size >= self.max_size:
            yield "min_size", self.min_size, f"below maxSize ({self.max_size})"
        elif not self.min_size <= self.desired_size <= self.max_size:
            yield "desired_size", self.desired_size, f"between minSize ({self.min_size}) and maxSize ({self.max_size})"
        for key in list(self.labels) + [t.key for t in self.taints]:
            if not _LABEL_KEY.match(key):
                where = "labels" if key in self.labels else "taints"
                yield where, key, "a Kubernetes label/taint key such as node-pool"


@dataclass(frozen=True, kw_only=True)
class AddonVersions:
    """``cofounder:cluster.addonVersions``: pinned EKS add-on versions (``aws eks describe-addon-versions``)."""

    #: The VPC CNI add-on (pod networking, and the network policy agent from v1.14.0-eksbuild.3 on).
    vpc_cni: Annotated[str, _ADDON_VERSION] = "v1.20.4-eksbuild.2"
    #: The CoreDNS add-on (cluster DNS, on the system nodes).
    coredns: Annotated[str, _ADDON_VERSION] = "v1.12.3-eksbuild.1"
    #: Must be built for the cluster's Kubernetes minor (v1.34.x for 1.34).
    kube_proxy: Annotated[str, _ADDON_VERSION] = "v1.34.0-eksbuild.2"
    #: The EBS CSI driver add-on (gp3 volumes for Prometheus).
    aws_ebs_csi_driver: Annotated[str, _ADDON_VERSION] = "v1.54.0-eksbuild.1"


@dataclass(frozen=True, kw_only=True)
class EksClusterSettings:
    """``cofounder:cluster``: the EKS control plane, node groups, add-ons and pre-warmed headroom."""

    #: Kubernetes minor version, pinned per stack ("1.34"); upgrades are one minor at a time.
    kubernetes_version: Annotated[str, Matches(r"1\.[0-9]{2}", "a Kubernetes minor version such as 1.34")] = "1.34"
    #: Serve the API on a public endpoint as well as the private one (only from endpointPublicAccessCidrs).
    endpoint_public_access: bool = False
    #: CIDRs allowed to reach the public endpoint; never 0.0.0.0/0.
    endpoint_public_access_cidrs: list[str] = field(default_factory=list)
    #: Private networks admitted to the private endpoint on 443 (the machine or CI runner that runs
    #: `pulumi up` from inside the VPC, a VPN); the nodes are always admitted.
    endpoint_private_access_cidrs: list[str] = field(default_factory=list)
    #: IAM roles granted cluster-admin through EKS access entries; the role running `pulumi up` must be one.
    admin_role_arns: list[Annotated[str, _ROLE_ARN]]
    #: IAM roles granted view access without Secrets (AmazonEKSViewPolicy): CI's preview roles.
    preview_role_arns: list[Annotated[str, _ROLE_ARN]] = field(default_factory=list)
    #: Control-plane log types shipped to CloudWatch; all of them unless a stack narrows the list.
    enabled_log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = \
        field(default_factory=lambda: list(ALL_LOG_TYPES))  # type: ignore[arg-type]
    #: Retention of the control-plane log group /aws/eks/<cluster>/cluster.
    log_retention_days: Annotated[int, Between(1, 3653)] = 90
    addon_versions: AddonVersions = field(default_factory=AddonVersions)
    #: Managed node groups by name; "system" (cluster add-ons) and "apps" (workloads) are required.
    node_groups: dict[str, NodeGroupSpec]
    headroom: HeadroomSettings = field(default_factory=HeadroomSettings)
    #: Namespace of the application workloads (Pod Security Admission "restricted").
    app_namespace: Annotated[str, Matches(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?",
                                          "a namespace name (lowercase letters, digits, dashes)")] = "cofounder"

    def checks(self):
        for i, cidr in enumerate(self.endpoint_public_access_cidrs):
            try:
                net = ipaddress.IPv4Network(cidr)
            except ValueError:
                yield f"endpoint_public_access_cidrs[{i}]", cidr, "an IPv4 CIDR block such as 203.0.113.0/24"
                continue
            if net.prefixlen == 0:
                yield (f"endpoint_public_access_cidrs[{i}]", cidr,
                       "a restricted CIDR block; the API endpoint must never be open to 0.0.0.0/0")
        for i, cidr in enumerate(self.endpoint_private_access_cidrs):
            try:
                net = ipaddress.IPv4Network(cidr)
                private = any(net.subnet_of(ipaddress.IPv4Network(block)) for block in RFC1918)
            except ValueError:
                private = False
            if not private:
                yield (f"endpoint_private_access_cidrs[{i}]", cidr,
                       "a private IPv4 CIDR block (RFC 1918) such as 10.30.0.0/16")
        if self.endpoint_public_access and not self.endpoint_public_access_cidrs:
            yield ("endpoint_public_access_cidrs", [],
                   "at least one CIDR while endpointPublicAccess is true (EKS would default to 0.0.0.0/0)")
        if not self.admin_role_arns:
            yield "admin_role_arns", [], "at least one IAM role ARN (access entries are the only way in)"
        both = sorted(set(self.admin_role_arns) & set(self.preview_role_arns))
        if both:
            yield "preview_role_arns", both, "roles that are not also in adminRoleArns (one access entry per role)"
        if _version(self.addon_versions.vpc_cni) < VPC_CNI_NETWORK_POLICY_MINIMUM:
            yield ("addon_versions.vpc_cni", self.addon_versions.vpc_cni,
                   "v1.14.0-eksbuild.3 or later (the first vpc-cni add-on that enforces NetworkPolicy)")
        if not self.addon_versions.kube_proxy.startswith(f"v{self.kubernetes_version}."):
            yield ("addon_versions.kube_proxy", self.addon_versions.kube_proxy,
                   f"a kube-proxy build for Kubernetes {self.kubernetes_version} "
                   f"(v{self.kubernetes_version}.x-eksbuild.N)")
        missing = [n for n in (SYSTEM_NODE_GROUP, BURST_NODE_GROUP) if n not in self.node_groups]
        if missing:
            yield ("node_groups", sorted(self.node_groups),
                   "node groups named system and apps (missing: " + ", ".join(missing) + ")")
        for name in self.node_groups:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,19}", name):
                yield f"node_groups.{name}", name, "a node-group name of lowercase letters, digits and dashes"


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs(EksClusterSettings):
    """Settings plus the wiring and the component's fixed choices."""

    #: Physical cluster name; the network tags its subnets with it, so it is fixed, not generated.
    cluster_name: str
    #: AWS region of the cluster (for the kubeconfig's ``aws eks get-token``).
    region: str
    private_subnet_ids: pulumi.Input[Sequence[str]]
    #: The zones of ``private_subnet_ids``, in the same order (the network's availabilityZones):
    #: they name the node groups of a ``oneGroupPerZone`` pool.
    availability_zones: Sequence[str] = ()
    #: IMDSv2 response hop limit: 1 keeps pods off the metadata service (they use IRSA).
    imds_hop_limit: int = 1
    kms_deletion_window_days: int = 30
    tags: dict[str, str] = field(default_factory=dict)

    def checks(self):
        yield from super().checks()
        zonal = sorted(ng for ng, spec in self.node_groups.items() if spec.one_group_per_zone)
        if zonal and not self.availability_zones:
            yield "availability_zones", [], f"the zones of private_subnet_ids (node groups {zonal} are per zone)"


def _version(addon_version: str) -> tuple[int, ...]:
    """``v1.20.4-eksbuild.2`` -> (1, 20, 4, 2), ordered as EKS orders add-on builds."""
    return tuple(int(n) for n in re.findall(r"[0-9]+", addon_version))


def _policy(*statements: dict) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


#: What the cluster role does with the secrets key (its inline policy too): envelope encryption.
CLUSTER_KEY_USE = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]


def _secrets_key_statements(ctx: KeyContext, cluster_role_arn: str) -> list[dict]:
    """The secrets key serves two principals (EKS user guide, "Encrypt Kubernetes secrets with KMS
    on existing clusters", awsdocs/amazon-eks-user-guide latest/ug/security/enable-kms.adoc): the
    principal calling CreateCluster needs kms:CreateGrant and kms:DescribeKey (EKS makes the grant
    on its behalf, hence kms:ViaService; the guide warns kms:GrantIsForAWSResource is not
    supported for CreateCluster, so it is not used), and the cluster role encrypts and decrypts."""
    return [used_through(ctx, "eks", "UseThroughEks", ["kms:CreateGrant", "kms:DescribeKey"]),
            {"Sid": "ClusterRoleEncryptsSecrets", "Effect": "Allow", "Principal": {"AWS": cluster_role_arn},
             "Action": CLUSTER_KEY_USE, "Resource": "*"}]


def _assume(service: str, *actions: str) -> str:
    return _policy({"Effect": "Allow", "Principal": {"Service": service},
                    "Action": list(actions) or "sts:AssumeRole"})


def _placements(ng: str, spec: NodeGroupSpec, args: EksClusterArgs) -> list[tuple[str, pulumi.Input]]:
    """(node-group name, its subnets) for one pool: all private subnets, or one group per zone.

    A pod with an EBS volume can only run in the volume's zone. When the node under it goes, the
    Cluster Autoscaler adds a node to a group whose template fits the pod; for a group spanning
    three zones the Auto Scaling group picks the zone, so the pod may stay Pending. With one group
    per zone the autoscaler knows each group's zone and scales the right one, which is also what
    gives its balance-similar-node-groups flag something to balance. eksctl's user guide, "Zone-aware
    Auto Scaling" (zone-specific workloads need a node group per zone):
    https://docs.aws.amazon.com/eks/latest/eksctl/autoscaling.html; the EKS best-practices guide on
    the Cluster Autoscaler (node groups per zone for EBS-backed pods, with balance-similar-node-groups):
    https://docs.aws.amazon.com/eks/latest/best-practices/cas.html
    """
    if not spec.one_group_per_zone:
        return [(ng, args.private_subnet_ids)]
    subnets = pulumi.Output.from_input(args.private_subnet_ids)

    def one(i: int) -> pulumi.Output[list[str]]:
        return subnets.apply(lambda ids: [ids[i]])
    return [(f"{ng}-{zone}", one(i)) for i, zone in enumerate(args.availability_zones)]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-").lower()


def autoscaler_tags(cluster_name: str, spec: NodeGroupSpec) -> dict[str, str]:
    """Tags the Cluster Autoscaler reads: discovery, plus node-template labels/taints for scale-from-zero."""
    tags = {"k8s.io/cluster-autoscaler/enabled": "true",
            f"k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
    tags.update(node_template_tags(spec))
    return tags


def node_template_tags(spec: NodeGroupSpec) -> dict[str, str]:
    tags = {f"k8s.io/cluster-autoscaler/node-template/label/{k}": v for k, v in spec.labels.items()}
    tags.update({f"k8s.io/cluster-autoscaler/node-template/taint/{t.key}": f"{t.value}:{t.effect}"
                 for t in spec.taints})
    return tags


def tolerations_for(spec: NodeGroupSpec) -> list[dict]:
    """Pod tolerations (Kubernetes camelCase) that admit pods onto a node group's taints."""
    out = []
    for t in spec.taints:
        if t.value:
            out.append({"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect})
        else:
            out.append({"key": t.key, "operator": "Exists", "effect": t.effect})
    return out


def kubeconfig(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with the caller's AWS credentials (no stored token)."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name,
                      "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region,
                     "--output", "json"],
            "interactiveMode": "Never",
        }}}],
    })


class EksCluster(pulumi.ComponentResource):
    """An EKS cluster with node groups, core add-ons, IRSA, a Kubernetes provider and headroom."""

    cluster_name: pulumi.Output[str]
    cluster_endpoint: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    node_security_group_id: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    k8s_provider: k8s.Provider
    app_namespace: pulumi.Output[str]
    headroom: HeadroomFigures
    system_node_selector: dict[str, str]
    system_tolerations: list[dict]
    #: The encrypted gp3 StorageClass (the default class); volume claims depend on it.
    storage_class: k8s.storage.v1.StorageClass

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:cluster:EksCluster", name, None, opts)
        require_valid(f"EksCluster {name}", args)
        tags = {**args.tags, "component": "cluster"}

        cluster_role = aws.iam.Role(f"{name}-cluster", assume_role_policy=_assume(
            "eks.amazonaws.com", "sts:AssumeRole", "sts:TagSession"), tags=tags,
            opts=pulumi.ResourceOptions(parent=self))
        key = self._secrets_key(name, args, cluster_role, tags)
        cluster = self._control_plane(name, args, cluster_role, key, tags)
        api_access = self._api_access(name, args, cluster, tags)
        admin_grants = self._access_entries(name, args, cluster, tags)
        issuer, oidc = self._oidc_provider(name, cluster, tags)
        node_role, node_policies = self._node_role(name, tags)

        # Networking add-ons first: nodes only become Ready once the CNI runs on them.
        addon_opts = dict(cluster_name=cluster.name, resolve_conflicts_on_create="OVERWRITE",
                          resolve_conflicts_on_update="OVERWRITE", tags=tags)
        network_addons = self._network_addons(name, args, addon_opts)
        node_groups = [self._node_group(name, group, spec, subnets, args, cluster, node_role, tags,
                                        depends_on=[*node_policies, *network_addons])
                       for ng, spec in args.node_groups.items()
                       for group, subnets in _placements(ng, spec, args)]
        system = args.node_groups[SYSTEM_NODE_GROUP]
        self.system_node_selector = dict(system.labels)
        self.system_tolerations = tolerations_for(system)
        workload_addons = self._workload_addons(name, args, oidc, issuer, node_groups, addon_opts, tags)

        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.certificate_authority.data,
        ).apply(lambda v: kubeconfig(v[0], v[1], v[2], args.region)))
        self.k8s_provider = self._kubernetes_provider(
            name, depends_on=[*admin_grants, *api_access, *node_groups, *workload_addons])
        namespace = self._app_namespace(name, args)
        self.storage_class = self._storage_class(name)
        headroom = Headroom(f"{name}-headroom", args_for(
            args.headroom, HeadroomArgs,
            namespace=namespace.metadata.name,
            node_selector=dict(args.node_groups[BURST_NODE_GROUP].labels),
        ), opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": self.k8s_provider}))

        self.cluster_name = cluster.name
        self.cluster_endpoint = cluster.endpoint
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = issuer
        self.node_security_group_id = cluster.vpc_config.cluster_security_group_id
        self.node_role_arn = node_role.arn  # the kubelet pulls images as this role
        self.kms_key_arn = key.arn
        self.app_namespace = namespace.metadata.name
        self.headroom = headroom.figures
        self.register_outputs({
            "cluster_name": self.cluster_name,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_issuer_url": self.oidc_issuer_url,
            "node_security_group_id": self.node_security_group_id,
            "app_namespace": self.app_namespace,
        })

    def _secrets_key(self, name: str, args: EksClusterArgs, cluster_role: aws.iam.Role,
                     tags: dict) -> aws.kms.Key:
        """The rotating KMS key (and its alias) that envelope-encrypts Kubernetes secrets."""
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes secrets in {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=args.kms_deletion_window_days,
            policy=explicit_key_policy(self, _secrets_key_statements, inputs=[cluster_role.arn]),
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(f"{name}-secrets", name=f"alias/{args.cluster_name}-secrets",
                      target_key_id=key.key_id, opts=child)
        return key

    def _control_plane(self, name: str, args: EksClusterArgs, cluster_role: aws.iam.Role,
                       key: aws.kms.Key, tags: dict) -> aws.eks.Cluster:
        """The EKS control plane, after its role's policies and its log group."""
        child = pulumi.ResourceOptions(parent=self)
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster", role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=child)
        cluster_kms = aws.iam.RolePolicy(
            f"{name}-cluster-kms", role=cluster_role.id,
            policy=key.arn.apply(lambda arn: _policy({
                "Effect": "Allow",
                "Action": CLUSTER_KEY_USE,
                "Resource": arn,
            })),
            opts=child)
        # EKS writes to /aws/eks/<cluster>/cluster and creates that group itself, without retention
        # or key, unless it exists (https://docs.aws.amazon.com/eks/latest/userguide/control-plane-logs.html):
        # so it is declared here, before the cluster (dependsOn below), encrypted with the
        # control-plane logs' own key; the audit log records every request to the API.
        logs_key = log_key(name, self, f"{args.cluster_name}: control-plane logs (incl. audit)", tags)
        logs = aws.cloudwatch.LogGroup(
            f"{name}-control-plane", name=f"/aws/eks/{args.cluster_name}/cluster",
            retention_in_days=args.log_retention_days, kms_key_id=logs_key.arn, tags=tags, opts=child)

        return aws.eks.Cluster(
            f"{name}-eks",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=args.endpoint_public_access,
                public_access_cidrs=list(args.endpoint_public_access_cidrs)
                if args.endpoint_public_access else None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API",
                # Every admin is an explicit, revocable access entry below.
                bootstrap_cluster_creator_admin_permissions=False,
            ),
            # The core add-ons are managed (and pinned) as EKS add-ons below instead.
            bootstrap_self_managed_addons=False,
            enabled_cluster_log_types=list(args.enabled_log_types),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=key.arn),
                resources=["secrets"],
            ),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[cluster_policy, cluster_kms, logs]),
        )

    def _api_access(self, name: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
                    tags: dict) -> list[aws.vpc.SecurityGroupIngressRule]:
        """Ingress rules that let the listed private CIDRs reach the Kubernetes API."""
        # The cluster security group admits only itself (nodes, pods); whoever runs `pulumi up` or
        # kubectl against the private endpoint must be let in explicitly.
        return [aws.vpc.SecurityGroupIngressRule(
            f"{name}-api-private-{i}",
            security_group_id=cluster.vpc_config.cluster_security_group_id,
            cidr_ipv4=cidr, ip_protocol="tcp", from_port=443, to_port=443,
            description="Kubernetes API (private endpoint)", tags=tags,
            opts=pulumi.ResourceOptions(parent=self))
            for i, cidr in enumerate(args.endpoint_private_access_cidrs)]

    def _access_entries(self, name: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
                        tags: dict) -> list[aws.eks.AccessPolicyAssociation]:
        """Access entries: cluster admin for the admin roles, read-only for the preview roles."""
        child = pulumi.ResourceOptions(parent=self)
        admin_grants = []
        for i, arn in enumerate(args.admin_role_arns):
            entry = aws.eks.AccessEntry(f"{name}-admin-{i}", cluster_name=cluster.name,
                                        principal_arn=arn, type="STANDARD", tags=tags, opts=child)
            admin_grants.append(aws.eks.AccessPolicyAssociation(
                f"{name}-admin-{i}", cluster_name=cluster.name, principal_arn=entry.principal_arn,
                policy_arn=CLUSTER_ADMIN_POLICY,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=child))

        for i, arn in enumerate(args.preview_role_arns):
            entry = aws.eks.AccessEntry(f"{name}-preview-{i}", cluster_name=cluster.name,
                                        principal_arn=arn, type="STANDARD", tags=tags, opts=child)
            aws.eks.AccessPolicyAssociation(
                f"{name}-preview-{i}", cluster_name=cluster.name, principal_arn=entry.principal_arn,
                policy_arn=CLUSTER_VIEW_POLICY,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"), opts=child)
        return admin_grants

    def _oidc_provider(self, name: str, cluster: aws.eks.Cluster,
                       tags: dict) -> tuple[pulumi.Output[str], aws.iam.OpenIdConnectProvider]:
        """The cluster's issuer URL and the IAM OIDC provider IRSA roles trust."""
        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer,
                                             client_id_lists=["sts.amazonaws.com"], tags=tags,
                                             opts=pulumi.ResourceOptions(parent=self))
        return issuer, oidc

    def _node_role(self, name: str, tags: dict) -> tuple[aws.iam.Role, list[aws.iam.RolePolicyAttachment]]:
        """The nodes' IAM role and its managed-policy attachments."""
        child = pulumi.ResourceOptions(parent=self)
        node_role = aws.iam.Role(f"{name}-node", assume_role_policy=_assume("ec2.amazonaws.com"),
                                 tags=tags, opts=child)
        node_policies = [aws.iam.RolePolicyAttachment(f"{name}-node-{short}", role=node_role.name,
                                                      policy_arn=arn, opts=child)
                         for short, arn in NODE_POLICIES.items()]
        return node_role, node_policies

    def _network_addons(self, name: str, args: EksClusterArgs, addon_opts: dict) -> list[aws.eks.Addon]:
        """The vpc-cni (with its network policy agent) and kube-proxy add-ons."""
        child = pulumi.ResourceOptions(parent=self)
        return [
            aws.eks.Addon(f"{name}-vpc-cni", addon_name="vpc-cni",
                          addon_version=args.addon_versions.vpc_cni,
                          configuration_values=json.dumps(VPC_CNI_CONFIGURATION), opts=child, **addon_opts),
            aws.eks.Addon(f"{name}-kube-proxy", addon_name="kube-proxy",
                          addon_version=args.addon_versions.kube_proxy, opts=child, **addon_opts),
        ]

    def _workload_addons(self, name: str, args: EksClusterArgs, oidc: aws.iam.OpenIdConnectProvider,
                         issuer: pulumi.Output[str], node_groups: list[aws.eks.NodeGroup],
                         addon_opts: dict, tags: dict) -> list[aws.eks.Addon]:
        """The CoreDNS and EBS CSI add-ons (with its IRSA role), on the system nodes once they exist."""
        on_system = {"nodeSelector": self.system_node_selector, "tolerations": self.system_tolerations}
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=node_groups)
        ebs_role = IrsaRole(f"{name}-ebs-csi", IrsaRoleArgs(
            oidc_provider_arn=oidc.arn, oidc_issuer_url=issuer, namespace="kube-system",
            service_account="ebs-csi-controller-sa", managed_policy_arns=[EBS_CSI_POLICY], tags=tags),
            opts=pulumi.ResourceOptions(parent=self))
        return [
            aws.eks.Addon(f"{name}-coredns", addon_name="coredns",
                          addon_version=args.addon_versions.coredns,
                          configuration_values=json.dumps(on_system), opts=after_nodes, **addon_opts),
            aws.eks.Addon(f"{name}-ebs-csi", addon_name="aws-ebs-csi-driver",
                          addon_version=args.addon_versions.aws_ebs_csi_driver,
                          service_account_role_arn=ebs_role.role_arn,
                          configuration_values=json.dumps({"controller": on_system,
                                                           "node": {"tolerateAllTaints": True}}),
                          opts=after_nodes, **addon_opts),
        ]

    def _kubernetes_provider(self, name: str, depends_on: list) -> k8s.Provider:
        """The Kubernetes provider every in-cluster component receives."""
        # The provider is usable once the platform is: access granted, the private endpoint
        # reachable from the deployer's network, nodes and add-ons up.
        return k8s.Provider(f"{name}-k8s", kubeconfig=self.kubeconfig,
                            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on))

    def _app_namespace(self, name: str, args: EksClusterArgs) -> k8s.core.v1.Namespace:
        """The application namespace, under Pod Security Admission ``restricted``."""
        psa = "restricted"
        return k8s.core.v1.Namespace(
            f"{name}-app-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=args.app_namespace, labels={
                "pod-security.kubernetes.io/enforce": psa,
                "pod-security.kubernetes.io/enforce-version": f"v{args.kubernetes_version}",
                "pod-security.kubernetes.io/audit": psa,
                "pod-security.kubernetes.io/warn": psa,
                # New pods of load-balanced apps get the controller's readiness gate: a rollout
                # retires an old pod only once its replacement is healthy in the target group.
                READINESS_GATE_LABEL: "enabled",
            }),
            opts=pulumi.ResourceOptions(parent=self, provider=self.k8s_provider),
        )

    def _storage_class(self, name: str) -> k8s.storage.v1.StorageClass:
        """The encrypted gp3 StorageClass, marked the cluster's default."""
        # EKS creates no gp3 class (and marks no class default since 1.30): volume claims would stay
        # Pending. Encrypted, bound in the pod's zone, expandable.
        return k8s.storage.v1.StorageClass(
            f"{name}-gp3",
            metadata={"name": GP3_STORAGE_CLASS,
                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            provisioner="ebs.csi.aws.com",
            parameters={"type": "gp3", "encrypted": "true"},
            volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True,
            reclaim_policy="Delete",
            opts=pulumi.ResourceOptions(parent=self, provider=self.k8s_provider),
        )

    def _node_group(self, name: str, ng: str, spec: NodeGroupSpec, subnet_ids: pulumi.Input[Sequence[str]],
                    args: EksClusterArgs, cluster: aws.eks.Cluster, node_role: aws.iam.Role, tags: dict,
                    depends_on: list) -> aws.eks.NodeGroup:
        """One managed node group over its launch template, with its node templates on the ASG."""
        group_tags = {**tags, "node-group": ng}
        template = self._launch_template(name, ng, spec, args, group_tags)
        group = aws.eks.NodeGroup(
            f"{name}-{ng}",
            cluster_name=cluster.name,
            version=cluster.version,
            node_role_arn=node_role.arn,
            subnet_ids=subnet_ids,
            ami_type=spec.ami_type,
            capacity_type=spec.capacity_type,
            instance_types=list(spec.instance_types),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=spec.min_size, desired_size=spec.desired_size, max_size=spec.max_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=spec.max_unavailable),
            labels=dict(spec.labels) or None,
            taints=[aws.eks.NodeGroupTaintArgs(key=t.key, value=t.value or None,
                                               effect=_TAINT_EFFECTS[t.effect])
                    for t in spec.taints] or None,
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=template.id, version=template.latest_version.apply(str)),
            tags={**group_tags, **autoscaler_tags(args.cluster_name, spec)},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=depends_on,
                # The Cluster Autoscaler owns the desired size; `pulumi up` must not reset it.
                ignore_changes=["scalingConfig.desiredSize"]),
        )
        self._node_template_tags(name, ng, spec, group)
        return group

    def _launch_template(self, name: str, ng: str, spec: NodeGroupSpec, args: EksClusterArgs,
                         group_tags: dict) -> aws.ec2.LaunchTemplate:
        """A node group's launch template: IMDSv2 only, encrypted gp3 root volume."""
        return aws.ec2.LaunchTemplate(
            f"{name}-{ng}",
            description=f"{args.cluster_name} {ng} nodes: IMDSv2 only, encrypted gp3 root volume",
            update_default_version=True,
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=args.imds_hop_limit,
            ),
            block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                device_name="/dev/xvda",  # root device of the AL2023 EKS AMIs
                ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                    volume_size=spec.disk_size_gib, volume_type="gp3", encrypted="true",
                    delete_on_termination="true"),
            )],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type=kind, tags={**group_tags, "Name": f"{args.cluster_name}-{ng}"})
                for kind in ("instance", "volume")],
            tags=group_tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _node_template_tags(self, name: str, ng: str, spec: NodeGroupSpec, group: aws.eks.NodeGroup) -> None:
        """The node group's labels and taints as node-template tags on its Auto Scaling group."""
        # Node-group tags do not reach the Auto Scaling group, where the autoscaler reads the
        # node templates; EKS itself adds the two discovery tags there.
        asg_name = group.resources.apply(lambda rs: rs[0].autoscaling_groups[0].name)
        for key, value in sorted(node_template_tags(spec).items()):
            kind, _, label = key.removeprefix("k8s.io/cluster-autoscaler/node-template/").partition("/")
            aws.autoscaling.Tag(
                f"{name}-{ng}-{kind}-{_slug(label)}",
                autoscaling_group_name=asg_name,
                tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                opts=pulumi.ResourceOptions(parent=self),
            )
