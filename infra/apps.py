"""The app tier: the app workloads of ``cofounder:apps`` and the metric adapters they scale on.

- ``ImageRegistry``: the apps' ECR repositories (only the nodes' role pulls), which
  ``ecr:<app>:<tag>@sha256:<digest>`` images resolve to;
- ``PrometheusAdapter`` (custom.metrics.k8s.io: ``cofounder_active_agents`` per pod);
- ``Keda`` when an app consumes the agent queues (external.metrics.k8s.io, SQS backlog), with an
  operator IRSA role that may only read the tier queues' attributes;
- one ``AppService`` per app, with an ``IrsaRole`` for apps that call AWS (the consumer may
  receive, delete and delay messages; apps with ``queue`` in ``dataAccess`` may only enqueue;
  others get no permissions), the data tier's Secrets and ConfigMap by ``dataAccess``, and a
  TargetGroupBinding for the apps behind the ALB. The queues' names, URLs and ARNs come from the
  data tier's ``Queue``, never from the stack file.
- ``AppNetworkPolicies`` (``isolate_apps``): default deny in the app namespace and one
  NetworkPolicy per flow, each derived from what declares it (the apps' settings and selectors,
  PgBouncer's, the ALB's targets, the monitors, the private subnets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components import args_for
from components.app_network_policies import AppNetworkPolicies, AppNetworkPoliciesArgs, AppPods, PeerPods, PoolerPods
from components.app_service import AppService, AppServiceArgs, AppServiceSettings, QueueScaling, QueueTierScaling
from components.credentials import merged_policy, secret_read_policy
from components.image_prepuller import ImagePrepuller, ImagePrepullerArgs
from components.image_registry import ECR_REFERENCE, ImageRegistry, ImageRegistryArgs
from components.irsa_role import IrsaRole, IrsaRoleArgs
from components.keda import Keda, KedaArgs
from components.monitoring_stack import MonitoringStack
from components.otel_collector import OtelCollector
from components.prometheus_adapter import PrometheusAdapter, PrometheusAdapterArgs
from infra.data import DataTier
from infra.front_door import LoadBalancing
from infra.platform import Platform
from infra.stack import StackConfig


@dataclass(frozen=True)
class AppTier:
    apps: dict[str, AppService]
    registry: ImageRegistry
    adapter: PrometheusAdapter
    keda: Keda | None


def deploy_apps(cfg: StackConfig, platform: Platform, data: DataTier, lb: LoadBalancing | None,
                monitoring: MonitoringStack | None, tracing: OtelCollector | None = None) -> AppTier:
    cluster, in_cluster = platform.cluster, platform.in_cluster
    registry = ImageRegistry("images", args_for(cfg.image_registry, ImageRegistryArgs, prefix=cfg.name_prefix,
                                                node_role_arn=cluster.node_role_arn))
    # After the monitoring stack: its namespace and Prometheus exist before the adapter is
    # installed into it, and the adapter is removed before them on destroy.
    adapter = PrometheusAdapter("prometheus-adapter", args_for(cfg.prometheus_adapter, PrometheusAdapterArgs),
                                opts=pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(
                                    depends_on=[monitoring] if monitoring else [])))
    keda = None
    if any(app.consumes_agent_queue for app in cfg.apps.values()):
        keda = Keda("keda", args_for(
            cfg.keda, KedaArgs, oidc_provider_arn=cluster.oidc_provider_arn,
            oidc_issuer_url=cluster.oidc_issuer_url, queue_arns=list(data.agent_queue.queue_arns.values())),
            opts=in_cluster)
    # After their Secrets' ExternalSecrets (synced once the roles' passwords are set).
    after_data = pulumi.ResourceOptions.merge(in_cluster, pulumi.ResourceOptions(depends_on=[data.app_data]))
    apps = {name: AppService(name, _app_args(cfg, name, app, platform, data, lb, keda, registry, tracing),
                             opts=after_data)
            for name, app in cfg.apps.items()}
    if cfg.image_prepull.enabled:
        ImagePrepuller("image-prepuller", args_for(
            cfg.image_prepull, ImagePrepullerArgs, namespace=cluster.app_namespace,
            images={name: _image(app, registry) for name, app in cfg.apps.items()}), opts=in_cluster)
    return AppTier(apps=apps, registry=registry, adapter=adapter, keda=keda)


def _image(app: AppServiceSettings, registry: ImageRegistry) -> pulumi.Input[str]:
    """The image the app's pods run: an ``ecr:`` reference as its repository's URI, else as written."""
    return registry.image_uri(app.image) if ECR_REFERENCE.fullmatch(app.image) else app.image


def _app_args(cfg: StackConfig, name: str, app: AppServiceSettings, platform: Platform, data: DataTier,
              lb: LoadBalancing | None, keda: Keda | None, registry: ImageRegistry,
              tracing: OtelCollector | None) -> AppServiceArgs:
    cluster, queue = platform.cluster, data.agent_queue
    role_arn = None
    # The app's own service account reads its secrets (ESO's SecretStore authenticates as it).
    secret_arns = data.app_data.secret_arns.get(name, [])
    if app.needs_aws or secret_arns:
        queue_policy = (queue.worker_policy_json if app.consumes_agent_queue
                        else queue.producer_policy_json if "queue" in app.data_access else None)
        keys = [data.postgres.secrets_key_arn, data.redis.secrets_key_arn]
        policy: pulumi.Output[str] = pulumi.Output.all(queue_policy, len(keys), *keys, *secret_arns).apply(
            lambda v: merged_policy(json.loads(v[0]) if v[0] else None,
                                    secret_read_policy(v[2 + v[1]:], v[2:2 + v[1]]) if len(v) > 2 + v[1] else None)
            or "")
        role_arn = IrsaRole(f"{name}-irsa", IrsaRoleArgs(
            oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
            namespace=cfg.cluster.app_namespace, service_account=name,
            policy_json=policy if queue_policy is not None or secret_arns else None,
            tags={"component": "apps"})).role_arn
    queue_scaling = None
    if app.consumes_agent_queue:
        queue_scaling = QueueScaling(
            tiers=[QueueTierScaling(tier=t, queue_url=queue.queue_urls[t], weight=queue.scaling_weights[t])
                   for t in queue.tiers],
            concurrency_per_pod=cfg.queues.concurrency_per_pod, aws_region=cfg.region,
            keda=keda.release if keda else None)
    return args_for(
        app, AppServiceArgs, namespace=cluster.app_namespace, role_arn=role_arn,
        pulled_image=_image(app, registry) if ECR_REFERENCE.fullmatch(app.image) else None,
        env_from_secrets=data.app_data.secret_names.get(name, []),
        credentials_version=data.app_data.credentials_versions.get(name),
        env_from_config_maps=([data.app_data.queue_config_map_name] if "queue" in app.data_access else [])
        + ([tracing.config_map_names[name]] if tracing else []),
        queue_scaling=queue_scaling, load_balancer=lb.targets.get(name) if lb else None)


def isolate_apps(cfg: StackConfig, platform: Platform, data: DataTier, lb: LoadBalancing | None, tier: AppTier,
                 monitoring: MonitoringStack | None, tracing: OtelCollector | None = None) -> AppNetworkPolicies | None:
    """Default deny in the app namespace, then one NetworkPolicy per flow of ``cofounder:networkPolicies``."""
    settings = cfg.network_policies
    if not settings.enabled:
        return None
    # Prometheus scrapes what ScrapeTargets monitors: the listed apps on their port, PgBouncer's exporter.
    scraped = {scrape.name for scrape in cfg.scrape.apps} if monitoring else set()
    behind = lb.targets if lb else {}

    def pods(name: str, app: AppServiceSettings) -> AppPods:
        probe = [app.probes.port] if app.probes.port else []  # the ALB health checks the readiness probe
        return AppPods(selector=tier.apps[name].selector, port=app.port,
                       load_balancer_ports=[app.port, *probe] if name in behind else [],
                       scraped=name in scraped, database="database" in app.data_access,
                       redis="redis" in app.data_access, aws_apis=app.needs_aws)

    pgbouncer = data.pgbouncer
    return AppNetworkPolicies("network-policies", args_for(
        settings, AppNetworkPoliciesArgs, namespace=platform.cluster.app_namespace,
        apps={name: pods(name, app) for name, app in cfg.apps.items()},
        pgbouncer=PoolerPods(selector=pgbouncer.selector, port=pgbouncer.port, metrics_port=pgbouncer.metrics_port),
        database_bootstrap=data.database_roles.selector,
        private_subnet_cidrs=platform.network.private_subnet_cidr_blocks, vpc_cidr=cfg.network.cidr_block,
        prometheus=PeerPods(namespace=monitoring.namespace, selector=monitoring.prometheus_selector)
        if monitoring else None,
        tracing=PeerPods(namespace=tracing.namespace, selector=tracing.selector) if tracing else None,
        tracing_ports=tracing.ports if tracing else ()), opts=platform.in_cluster)
