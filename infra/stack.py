"""What a stack file holds: one block of settings per component, and the names derived from it.

Each ``cofounder:<section>`` block of ``stacks/Pulumi.<stack>.yaml`` is read into the Settings
class of the component it configures; the classes live beside their components (types,
defaults, bounds, ``#:`` docs), so this module only lists them. A field of ``StackConfig`` is a
section; its camelCase name is the stack-file key (``load_balancer`` -> ``cofounder:loadBalancer``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from capacity.cost import CostSettings
from capacity.scale_up import ScalingSettings
from components import camel
from components.alert_rules import AlertRulesSettings
from components.app_load_balancer import LoadBalancerSettings
from components.app_network_policies import AppNetworkPoliciesSettings
from components.app_service import AppServiceSettings
from components.cloudwatch_alarms import CloudWatchAlarmsSettings
from components.cluster_autoscaler import ClusterAutoscalerSettings
from components.cost_budget import BudgetSettings
from components.edge_distribution import EdgeSettings
from components.eks_cluster import EksClusterSettings
from components.external_secrets import ExternalSecretsSettings
from components.image_prepuller import ImagePrepullSettings
from components.image_registry import ImageRegistrySettings
from components.keda import KedaSettings
from components.load_balancer_controller import LoadBalancerControllerSettings
from components.metrics_server import MetricsServerSettings
from components.monitoring_stack import MonitoringStackSettings
from components.network import NetworkSettings
from components.otel_collector import TracingSettings
from components.pgbouncer import PgBouncerSettings
from components.postgres import PostgresSettings
from components.prometheus_adapter import PrometheusAdapterSettings
from components.queue import QueueSettings
from components.redis import RedisSettings
from components.service_monitors import ScrapeTargetsSettings
from components.web_acl import WebAclSettings

PROJECT = "cofounder"
Environment = Literal["dev", "staging", "prod"]


@dataclass(frozen=True, kw_only=True)
class ClusterSection(EksClusterSettings):
    """``cofounder:cluster``: the EKS cluster and the add-ons that run on its system nodes."""

    autoscaler: ClusterAutoscalerSettings = field(default_factory=ClusterAutoscalerSettings)
    metrics_server: MetricsServerSettings = field(default_factory=MetricsServerSettings)


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. Built by ``infra.config.load()``."""

    stack: str
    stack_file: str
    region: str
    #: The AWS provider's default tags (``aws:defaultTags``), on every AWS resource of the stack.
    default_tags: dict[str, str]
    #: Which environment the stack is; the pack's strictness per environment follows it.
    environment: Environment
    network: NetworkSettings
    cluster: ClusterSection
    load_balancer_controller: LoadBalancerControllerSettings
    postgres: PostgresSettings
    pgbouncer: PgBouncerSettings
    redis: RedisSettings
    queues: QueueSettings
    #: External Secrets Operator: Secrets Manager -> the apps' Kubernetes Secrets.
    external_secrets: ExternalSecretsSettings
    #: The app tiers by name (frontend, backend, worker); each is one Deployment with
    #: its HPA, Service, TargetGroupBinding and PodDisruptionBudget.
    apps: dict[str, AppServiceSettings]
    #: The app images' ECR repositories; ``ecr:<name>:<tag>@sha256:<digest>`` images come from them.
    image_registry: ImageRegistrySettings
    #: Every app image kept on every node the apps may run on (a burst's pods start without a pull).
    image_prepull: ImagePrepullSettings
    scaling: ScalingSettings
    #: The usage assumptions of the cost model (capacity/cost.py) the budget is derived from.
    cost: CostSettings
    #: The stack's AWS Budget, derived from the cost model, and the cost anomaly alerts.
    budget: BudgetSettings
    prometheus_adapter: PrometheusAdapterSettings
    keda: KedaSettings
    #: Default deny in the app namespace and one NetworkPolicy per flow the apps need.
    network_policies: AppNetworkPoliciesSettings
    edge: EdgeSettings
    load_balancer: LoadBalancerSettings
    waf: WebAclSettings
    monitoring: MonitoringStackSettings
    alert_rules: AlertRulesSettings
    cloudwatch_alarms: CloudWatchAlarmsSettings
    scrape: ScrapeTargetsSettings
    #: The OpenTelemetry Collector (traces to X-Ray) and the apps' SDK environment.
    tracing: TracingSettings

    @property
    def name_prefix(self) -> str:
        """Prefix of physical names, unique per stack: ``cofounder-<stack>``."""
        return f"{PROJECT}-{self.stack}"

    @property
    def cluster_name(self) -> str:
        return f"{self.name_prefix}-eks"

    @property
    def agent_queue_name(self) -> str:
        """Prefix of the SQS agent-execution queues (the data tier's ``Queue``): each priority tier's
        queue is ``<this>-<tier>``, its DLQ ``<this>-<tier>-dlq``."""
        return f"{self.name_prefix}-agent-execution"


#: Fields of StackConfig that are not read from a stack-file key of their own.
_DERIVED = ("stack", "stack_file", "region", "default_tags")


def _hints() -> dict[str, Any]:
    import typing
    return typing.get_type_hints(StackConfig)


#: ``cofounder:<key>`` -> what it is read into (a Settings class, ``dict[str, ...]`` or a Literal).
SECTIONS: dict[str, Any] = {camel(f.name): _hints()[f.name] for f in dataclasses.fields(StackConfig)
                            if f.name not in _DERIVED}
#: Keys whose value is a scalar (the rest are YAML mappings).
SCALARS = ("environment",)
