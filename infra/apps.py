"""App tier wiring: the three app workloads and the metric adapters they scale on.

``deploy_apps`` is called by ``infra/__main__.py`` with what the EKS platform provides (the
Kubernetes provider, the app namespace, the IRSA OIDC provider). It turns ``cofounder:apps``,
``cofounder:autoscalers`` into:
- ``PrometheusAdapter`` (custom.metrics.k8s.io: ``cofounder_active_agents`` per pod);
- ``Keda`` when an app scales on a queue (external.metrics.k8s.io, SQS depth), with an operator
  IRSA role that may only read those queues' attributes;
- one ``AppService`` per app, with an ``IrsaRole`` for apps that call AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import pulumi

from components import ComponentArgsError
from components.app_service import (AppService, AppServiceArgs, LoadBalancerTarget, QueueScaling,
                                    ScalingPolicy, ScalingRules)
from components.irsa_role import IrsaRole, IrsaRoleArgs
from components.keda import Keda, KedaArgs
from components.prometheus_adapter import PrometheusAdapter, PrometheusAdapterArgs
from infra.config import AppConfig, ScalingRulesConfig, StackConfig


@dataclass(frozen=True)
class QueueRef:
    """The SQS queue an app scales on (from the data tier)."""

    url: pulumi.Input[str]
    arn: pulumi.Input[str]


@dataclass(frozen=True)
class AppTier:
    apps: dict[str, AppService]
    adapter: PrometheusAdapter
    keda: Keda | None


def _rules(rules: ScalingRulesConfig) -> ScalingRules:
    return ScalingRules(
        stabilization_window_seconds=rules.stabilization_window_seconds,
        select_policy=rules.select_policy,
        policies=tuple(ScalingPolicy(type=p.type, value=p.value, period_seconds=p.period_seconds)
                       for p in rules.policies))


def deploy_apps(cfg: StackConfig, *, k8s_provider: pulumi.ProviderResource,
                app_namespace: pulumi.Input[str], app_namespace_name: str,
                oidc_provider_arn: pulumi.Input[str], oidc_issuer_url: pulumi.Input[str],
                queues: Mapping[str, QueueRef], aws_policies: Mapping[str, pulumi.Input[str]],
                load_balancer_targets: Mapping[str, LoadBalancerTarget] | None = None,
                monitoring: Sequence[pulumi.Resource] = ()) -> AppTier:
    """Declare the app tier. ``queues``: per app with ``queueName``; ``aws_policies``: per app with
    ``needsAws``; ``load_balancer_targets``: per app behind the ALB; ``monitoring``: the in-cluster
    monitoring stack, if any, which owns the ``monitoring`` namespace and the Prometheus the
    adapter queries."""
    in_cluster = pulumi.ResourceOptions(providers={"kubernetes": k8s_provider})
    auto = cfg.autoscalers
    # After the monitoring stack: its namespace and Prometheus exist before the adapter is
    # installed into it, and the adapter is removed before them on destroy.
    adapter = PrometheusAdapter("prometheus-adapter", PrometheusAdapterArgs(
        prometheus_url=auto.prometheus_url, prometheus_port=auto.prometheus_port,
        replicas=auto.adapter_replicas),
        opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=list(monitoring))))

    queued = {name: app for name, app in cfg.apps.items() if app.queue_name}
    for name in queued:
        if name not in queues:
            raise ComponentArgsError(f"app {name!r} scales on queue {queued[name].queue_name!r}: pass its QueueRef")
    keda = None
    if queued:
        keda = Keda("keda", KedaArgs(
            oidc_provider_arn=oidc_provider_arn, oidc_issuer_url=oidc_issuer_url,
            queue_arns=[queues[name].arn for name in sorted(queued)], replicas=auto.keda_replicas),
            opts=in_cluster)

    apps = {}
    for name, app in cfg.apps.items():
        role_arn = None
        if app.needs_aws:
            if name not in aws_policies:
                raise ComponentArgsError(f"app {name!r} needs AWS access: pass its IAM policy JSON")
            role_arn = IrsaRole(f"{name}-irsa", IrsaRoleArgs(
                oidc_provider_arn=oidc_provider_arn, oidc_issuer_url=oidc_issuer_url,
                namespace=app_namespace_name, service_account=name,
                policy_json=aws_policies[name], tags={"component": "apps"})).role_arn
        target = (load_balancer_targets or {}).get(name)
        apps[name] = AppService(name, _app_args(cfg, name, app, app_namespace, role_arn, queues, keda, target),
                                opts=in_cluster)
    return AppTier(apps=apps, adapter=adapter, keda=keda)


def _app_args(cfg: StackConfig, name: str, app: AppConfig, namespace, role_arn, queues, keda,
              target: LoadBalancerTarget | None) -> AppServiceArgs:
    queue_scaling = None
    if app.queue_name:
        auto = cfg.autoscalers
        queue_scaling = QueueScaling(
            queue_url=queues[name].url, aws_region=cfg.region,
            prometheus_address=f"{auto.prometheus_url}:{auto.prometheus_port}",
            messages_per_pod=app.queue_messages_per_pod, keda=keda.release if keda else None)
    return AppServiceArgs(
        namespace=namespace,
        image=app.image,
        port=app.port,
        readiness_path=app.probes.readiness_path,
        liveness_path=app.probes.liveness_path,
        startup_path=app.probes.startup_path,
        probe_port=app.probes.port,
        cpu_request=app.cpu_request,
        cpu_limit=app.cpu_limit,
        memory_request=app.memory_request,
        memory_limit=app.memory_limit,
        min_replicas=app.min_replicas,
        max_replicas=app.max_replicas,
        cpu_target_percent=app.cpu_target_percent,
        memory_target_percent=app.memory_target_percent,
        active_agents_target=app.active_agents_target,
        scale_up=_rules(app.scale_up),
        scale_down=_rules(app.scale_down),
        max_surge=app.max_surge,
        safe_to_evict=app.safe_to_evict,
        role_arn=role_arn,
        env_from_secrets=tuple(app.env_from_secrets),
        env_from_config_maps=tuple(app.env_from_config_maps),
        pre_stop_sleep_seconds=app.pre_stop_sleep_seconds,
        termination_grace_period_seconds=app.termination_grace_period_seconds,
        queue_scaling=queue_scaling,
        load_balancer=target,
        db_pool_size=app.db_pool_size,
    )
