"""Rules across sections of a stack file, each a named function of the whole configuration.

A component's own rules live in its Settings class; what needs two sections (zones and the
region, apps and the scaling targets, the connection budget, the front door's drain, the agent
worker against the queues' longest run) lives here.
Each check yields ``(key, value, allowed)`` with the key under ``cofounder:``, or a whole
sentence (str) when the problem is a sum of several keys; ``infra/config.py`` turns the first one
into the ``ConfigError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from capacity import connections
from capacity.drain import Drain
from capacity.schema import camel, dotted
from components.eks_cluster import SYSTEM_NODE_GROUP
from components.image_registry import ECR_REFERENCE
from components.prometheus_adapter import IN_CLUSTER_PROMETHEUS
from infra.stack import StackConfig

Problem = tuple[str, object, str] | str
_K8S_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


def zones_in_region(cfg: StackConfig) -> Iterator[Problem]:
    """Every availability zone is one of ``aws:region``."""
    for i, zone in enumerate(cfg.network.availability_zones):
        if not zone.startswith(cfg.region) or len(zone) != len(cfg.region) + 1:
            yield f"network.availabilityZones[{i}]", zone, f"a zone of aws:region {cfg.region}, such as {cfg.region}a"


def app_names(cfg: StackConfig) -> Iterator[Problem]:
    """App names become Kubernetes object names and name prefixes."""
    for app in cfg.apps:
        if not re.fullmatch(_K8S_NAME, app) or len(app) > 40:
            yield f"apps.{app}", app, "an app name of lowercase letters, digits and '-' (at most 40)"


def scaling_names_apps(cfg: StackConfig) -> Iterator[Problem]:
    """The scaling targets name apps the stack declares."""
    scaling = cfg.scaling
    for key, names in (("baselineReplicas", list(scaling.baseline_replicas)), ("goalApps", scaling.goal_apps)):
        for app in names:
            if cfg.apps and app not in cfg.apps:
                yield (f"scaling.{key}", app,
                       "names of apps in cofounder:apps (" + ", ".join(sorted(cfg.apps)) + ")")


def network_policies_name_apps(cfg: StackConfig) -> Iterator[Problem]:
    """The network policies' flows name apps the stack declares (a typo would drop a flow)."""
    policies, known = cfg.network_policies, ", ".join(sorted(cfg.apps))
    for path, app in policies.app_references():
        # field names in camelCase; app and destination names are lowercase with '-', unchanged
        if app not in cfg.apps:
            yield f"networkPolicies.{dotted(path, camel)}", app, f"names of apps in cofounder:apps ({known})"
    for name in policies.extra_egress:
        if name in cfg.apps:
            yield (f"networkPolicies.extraEgress.{name}", name,
                   "a name other than an app's (calls between apps are appCalls)")


def apps_within_the_replica_cap(cfg: StackConfig) -> Iterator[Problem]:
    """No app's autoscaler may exceed the stack's one replica cap, ``cofounder:scaling.maxReplicasPerApp``,
    which ``make docs`` also writes into the pack's ``k8s-hpa-max-replicas-bounded`` config."""
    cap = cfg.scaling.max_replicas_per_app
    for name, app in cfg.apps.items():
        if app.max_replicas > cap:
            yield (f"apps.{name}.maxReplicas", app.max_replicas,
                   f"at most cofounder:scaling.maxReplicasPerApp ({cap})")


def autoscalers_have_a_prometheus(cfg: StackConfig) -> Iterator[Problem]:
    """prometheus-adapter and KEDA query a Prometheus that exists."""
    if not cfg.monitoring.enabled and cfg.prometheus_adapter.prometheus_url == IN_CLUSTER_PROMETHEUS:
        yield ("monitoring.enabled", False,
               "true while cofounder:prometheusAdapter.prometheusUrl is the in-cluster Prometheus "
               f"({IN_CLUSTER_PROMETHEUS}) that prometheus-adapter and KEDA query; "
               "or point prometheusUrl at your own Prometheus")


def volume_pool_is_zonal(cfg: StackConfig) -> Iterator[Problem]:
    """The pool under the in-cluster Prometheus (the system pool: its EBS volume is bound to one
    zone) has one node group per zone, so a lost node is replaced in the volume's zone."""
    system = cfg.cluster.node_groups.get(SYSTEM_NODE_GROUP)
    if cfg.monitoring.enabled and system is not None and not system.one_group_per_zone:
        yield (f"cluster.nodeGroups.{SYSTEM_NODE_GROUP}.oneGroupPerZone", False,
               "true while cofounder:monitoring.enabled is true: Prometheus keeps its data on an EBS "
               "volume on these nodes, and a group spanning zones may replace a lost node in another "
               "zone, where the pod cannot follow its volume")


def db_clients(cfg: StackConfig) -> list[tuple[str, int, int]]:
    """(app, HPA maxReplicas, per-pod pool size) of every app in cofounder:apps with a database pool."""
    return [(name, app.max_replicas, app.db_pool_size) for name, app in cfg.apps.items() if app.db_pool_size > 0]


def connection_budget(cfg: StackConfig) -> connections.Budget:
    """The stack's Postgres connection budget: every app at maxReplicas x dbPoolSize against
    PgBouncer and RDS max_connections."""
    return connections.budget(
        instance_class=cfg.postgres.instance_class,
        reserve=cfg.postgres.reserved_connections,
        pgbouncer_replicas=cfg.pgbouncer.replicas,
        pool_size=cfg.pgbouncer.default_pool_size,
        reserve_pool_size=cfg.pgbouncer.reserve_pool_size,
        max_client_conn=cfg.pgbouncer.max_client_conn,
        clients=db_clients(cfg),
    )


def connection_budget_fits(cfg: StackConfig) -> Iterator[Problem]:
    """Nothing in the connection budget overflows at maximum scale."""
    problems = connections.check(connection_budget(cfg))
    if problems:
        yield (f"the connection budget does not fit: {'; '.join(problems)}: change cofounder:pgbouncer "
               f"(replicas, defaultPoolSize, reservePoolSize, maxClientConn) or cofounder:postgres "
               f"(instanceClass, reservedConnections)")


def load_balanced_apps(cfg: StackConfig) -> dict[str, int]:
    """The apps behind the ALB and the longest request each serves (CloudFront's read timeout)."""
    if not cfg.edge.enabled:
        return {}
    apps = {cfg.load_balancer.api_app: cfg.edge.api_origin_read_timeout_seconds}
    if cfg.edge.html_origin == "app":
        apps[cfg.load_balancer.pages_app] = cfg.edge.pages_origin_read_timeout_seconds
    return apps


def front_door_apps_exist(cfg: StackConfig) -> Iterator[Problem]:
    """The ALB routes to apps the stack declares."""
    for key, app in (("apiApp", cfg.load_balancer.api_app), ("pagesApp", cfg.load_balancer.pages_app)):
        if app in load_balanced_apps(cfg) and app not in cfg.apps:
            yield f"loadBalancer.{key}", app, "an app of cofounder:apps (" + ", ".join(sorted(cfg.apps)) + ")"


def drain_of(app_settings, longest_request_seconds: int) -> Drain:
    return Drain(pre_stop_sleep_seconds=app_settings.pre_stop_sleep_seconds,
                 termination_grace_period_seconds=app_settings.termination_grace_period_seconds,
                 longest_request_seconds=longest_request_seconds)


def front_door_drains(cfg: StackConfig) -> Iterator[Problem]:
    """preStop, grace period and deregistration delay drop no request (capacity/drain.py)."""
    for name, longest in load_balanced_apps(cfg).items():
        if name in cfg.apps:
            for key, value, allowed in drain_of(cfg.apps[name], longest).problems():
                yield f"apps.{name}.{key}", value, allowed


def front_door_timeouts(cfg: StackConfig) -> Iterator[Problem]:
    """The ALB outlasts CloudFront: the edge, not the ALB, ends slow and idle connections."""
    edge = cfg.edge
    longest = max(edge.api_origin_read_timeout_seconds, edge.pages_origin_read_timeout_seconds,
                  edge.origin_keepalive_timeout_seconds)
    if edge.enabled and cfg.load_balancer.idle_timeout_seconds <= longest:
        yield ("loadBalancer.idleTimeoutSeconds", cfg.load_balancer.idle_timeout_seconds,
               f"more than {longest} (CloudFront's longest origin read or keep-alive timeout, cofounder:edge), "
               f"or the ALB closes connections CloudFront still uses")


def agent_consumers(cfg: StackConfig) -> dict:
    """The apps that run agent jobs from the agent queues (``consumesAgentQueue``)."""
    return {name: app for name, app in cfg.apps.items() if app.consumes_agent_queue}


def worker_capacity(cfg: StackConfig) -> int | None:
    """Agent runs the consumers execute at once at maxReplicas; None without a consumer."""
    consumers = agent_consumers(cfg)
    if not consumers:
        return None
    return sum(app.max_replicas for app in consumers.values()) * cfg.queues.concurrency_per_pod


def worker_outlasts_agent_runs(cfg: StackConfig) -> Iterator[Problem]:
    """A consumer stopped (scale-in, rollout, node drain) finishes the runs it holds: its grace
    period covers the preStop pause plus the longest run, which the queues' visibility timeout
    covers in turn (maxAgentRunSeconds + visibilityMarginSeconds, components/queue.py)."""
    longest = cfg.queues.max_agent_run_seconds
    for name, app in agent_consumers(cfg).items():
        needed = app.pre_stop_sleep_seconds + longest
        if app.termination_grace_period_seconds < needed:
            yield (f"apps.{name}.terminationGracePeriodSeconds", app.termination_grace_period_seconds,
                   f"at least preStopSleepSeconds ({app.pre_stop_sleep_seconds}) + cofounder:queues.maxAgentRunSeconds "
                   f"({longest}) = {needed}: a run taken just before SIGTERM must end before the pod is killed, "
                   f"or it is retried and spends one of its {cfg.queues.max_receive_count} attempts")


#: In the order they are checked.
def ecr_images_name_repositories(cfg: StackConfig) -> Iterator[Problem]:
    """An ``ecr:<name>`` image names a repository the stack's registry declares."""
    repositories = cfg.image_registry.repositories
    for app, settings in cfg.apps.items():
        match = ECR_REFERENCE.fullmatch(settings.image)
        if match and match["repository"] not in repositories:
            yield (f"apps.{app}.image", settings.image, "an ecr: image of a repository in "
                   "cofounder:imageRegistry.repositories (" + ", ".join(repositories) + ")")


def budget_tag_is_a_default_tag(cfg: StackConfig) -> Iterator[Problem]:
    """The budget filters on a tag every resource carries: one of the provider's default tags."""
    tag = cfg.budget.cost_allocation_tag
    if cfg.budget.enabled and tag not in cfg.default_tags:
        known = ", ".join(sorted(cfg.default_tags)) or "none"
        yield ("budget.costAllocationTag", tag, f"a key of aws:defaultTags.tags ({known}): the budget "
               "filters on its value, which every resource of the stack must carry")


CHECKS = (zones_in_region, app_names, ecr_images_name_repositories, scaling_names_apps, network_policies_name_apps,
          apps_within_the_replica_cap, autoscalers_have_a_prometheus, volume_pool_is_zonal,
          connection_budget_fits, front_door_apps_exist, front_door_drains, front_door_timeouts,
          worker_outlasts_agent_runs, budget_tag_is_a_default_tag)
