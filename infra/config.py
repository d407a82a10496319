"""Typed stack configuration: the only place in the project that reads ``pulumi.Config``.

Each stack file (``stacks/Pulumi.<stack>.yaml``) holds one structured block per component
under the ``cofounder:`` namespace, in camelCase. ``load()`` turns those blocks into the
frozen dataclasses below and validates them before any resource is declared. Every problem
(wrong type, unknown or misspelt key, value out of range, min above max) becomes one
``ConfigError`` naming the stack file, the key, the value and what is allowed. ``ConfigError``
subclasses ``pulumi.RunError``, so the CLI prints the message alone, without a traceback.

Adding a setting: add a field (snake_case; the YAML key is its camelCase form) with a default,
a ``#:`` comment saying what it does, bounds or a pattern through ``bounded(...)`` and cross-field
rules in the section's ``checks()``; document it in the README's table; test a bad value's message.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pulumi

from capacity import connections
from capacity.drain import Drain
from components import Between, camel, constraints, problems
from components.app_load_balancer import LoadBalancerSettings
from components.edge_distribution import EdgeSettings
from components.load_balancer_controller import LoadBalancerControllerSettings
from components.web_acl import WebAclSettings

PROJECT = "cofounder"
ENVIRONMENTS = ("dev", "staging", "prod")


class ConfigError(pulumi.RunError):
    """A stack configuration value is missing or not allowed."""


def bounded(default: Any = dataclasses.MISSING, *, minimum: float | None = None,
            maximum: float | None = None, pattern: str | None = None) -> Any:
    """A dataclass field whose value the loader checks against bounds or a regex."""
    meta = {"minimum": minimum, "maximum": maximum, "pattern": pattern}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------
# Sections. Defaults are the production-safe choice; stacks override what differs.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """``cofounder:network`` -- the VPC every other component lives in."""

    cidr_block: str = "10.0.0.0/16"
    #: Availability zones to span; three for production resilience, all in ``aws:region``.
    availability_zones: list[str]
    #: One NAT gateway for the whole VPC (cheaper, one AZ's failure cuts egress) instead of one per AZ.
    single_nat_gateway: bool = False
    flow_log_retention_days: int = bounded(90, minimum=1, maximum=3653)
    #: Which traffic the VPC flow logs record.
    flow_log_traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"
    #: Route S3 traffic through a free gateway endpoint instead of the NAT gateways.
    enable_s3_gateway_endpoint: bool = True

    def checks(self):
        try:
            net = ipaddress.IPv4Network(self.cidr_block)
        except ValueError:
            yield "cidrBlock", self.cidr_block, "an IPv4 CIDR block such as 10.0.0.0/16"
            return
        if not 16 <= net.prefixlen <= 20:
            yield "cidrBlock", self.cidr_block, "a prefix length between /16 and /20"
        if not 2 <= len(self.availability_zones) <= 6:
            yield "availabilityZones", self.availability_zones, "between 2 and 6 zones (3 recommended)"
        if len(set(self.availability_zones)) != len(self.availability_zones):
            yield "availabilityZones", self.availability_zones, "distinct zone names"


#: The retentions CloudWatch Logs accepts (PutRetentionPolicy); any other value fails at deploy time.
CLOUDWATCH_LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                                 2192, 2557, 2922, 3288, 3653)


@dataclass(frozen=True, kw_only=True)
class PostgresConfig:
    """``cofounder:postgres`` -- the RDS for PostgreSQL instance behind PgBouncer."""

    #: RDS instance class; must be one ``capacity/connections.py`` knows the memory of.
    instance_class: str = "db.r7g.large"
    #: PostgreSQL 17: the major alone ("17") while autoMinorVersionUpgrade is true, since RDS moves the
    #: minor and a pinned one would make the next update a downgrade; a full "17.x" pin when it is false.
    engine_version: str = bounded("17", pattern=r"17(\.\d+)?")
    allocated_storage_gib: int = bounded(50, minimum=20, maximum=65536)
    #: Storage autoscaling ceiling; RDS grows gp3 storage up to this without downtime.
    max_allocated_storage_gib: int = bounded(500, minimum=20, maximum=65536)
    #: A synchronous standby in a second availability zone.
    multi_az: bool = True
    backup_retention_days: int = bounded(14, minimum=1, maximum=35)
    deletion_protection: bool = True
    #: Skip the snapshot RDS takes when the instance is deleted (only for throwaway stacks).
    skip_final_snapshot: bool = False
    #: Pulumi ``protect``: `pulumi destroy` and replacements fail until it is lifted.
    protect: bool = True
    #: Statements slower than this are logged; -1 disables slow-query logging.
    log_min_duration_statement_ms: int = bounded(500, minimum=-1, maximum=3600000)
    performance_insights_retention_days: int = bounded(7, minimum=7, maximum=731)
    #: Enhanced monitoring granularity; 0 turns it off.
    monitoring_interval_seconds: Literal[0, 1, 5, 10, 15, 30, 60] = 60
    auto_minor_version_upgrade: bool = True
    iam_database_authentication: bool = False
    #: Connections kept free of PgBouncer for administrators, migrations and rdsadmin.
    reserved_connections: int = bounded(10, minimum=5, maximum=1000)
    #: Days CloudWatch Logs keeps the exported postgresql and upgrade logs.
    log_retention_days: int = bounded(30, minimum=1, maximum=3653)

    def checks(self):
        if self.instance_class not in connections.INSTANCE_MEMORY_GIB:
            yield ("instanceClass", self.instance_class,
                   "an RDS instance class listed in capacity/connections.py (e.g. db.t4g.medium, db.r7g.large)")
        if self.auto_minor_version_upgrade and "." in self.engine_version:
            yield ("engineVersion", self.engine_version,
                   "the major version alone (17) while autoMinorVersionUpgrade is true: RDS upgrades the minor "
                   "itself, and a pinned minor would make the next update a downgrade")
        if not self.auto_minor_version_upgrade and "." not in self.engine_version:
            yield ("engineVersion", self.engine_version,
                   "a full version such as 17.6 while autoMinorVersionUpgrade is false")
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            yield ("maxAllocatedStorageGib", self.max_allocated_storage_gib,
                   f"at least allocatedStorageGib ({self.allocated_storage_gib})")
        if self.performance_insights_retention_days != 7 and self.performance_insights_retention_days % 31:
            yield ("performanceInsightsRetentionDays", self.performance_insights_retention_days,
                   "7 or a multiple of 31 (months) up to 731")
        if self.log_retention_days not in CLOUDWATCH_LOG_RETENTION_DAYS:
            yield ("logRetentionDays", self.log_retention_days,
                   "a retention CloudWatch Logs accepts: " + ", ".join(map(str, CLOUDWATCH_LOG_RETENTION_DAYS)))


@dataclass(frozen=True, kw_only=True)
class PgBouncerConfig:
    """``cofounder:pgbouncer`` -- the in-cluster connection pooler in front of RDS."""

    replicas: int = bounded(2, minimum=2, maximum=50)
    #: Server connections per replica for the app database (PgBouncer default_pool_size).
    default_pool_size: int = bounded(20, minimum=1, maximum=5000)
    #: Extra server connections per replica for bursts (reserve_pool_size).
    reserve_pool_size: int = bounded(5, minimum=0, maximum=1000)
    #: Client connections each replica accepts (max_client_conn).
    max_client_conn: int = bounded(1000, minimum=10, maximum=100000)
    #: Prepared statements tracked per server connection in transaction mode; must be > 0.
    max_prepared_statements: int = bounded(200, minimum=1, maximum=10000)


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    """``cofounder:redis`` -- the ElastiCache (Valkey) replication group in cluster mode."""

    node_type: str = bounded("cache.r7g.large", pattern=r"cache\.[a-z0-9]+\.[a-z0-9]+")
    #: Pinned Valkey version; the parameter group family follows the major (valkey8).
    engine_version: str = bounded("8.1", pattern=r"8\.\d+")
    #: Shards (num_node_groups).
    shards: int = bounded(2, minimum=1, maximum=500)
    #: Replicas per shard. At least 1: cluster mode requires automatic failover, which needs one.
    replicas_per_shard: int = bounded(1, minimum=1, maximum=5)
    #: Place primaries and replicas in different availability zones.
    multi_az: bool = True
    #: Days of automatic snapshots; 0 turns them off.
    snapshot_retention_days: int = bounded(7, minimum=0, maximum=35)
    protect: bool = True


@dataclass(frozen=True, kw_only=True)
class QueuesConfig:
    """``cofounder:queues`` -- the SQS agent-execution queue and its dead-letter queue."""

    #: The longest an agent run may take; the visibility timeout is this plus the margin.
    max_agent_run_seconds: int = bounded(900, minimum=1, maximum=43200)
    visibility_margin_seconds: int = bounded(60, minimum=0, maximum=3600)
    #: Deliveries before a message moves to the DLQ; the seed's BullMQ `attempts: 2`.
    max_receive_count: int = bounded(2, minimum=1, maximum=1000)
    message_retention_seconds: int = bounded(345600, minimum=60, maximum=1209600)
    dlq_message_retention_seconds: int = bounded(1209600, minimum=60, maximum=1209600)
    protect: bool = True

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.max_agent_run_seconds + self.visibility_margin_seconds

    def checks(self):
        if self.visibility_timeout_seconds > 43200:
            yield ("visibilityMarginSeconds", self.visibility_margin_seconds,
                   f"maxAgentRunSeconds + visibilityMarginSeconds at most 43200 (SQS's 12 h limit), "
                   f"got {self.visibility_timeout_seconds}")
        if self.dlq_message_retention_seconds < self.message_retention_seconds:
            yield ("dlqMessageRetentionSeconds", self.dlq_message_retention_seconds,
                   f"at least messageRetentionSeconds ({self.message_retention_seconds}): a message's "
                   f"age carries over into the DLQ")
# --- app workloads and their autoscaling (components/app_service.py, keda.py, prometheus_adapter.py)

#: Upper bound of any app's maxReplicas: runaway scaling is a cost and a database-connection risk.
MAX_REPLICAS_CAP = 100
_IMAGE_DIGEST = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
_IMAGE_TAG = re.compile(r"^[^@\s:]+(:[0-9]+)?(/[^@\s:]+)*:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})$")
_K8S_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def image_problem(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is (by tag or by digest)."""
    if _IMAGE_DIGEST.match(image):
        return None
    match = _IMAGE_TAG.match(image)
    if not match:
        return "an image pinned by tag or digest, such as registry/app:1.4.2 or registry/app@sha256:<64 hex>"
    if match.group("tag") == "latest":
        return "a pinned tag or digest, not 'latest'"
    return None


@dataclass(frozen=True, kw_only=True)
class ScalingPolicyConfig:
    """One HPA scaling policy: at most ``value`` pods (or percent) per ``periodSeconds``."""

    type: Literal["Pods", "Percent"]
    value: int = bounded(minimum=1, maximum=1000)
    period_seconds: int = bounded(15, minimum=1, maximum=1800)


@dataclass(frozen=True, kw_only=True)
class ScalingRulesConfig:
    """``behavior.scaleUp`` or ``behavior.scaleDown`` of an HPA, declared explicitly."""

    stabilization_window_seconds: int = bounded(minimum=0, maximum=3600)
    #: Which policy wins when several allow different changes: Max (fastest), Min, or Disabled.
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    policies: list[ScalingPolicyConfig]

    def checks(self):
        if self.select_policy != "Disabled" and not 1 <= len(self.policies) <= 10:
            yield "policies", [], "between 1 and 10 policies"


@dataclass(frozen=True, kw_only=True)
class ProbesConfig:
    """HTTP probe endpoints of an app container."""

    readiness_path: str = bounded("/healthz/ready", pattern=r"/\S*")
    liveness_path: str = bounded("/healthz/live", pattern=r"/\S*")
    startup_path: str = bounded("/healthz/live", pattern=r"/\S*")
    #: Port the probes call; null means the app's ``port``.
    port: int | None = bounded(None, minimum=1, maximum=65535)


def _fast_scale_up() -> ScalingRulesConfig:
    return ScalingRulesConfig(stabilization_window_seconds=0, select_policy="Max", policies=[
        ScalingPolicyConfig(type="Percent", value=100, period_seconds=15),
        ScalingPolicyConfig(type="Pods", value=4, period_seconds=15)])


def _gentle_scale_down() -> ScalingRulesConfig:
    return ScalingRulesConfig(stabilization_window_seconds=300, select_policy="Min", policies=[
        ScalingPolicyConfig(type="Percent", value=10, period_seconds=60)])


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    """One entry of ``cofounder:apps``: an app Deployment and its autoscaling."""

    #: Container image pinned by tag or digest (never ``latest``).
    image: str
    port: int = bounded(8080, minimum=1, maximum=65535)
    probes: ProbesConfig = field(default_factory=ProbesConfig)
    cpu_request: str = bounded("250m", pattern=r"[0-9]+(\.[0-9]+)?m?")
    cpu_limit: str = bounded("1", pattern=r"[0-9]+(\.[0-9]+)?m?")
    memory_request: str = bounded("512Mi", pattern=r"[0-9]+(Mi|Gi)")
    memory_limit: str = bounded("512Mi", pattern=r"[0-9]+(Mi|Gi)")
    min_replicas: int = bounded(2, minimum=1, maximum=MAX_REPLICAS_CAP)
    max_replicas: int = bounded(10, minimum=1, maximum=MAX_REPLICAS_CAP)
    cpu_target_percent: int = bounded(70, minimum=10, maximum=100)
    memory_target_percent: int = bounded(80, minimum=10, maximum=100)
    #: Target of the per-pod ``cofounder_active_agents`` metric (average per pod); null: not scaled on it.
    active_agents_target: float | None = bounded(None, minimum=0.1, maximum=1000)
    scale_up: ScalingRulesConfig = field(default_factory=_fast_scale_up)
    scale_down: ScalingRulesConfig = field(default_factory=_gentle_scale_down)
    #: Extra pods during a rollout (maxUnavailable is always 0).
    max_surge: str = bounded("25%", pattern=r"[0-9]+%?")
    #: Per-pod database pool size; the data tier's connection budget reads it with ``maxReplicas``.
    db_pool_size: int = bounded(20, minimum=0, maximum=500)
    #: False for pods running long agent work: the cluster autoscaler then never evicts them.
    safe_to_evict: bool = True
    #: The pod calls AWS APIs through IRSA (a role for its service account, API token mounted).
    needs_aws: bool = False
    #: Secrets and ConfigMaps whose keys become environment variables (envFrom).
    env_from_secrets: list[str] = field(default_factory=list)
    env_from_config_maps: list[str] = field(default_factory=list)
    #: SQS queue whose depth also scales this app (through KEDA); null: no queue scaling.
    queue_name: str | None = bounded(None, pattern=r"[A-Za-z0-9_-]{1,80}")
    #: Messages per pod that the queue trigger aims for.
    queue_messages_per_pod: int = bounded(5, minimum=1, maximum=10000)
    #: Pause before SIGTERM; behind the ALB at least 15 s (capacity/drain.py).
    pre_stop_sleep_seconds: int = bounded(15, minimum=0, maximum=120)
    #: preStop plus the longest request the app serves; behind the ALB it also sets the
    #: target group's deregistration delay (this minus preStopSleepSeconds).
    termination_grace_period_seconds: int = bounded(75, minimum=1, maximum=7200)

    def checks(self):
        problem = image_problem(self.image)
        if problem:
            yield "image", self.image, problem
        if self.min_replicas > self.max_replicas:
            yield "minReplicas", self.min_replicas, f"at most maxReplicas ({self.max_replicas})"
        if self.termination_grace_period_seconds <= self.pre_stop_sleep_seconds:
            yield ("terminationGracePeriodSeconds", self.termination_grace_period_seconds,
                   f"more than preStopSleepSeconds ({self.pre_stop_sleep_seconds}) so connections drain")
        for name in self.env_from_secrets + self.env_from_config_maps:
            if not re.fullmatch(_K8S_NAME, name):
                yield "envFrom", name, "Kubernetes object names (lowercase letters, digits, '-')"


@dataclass(frozen=True, kw_only=True)
class ScalingConfig:
    """``cofounder:scaling`` -- stack-wide scaling targets the time-to-scale report checks."""

    #: Peak load to absorb, as a multiple of today's peak.
    peak_multiplier: float = bounded(5.0, minimum=1, maximum=50)
    #: The HPA must have decided the full peak replica count within this many seconds (goal apps).
    time_to_scale_goal_seconds: int = bounded(45, minimum=15, maximum=900)
    #: The first scale-up decision must come within this many seconds of the load step (every app).
    scale_up_within_seconds: int = bounded(60, minimum=15, maximum=900)
    #: p99 latency target per service (seed: under 200 ms): the alert threshold and the load
    #: test's pass mark.
    p99_latency_ms: int = bounded(200, minimum=10, maximum=10000)
    #: Seconds until new load shows in the metrics the HPA reads (scrape interval, metrics-server resolution).
    metric_lag_seconds: int = bounded(15, minimum=0, maximum=300)
    #: Seconds from a scale decision to a Ready pod (scheduling on headroom, image pull, probes).
    pod_startup_seconds: int = bounded(30, minimum=0, maximum=900)
    #: Replicas each app runs at today's peak; missing apps default to their minReplicas.
    baseline_replicas: dict[str, int] = field(default_factory=dict)
    #: Apps held to ``timeToScaleGoalSeconds``.
    goal_apps: list[str] = field(default_factory=lambda: ["backend", "worker"])
    #: The time-to-scale report fails when the pre-warmed headroom cannot hold the first scale-up
    #: step of every app at once (``cofounder:cluster.headroom``); a small dev stack may opt out.
    require_headroom_coverage: bool = True
    #: Today's peak concurrent users and requests per second, for the load test (loadtest/);
    #: None until measured (the load test then needs them on its command line).
    peak_users: int | None = bounded(None, minimum=1)
    peak_rps: float | None = bounded(None, minimum=0.1)

    def as_dict(self) -> dict:
        """The targets in the stack file's camelCase, as the ``scalingTargets`` stack output."""
        return {camel(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    def checks(self):
        for app, replicas in self.baseline_replicas.items():
            if replicas < 1:
                yield f"baselineReplicas.{app}", replicas, "at least 1"


#: kube-prometheus-stack's Prometheus, which the observability component installs in ``monitoring``.
_IN_CLUSTER_PROMETHEUS = "http://kube-prometheus-stack-prometheus.monitoring.svc"


@dataclass(frozen=True, kw_only=True)
class AutoscalersConfig:
    """``cofounder:autoscalers`` -- the metric adapters behind the HPAs (prometheus-adapter, KEDA)."""

    #: Prometheus that prometheus-adapter and KEDA query (kube-prometheus-stack in ``monitoring``).
    prometheus_url: str = bounded(_IN_CLUSTER_PROMETHEUS, pattern=r"https?://[^\s:/]+")
    prometheus_port: int = bounded(9090, minimum=1, maximum=65535)
    #: Replicas of prometheus-adapter; the custom-metrics API is on every HPA's path.
    adapter_replicas: int = bounded(2, minimum=1, maximum=5)
    #: Replicas of KEDA's operator and metrics server.
    keda_replicas: int = bounded(2, minimum=1, maximum=5)
_DURATION = re.compile(r"^[1-9][0-9]*(s|m|h)$")
_ADDON_VERSION = re.compile(r"^v[0-9]+\.[0-9]+\.[0-9]+-eksbuild\.[0-9]+$")
_K8S_MINOR = re.compile(r"^1\.[0-9]{2}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
#: Every EKS control-plane log type; all are enabled unless a stack narrows the list.
EKS_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


@dataclass(frozen=True, kw_only=True)
class NodeTaintConfig:
    """One Kubernetes taint on every node of a node group."""

    key: str
    value: str = ""
    effect: Literal["NoSchedule", "NoExecute", "PreferNoSchedule"] = "NoSchedule"


@dataclass(frozen=True, kw_only=True)
class NodeGroupConfig:
    """``cofounder:cluster.nodeGroups.<name>`` -- one EKS managed node group."""

    #: EC2 instance types, all of the same size class (the Cluster Autoscaler assumes one shape per group).
    instance_types: list[str]
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    min_size: int = bounded(1, minimum=0, maximum=1000)
    desired_size: int = bounded(1, minimum=0, maximum=1000)
    max_size: int = bounded(3, minimum=1, maximum=1000)
    #: Size of the encrypted gp3 root volume.
    disk_size_gib: int = bounded(50, minimum=20, maximum=16384)
    #: Kubernetes labels on every node (also published to the Cluster Autoscaler for scale-from-zero).
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[NodeTaintConfig] = field(default_factory=list)
    #: Nodes replaced at once during a node-group update (AMI or launch-template change).
    max_unavailable: int = bounded(1, minimum=1, maximum=100)
    #: EKS-optimized Amazon Linux 2023 AMI family; must match the instance types' architecture.
    ami_type: Literal["AL2023_x86_64_STANDARD", "AL2023_ARM_64_STANDARD"] = "AL2023_x86_64_STANDARD"

    def checks(self):
        if not self.instance_types:
            yield "instanceTypes", self.instance_types, "at least one EC2 instance type such as m6i.large"
        for i, itype in enumerate(self.instance_types):
            if not _INSTANCE_TYPE.match(itype):
                yield f"instanceTypes[{i}]", itype, "an EC2 instance type such as m6i.large"
        if self.capacity_type == "SPOT" and len(self.instance_types) < 2:
            yield "instanceTypes", self.instance_types, "at least two instance types for SPOT capacity (diversified pools)"
        if self.min_size >= self.max_size:
            yield "minSize", self.min_size, f"below maxSize ({self.max_size})"
        elif not self.min_size <= self.desired_size <= self.max_size:
            yield "desiredSize", self.desired_size, f"between minSize ({self.min_size}) and maxSize ({self.max_size})"
        for key in list(self.labels) + [t.key for t in self.taints]:
            if not _LABEL_KEY.match(key):
                yield "labels" if key in self.labels else "taints", key, "a Kubernetes label/taint key such as node-pool"


@dataclass(frozen=True, kw_only=True)
class AddonVersionsConfig:
    """``cofounder:cluster.addonVersions`` -- pinned EKS add-on versions (``aws eks describe-addon-versions``)."""

    vpc_cni: str = "v1.20.4-eksbuild.2"
    coredns: str = "v1.12.3-eksbuild.1"
    #: Must be built for the cluster's Kubernetes minor (v1.34.x for 1.34).
    kube_proxy: str = "v1.34.0-eksbuild.2"
    aws_ebs_csi_driver: str = "v1.54.0-eksbuild.1"

    def checks(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _ADDON_VERSION.match(value):
                yield camel(f.name), value, "an EKS add-on version such as v1.20.4-eksbuild.2"


@dataclass(frozen=True, kw_only=True)
class AutoscalerConfig:
    """``cofounder:cluster.autoscaler`` -- Cluster Autoscaler behaviour."""

    #: Which node group to grow: least-waste (least idle CPU/memory after the scale-up) or priority.
    expander: Literal["least-waste", "priority", "most-pods", "random"] = "least-waste"
    #: How long a node must be unneeded before it is removed.
    scale_down_unneeded_time: str = "10m"
    #: Pause on scale-down after a scale-up (keeps fresh nodes through a burst).
    scale_down_delay_after_add: str = "10m"
    #: How often the autoscaler re-evaluates pending pods; bounds the reaction time to a burst.
    scan_interval: str = "10s"
    #: Autoscaler pods (leader-elected; a second one only shortens failover).
    replicas: int = bounded(1, minimum=1, maximum=3)

    def checks(self):
        for name in ("scale_down_unneeded_time", "scale_down_delay_after_add", "scan_interval"):
            value = getattr(self, name)
            if not _DURATION.match(value):
                yield camel(name), value, "a duration such as 10s, 5m or 1h"


@dataclass(frozen=True, kw_only=True)
class HeadroomConfig:
    """``cofounder:cluster.headroom`` -- pre-warmed capacity held by low-priority placeholder pods."""

    #: Placeholder pods; each reserves cpu/memory that real pods take over at once by preemption.
    replicas: int = bounded(1, minimum=0, maximum=200)
    cpu_millicores: int = bounded(500, minimum=10, maximum=64000)
    memory_mib: int = bounded(512, minimum=16, maximum=262144)


#: The private IPv4 ranges (RFC 1918) a VPC, a peered network or a VPN uses.
_RFC1918 = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")


@dataclass(frozen=True, kw_only=True)
class ClusterConfig:
    """``cofounder:cluster`` -- the EKS platform: control plane, node groups, add-ons, autoscaling."""

    #: Kubernetes minor version, pinned per stack ("1.34"); upgrades are one minor at a time.
    kubernetes_version: str = "1.34"
    #: Serve the API on a public endpoint as well as the private one (only from endpointPublicAccessCidrs).
    endpoint_public_access: bool = False
    #: CIDRs allowed to reach the public endpoint; never 0.0.0.0/0.
    endpoint_public_access_cidrs: list[str] = field(default_factory=list)
    #: Private networks admitted to the private endpoint on 443 (the machine or CI runner that runs
    #: `pulumi up` from inside the VPC, a VPN); the nodes are always admitted.
    endpoint_private_access_cidrs: list[str] = field(default_factory=list)
    #: IAM roles granted cluster-admin through EKS access entries; the role running `pulumi up` must be one.
    admin_role_arns: list[str]
    #: IAM roles granted view access without Secrets (AmazonEKSViewPolicy): CI's preview roles.
    preview_role_arns: list[str] = field(default_factory=list)
    enabled_log_types: list[str] = field(default_factory=lambda: list(EKS_LOG_TYPES))
    #: Retention of the control-plane log group /aws/eks/<cluster>/cluster.
    log_retention_days: int = bounded(90, minimum=1, maximum=3653)
    addon_versions: AddonVersionsConfig = field(default_factory=AddonVersionsConfig)
    #: Managed node groups by name; "system" (cluster add-ons) and "apps" (workloads) are required.
    node_groups: dict[str, NodeGroupConfig]
    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    #: metrics-server pods (2+ gets a PodDisruptionBudget; HPAs stall while it is down).
    metrics_server_replicas: int = bounded(2, minimum=1, maximum=5)
    headroom: HeadroomConfig = field(default_factory=HeadroomConfig)
    #: Namespace of the application workloads (Pod Security Admission "restricted").
    app_namespace: str = "cofounder"

    def checks(self):
        if not _K8S_MINOR.match(self.kubernetes_version):
            yield "kubernetesVersion", self.kubernetes_version, "a Kubernetes minor version such as 1.34"
        if not _DNS_LABEL.match(self.app_namespace):
            yield "appNamespace", self.app_namespace, "a namespace name (lowercase letters, digits, dashes)"
        for i, cidr in enumerate(self.endpoint_public_access_cidrs):
            try:
                net = ipaddress.IPv4Network(cidr)
            except ValueError:
                yield f"endpointPublicAccessCidrs[{i}]", cidr, "an IPv4 CIDR block such as 203.0.113.0/24"
                continue
            if net.prefixlen == 0:
                yield (f"endpointPublicAccessCidrs[{i}]", cidr,
                       "a restricted CIDR block; the API endpoint must never be open to 0.0.0.0/0")
        for i, cidr in enumerate(self.endpoint_private_access_cidrs):
            try:
                net = ipaddress.IPv4Network(cidr)
                private = any(net.subnet_of(ipaddress.IPv4Network(block)) for block in _RFC1918)
            except ValueError:
                private = False
            if not private:
                yield (f"endpointPrivateAccessCidrs[{i}]", cidr,
                       "a private IPv4 CIDR block (RFC 1918) such as 10.30.0.0/16")
        if self.endpoint_public_access and not self.endpoint_public_access_cidrs:
            yield ("endpointPublicAccessCidrs", [],
                   "at least one CIDR while endpointPublicAccess is true (EKS would default to 0.0.0.0/0)")
        if not self.admin_role_arns:
            yield "adminRoleArns", [], "at least one IAM role ARN (access entries are the only way in)"
        for key, arns in (("adminRoleArns", self.admin_role_arns), ("previewRoleArns", self.preview_role_arns)):
            for i, arn in enumerate(arns):
                if not _ROLE_ARN.match(arn):
                    yield f"{key}[{i}]", arn, "an IAM role ARN such as arn:aws:iam::123456789012:role/admin"
        both = sorted(set(self.admin_role_arns) & set(self.preview_role_arns))
        if both:
            yield "previewRoleArns", both, "roles that are not also in adminRoleArns (one access entry per role)"
        for i, log_type in enumerate(self.enabled_log_types):
            if log_type not in EKS_LOG_TYPES:
                yield f"enabledLogTypes[{i}]", log_type, "one of " + ", ".join(EKS_LOG_TYPES)
        if not self.addon_versions.kube_proxy.startswith(f"v{self.kubernetes_version}."):
            yield ("addonVersions.kubeProxy", self.addon_versions.kube_proxy,
                   f"a kube-proxy build for Kubernetes {self.kubernetes_version} (v{self.kubernetes_version}.x-eksbuild.N)")
        missing = [n for n in ("system", "apps") if n not in self.node_groups]
        if missing:
            yield ("nodeGroups", sorted(self.node_groups),
                   "node groups named system and apps (missing: " + ", ".join(missing) + ")")
        for name in self.node_groups:
            if not re.fullmatch(r"[a-z][a-z0-9-]{0,19}", name):
                yield f"nodeGroups.{name}", name, "a node-group name of lowercase letters, digits and dashes"
@dataclass(frozen=True, kw_only=True)
class AppScrapeConfig:
    """One application's ``/metrics`` endpoint (the scrape contract in the README)."""

    #: The app's ``app.kubernetes.io/name`` label (frontend, backend, worker).
    name: str = bounded(pattern=r"[a-z][a-z0-9-]{0,40}")
    #: ServiceMonitor (scrape through the app's Service) or PodMonitor (scrape pods directly).
    kind: Literal["ServiceMonitor", "PodMonitor"] = "ServiceMonitor"
    #: Named container/Service port that serves the metrics.
    port: str = bounded("http", pattern=r"[a-z][a-z0-9-]{0,14}")
    path: str = bounded("/metrics", pattern=r"/[A-Za-z0-9/_.-]*")


@dataclass(frozen=True, kw_only=True)
class AlertThresholdsConfig:
    """``cofounder:observability.alerts`` -- when the seed's targets count as missed."""

    #: How long a service's p99 may exceed ``cofounder:scaling.p99LatencyMs`` before it alerts.
    latency_for_minutes: int = bounded(5, minimum=1, maximum=60)
    #: How long an HPA may sit at maxReplicas before someone must raise the ceiling.
    hpa_at_max_minutes: int = bounded(10, minimum=1, maximum=120)
    #: App pods pending longer than this mean scale-up missed the seed's 60 s target.
    pod_pending_seconds: int = bounded(60, minimum=15, maximum=3600)
    #: Alert when more PgBouncer clients than this wait for a server connection...
    pgbouncer_waiting_clients: int = bounded(0, minimum=0, maximum=10000)
    #: ...for this long.
    pgbouncer_waiting_minutes: int = bounded(2, minimum=1, maximum=60)
    sqs_oldest_message_age_seconds: int = bounded(300, minimum=60, maximum=1209600)
    rds_cpu_percent: int = bounded(80, minimum=10, maximum=100)
    rds_freeable_memory_mib: int = bounded(256, minimum=16, maximum=1048576)
    rds_free_storage_gib: int = bounded(10, minimum=1, maximum=65536)
    #: Share of the instance's max_connections in use that raises the alarm.
    rds_connections_percent: int = bounded(80, minimum=10, maximum=100)
    redis_engine_cpu_percent: int = bounded(80, minimum=10, maximum=100)
    redis_memory_percent: int = bounded(80, minimum=10, maximum=100)
    #: Evicted keys per 5 minutes above which the cache is too small.
    redis_evictions: int = bounded(0, minimum=0, maximum=1000000)


def _default_apps() -> list[AppScrapeConfig]:
    return [AppScrapeConfig(name="frontend"), AppScrapeConfig(name="backend"),
            AppScrapeConfig(name="worker")]


@dataclass(frozen=True, kw_only=True)
class ObservabilityConfig:
    """``cofounder:observability`` -- Prometheus, Grafana, alerts and CloudWatch alarms."""

    #: The in-cluster monitoring stack (kube-prometheus-stack, monitors, alert rules, dashboards).
    enabled: bool = True
    #: CloudWatch alarms on RDS, ElastiCache and SQS with their SNS topic; independent of ``enabled``.
    cloudwatch_alarms: bool = True
    #: kube-prometheus-stack chart version (pins every image it ships).
    chart_version: str = bounded("79.7.1", pattern=r"\d+\.\d+\.\d+")
    retention_days: int = bounded(15, minimum=1, maximum=365)
    #: Prometheus deletes old blocks beyond this size; keep it below ``storageGib``.
    retention_size_gib: int = bounded(45, minimum=1, maximum=16384)
    #: Size of Prometheus' persistent volume.
    storage_gib: int = bounded(50, minimum=10, maximum=16384)
    storage_class: str = bounded("gp3", pattern=r"[a-z0-9][a-z0-9.-]{0,62}")
    scrape_interval_seconds: int = bounded(30, minimum=5, maximum=300)
    grafana_enabled: bool = True
    #: Node labels the monitoring pods must run on (e.g. the system node group); empty = anywhere.
    node_selector: dict[str, str] = field(default_factory=dict)
    #: Email address subscribed to the alarm SNS topic (confirmation required); none = no subscription.
    alarm_email: Optional[str] = bounded(None, pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+")
    alerts: AlertThresholdsConfig = field(default_factory=AlertThresholdsConfig)
    #: What Prometheus scrapes from the app namespace.
    apps: list[AppScrapeConfig] = field(default_factory=_default_apps)

    def checks(self):
        if self.retention_size_gib > self.storage_gib * 0.9:
            yield ("retentionSizeGib", self.retention_size_gib,
                   f"at most 90% of storageGib ({int(self.storage_gib * 0.9)}) so Prometheus prunes before the disk fills")
        names = [a.name for a in self.apps]
        if len(set(names)) != len(names):
            yield "apps", names, "distinct app names"


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. Built by ``load()``."""

    stack: str
    stack_file: str
    environment: Literal["dev", "staging", "prod"]
    region: str
    network: NetworkConfig
    postgres: PostgresConfig
    pgbouncer: PgBouncerConfig
    redis: RedisConfig
    queues: QueuesConfig
    apps: dict[str, AppConfig]
    scaling: ScalingConfig
    autoscalers: AutoscalersConfig
    edge: EdgeSettings
    load_balancer: LoadBalancerSettings
    load_balancer_controller: LoadBalancerControllerSettings
    waf: WebAclSettings
    cluster: ClusterConfig
    observability: ObservabilityConfig

    @property
    def name_prefix(self) -> str:
        """Prefix of physical names, unique per stack: ``cofounder-<stack>``."""
        return f"{PROJECT}-{self.stack}"

    @property
    def cluster_name(self) -> str:
        return f"{self.name_prefix}-eks"

    @property
    def agent_queue_name(self) -> str:
        """The SQS agent-execution queue (the data tier's ``Queue``); its DLQ adds ``-dlq``."""
        return f"{self.name_prefix}-agent-execution"


#: The structured ``cofounder:<key>`` blocks and the dataclass each is read into.
SECTIONS: dict[str, type] = {
    "network": NetworkConfig,
    "postgres": PostgresConfig,
    "pgbouncer": PgBouncerConfig,
    "redis": RedisConfig,
    "queues": QueuesConfig,
    "apps": dict[str, AppConfig],
    "scaling": ScalingConfig,
    "autoscalers": AutoscalersConfig,
    "edge": EdgeSettings,
    "loadBalancer": LoadBalancerSettings,
    "loadBalancerController": LoadBalancerControllerSettings,
    "waf": WebAclSettings,
    "cluster": ClusterConfig,
    "observability": ObservabilityConfig,
}
#: Scalar ``cofounder:<key>`` values.
SCALARS: dict[str, Any] = {
    "environment": Literal["dev", "staging", "prod"],
}

_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


# --------------------------------------------------------------------------------------------
# The loader.
# --------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, stack_file: str):
        self.stack_file = stack_file

    def fail(self, key: str, value: Any, allowed: str) -> typing.NoReturn:
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ConfigError(f"{self.stack_file}: {key} = {shown} is not allowed: expected {allowed}")

    def missing(self, key: str, allowed: str) -> typing.NoReturn:
        raise ConfigError(f"{self.stack_file}: {key} is missing: expected {allowed}")

    def unknown(self, key: str, name: str, known: list[str]) -> typing.NoReturn:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{self.stack_file}: {key} is not a known setting: {hint}"
                          f"allowed keys are {', '.join(sorted(known))}")

    def value(self, key: str, raw: Any, hint: Any, meta: dict | None = None) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if raw is None:
                return None
            return self.value(key, raw, inner[0], meta)
        if origin is Literal:
            if raw not in args:
                self.fail(key, raw, "one of " + ", ".join(map(str, args)))
            return raw
        if dataclasses.is_dataclass(hint):
            return self.section(key, raw, hint)
        if origin is list:
            if not isinstance(raw, list):
                self.fail(key, raw, "a list")
            return [self.value(f"{key}[{i}]", item, args[0]) for i, item in enumerate(raw)]
        if origin is dict:
            if not isinstance(raw, dict):
                self.fail(key, raw, "a mapping")
            return {str(k): self.value(f"{key}.{k}", v, args[1]) for k, v in raw.items()}
        if hint is bool:
            if not isinstance(raw, bool):
                self.fail(key, raw, "true or false")
            return raw
        if hint is int:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or int(raw) != raw:
                self.fail(key, raw, "a whole number" + self._range(meta))
            raw = int(raw)
        elif hint is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.fail(key, raw, "a number" + self._range(meta))
            raw = float(raw)
        elif hint is str:
            if not isinstance(raw, str):
                self.fail(key, raw, "a string")
        if meta:
            lo, hi, pattern = meta.get("minimum"), meta.get("maximum"), meta.get("pattern")
            if (lo is not None and raw < lo) or (hi is not None and raw > hi):
                self.fail(key, raw, "a value" + self._range(meta))
            if pattern is not None and not re.fullmatch(pattern, raw):
                self.fail(key, raw, f"a value matching {pattern}")
        return raw

    @staticmethod
    def _range(meta: dict | None) -> str:
        if not meta:
            return ""
        lo, hi = (_num(meta.get("minimum")), _num(meta.get("maximum")))
        if lo is not None and hi is not None:
            return f" between {lo} and {hi}"
        if lo is not None:
            return f" of at least {lo}"
        if hi is not None:
            return f" of at most {hi}"
        return ""

    def section(self, key: str, raw: Any, cls: type) -> Any:
        if not isinstance(raw, dict):
            self.fail(key, raw, f"a mapping of settings ({cls.__name__})")
        hints = typing.get_type_hints(cls)
        annotated = typing.get_type_hints(cls, include_extras=True)
        fields = {camel(f.name): f for f in dataclasses.fields(cls) if f.init}
        for name in raw:
            if name not in fields:
                self.unknown(f"{key}.{name}", name, list(fields))
        values = {}
        for spelled, f in fields.items():
            sub = f"{key}.{spelled}"
            if spelled in raw:
                values[f.name] = self.value(sub, raw[spelled], hints[f.name],
                                            dict(f.metadata) or _range_of(annotated[f.name]))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.missing(sub, _describe(hints[f.name]))
        obj = cls(**values)
        for problem in problems(obj, recursive=False):
            self.fail(f"{key}.{problem.key(camel)}", problem.value, problem.allowed)
        return obj


def _range_of(hint: Any) -> dict:
    """The bounds of an ``Annotated[..., Between(...)]`` hint, for the type-error message."""
    found = [c for c in constraints(hint)[1] if isinstance(c, Between)]
    return {"minimum": found[0].minimum, "maximum": found[0].maximum} if found else {}


def _num(value: float | None) -> str | None:
    """A bound as a reader writes it: 31536000, not 3.1536e+07; 0.5 stays 0.5."""
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if dataclasses.is_dataclass(hint):
        return f"a mapping of settings ({hint.__name__})"
    return getattr(hint, "__name__", str(hint)).replace("list", "a list")


def _config_keys() -> set[str]:
    """Every config key the engine handed the program (``<namespace>:<key>``)."""
    keys = set(pulumi.runtime.config.CONFIG.get())
    keys.update(pulumi.runtime.config.get_config_env())
    return keys


def load() -> StackConfig:
    """Read and validate the current stack's configuration, or raise ``ConfigError``."""
    stack = pulumi.get_stack()
    reader = _Reader(f"stacks/Pulumi.{stack}.yaml")
    cfg = pulumi.Config(PROJECT)

    known = list(SECTIONS) + list(SCALARS)
    for full in sorted(_config_keys()):
        namespace, _, name = full.partition(":")
        if namespace == PROJECT and name not in known:
            reader.unknown(full, name, known)

    region = pulumi.Config("aws").get("region")
    if region is None:
        reader.missing("aws:region", "an AWS region such as us-east-1")
    if not _REGION.match(region):
        reader.fail("aws:region", region, "an AWS region name such as us-east-1")

    values: dict[str, Any] = {}
    for name, hint in SCALARS.items():
        raw = cfg.get(name)
        if raw is None:
            reader.missing(f"{PROJECT}:{name}", _describe(hint))
        values[name] = reader.value(f"{PROJECT}:{name}", raw, hint)
    for name, cls in SECTIONS.items():
        try:
            raw = cfg.get_object(name)
        except Exception:  # the engine hands objects as JSON; a bad one is a user error
            reader.fail(f"{PROJECT}:{name}", cfg.get(name), "a YAML mapping")
        if raw is None:
            raw = {}
        values[_snake(name)] = reader.value(f"{PROJECT}:{name}", raw, cls)

    for i, zone in enumerate(values["network"].availability_zones):
        if not zone.startswith(region) or len(zone) != len(region) + 1:
            reader.fail(f"{PROJECT}:network.availabilityZones[{i}]", zone,
                        f"a zone of aws:region {region}, such as {region}a")

    for app in values["apps"]:
        if not re.fullmatch(_K8S_NAME, app) or len(app) > 40:
            reader.fail(f"{PROJECT}:apps.{app}", app, "an app name of lowercase letters, digits and '-' (at most 40)")
    scaling = values["scaling"]
    for key, names in (("baselineReplicas", list(scaling.baseline_replicas)), ("goalApps", scaling.goal_apps)):
        for app in names:
            if values["apps"] and app not in values["apps"]:
                reader.fail(f"{PROJECT}:scaling.{key}", app,
                            "names of apps in cofounder:apps (" + ", ".join(sorted(values["apps"])) + ")")

    result = StackConfig(stack=stack, stack_file=reader.stack_file, region=region, **values)
    for name, app in result.apps.items():
        if app.queue_name is not None and app.queue_name != result.agent_queue_name:
            reader.fail(f"{PROJECT}:apps.{name}.queueName", app.queue_name,
                        f"the data tier's agent queue {result.agent_queue_name} (or null)")
    obs, auto = result.observability, result.autoscalers
    if not obs.enabled and auto.prometheus_url == _IN_CLUSTER_PROMETHEUS:
        reader.fail(f"{PROJECT}:observability.enabled", False,
                    "true while cofounder:autoscalers.prometheusUrl is the in-cluster Prometheus "
                    f"({_IN_CLUSTER_PROMETHEUS}) that prometheus-adapter and KEDA query; "
                    "or point prometheusUrl at your own Prometheus")
    connection_budget(result)
    for check in CROSS_CHECKS:
        for key, value, allowed in check(result):
            reader.fail(f"{PROJECT}:{key}", value, allowed)
    return result


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_balanced_apps(cfg: StackConfig) -> dict[str, int]:
    """The apps behind the ALB and the longest request each serves (CloudFront's read timeout)."""
    if not cfg.edge.enabled:
        return {}
    apps = {cfg.load_balancer.api_app: cfg.edge.api_origin_read_timeout_seconds}
    if cfg.edge.html_origin == "app":
        apps[cfg.load_balancer.pages_app] = cfg.edge.pages_origin_read_timeout_seconds
    return apps


def front_door_apps_exist(cfg: StackConfig):
    """The ALB routes to apps the stack declares."""
    for key, app in (("apiApp", cfg.load_balancer.api_app), ("pagesApp", cfg.load_balancer.pages_app)):
        if app in load_balanced_apps(cfg) and app not in cfg.apps:
            yield f"loadBalancer.{key}", app, "an app of cofounder:apps (" + ", ".join(sorted(cfg.apps)) + ")"


def front_door_drains(cfg: StackConfig):
    """preStop, grace period and deregistration delay drop no request (capacity/drain.py)."""
    for name, longest in load_balanced_apps(cfg).items():
        app = cfg.apps.get(name)
        if app is None:
            continue
        drain = Drain(pre_stop_sleep_seconds=app.pre_stop_sleep_seconds,
                      termination_grace_period_seconds=app.termination_grace_period_seconds,
                      longest_request_seconds=longest)
        for key, value, allowed in drain.problems():
            yield f"apps.{name}.{key}", value, allowed


def front_door_timeouts(cfg: StackConfig):
    """The ALB outlasts CloudFront: the edge, not the ALB, ends slow and idle connections."""
    edge = cfg.edge
    longest = max(edge.api_origin_read_timeout_seconds, edge.pages_origin_read_timeout_seconds,
                  edge.origin_keepalive_timeout_seconds)
    if edge.enabled and cfg.load_balancer.idle_timeout_seconds <= longest:
        yield ("loadBalancer.idleTimeoutSeconds", cfg.load_balancer.idle_timeout_seconds,
               f"more than {longest} (CloudFront's longest origin read or keep-alive timeout, cofounder:edge), "
               f"or the ALB closes connections CloudFront still uses")


#: Rules across sections, in the order they are checked; each yields (key, value, allowed).
CROSS_CHECKS = (front_door_apps_exist, front_door_drains, front_door_timeouts)


def db_clients(cfg: StackConfig) -> list[tuple[str, int, int]]:
    """(app, HPA maxReplicas, per-pod pool size) of every app in cofounder:apps with a database pool."""
    return [(name, app.max_replicas, app.db_pool_size) for name, app in cfg.apps.items() if app.db_pool_size > 0]


def connection_budget(cfg: StackConfig) -> connections.Budget:
    """The stack's Postgres connection budget, or ``ConfigError`` naming every limit it breaks.

    Client demand: every app of ``cofounder:apps`` at its ``maxReplicas`` x ``dbPoolSize``.
    ``load()`` runs it, so a stack that does not fit fails before any resource is declared.
    """
    budget = connections.budget(
        instance_class=cfg.postgres.instance_class,
        reserve=cfg.postgres.reserved_connections,
        pgbouncer_replicas=cfg.pgbouncer.replicas,
        pool_size=cfg.pgbouncer.default_pool_size,
        reserve_pool_size=cfg.pgbouncer.reserve_pool_size,
        max_client_conn=cfg.pgbouncer.max_client_conn,
        clients=db_clients(cfg),
    )
    problems = connections.check(budget)
    if problems:
        raise ConfigError(f"{cfg.stack_file}: the connection budget does not fit: {'; '.join(problems)}: "
                          f"change cofounder:pgbouncer (replicas, defaultPoolSize, reservePoolSize, "
                          f"maxClientConn) or cofounder:postgres (instanceClass, reservedConnections)")
    return budget
