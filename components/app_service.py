"""AppService: one CoFounder app (frontend, backend API, agent worker) on Kubernetes.

Builds a Deployment, a ClusterIP Service, a ServiceAccount (annotated with an IRSA role when the
pod calls AWS), a PodDisruptionBudget and exactly one autoscaler:
- a native autoscaling/v2 HorizontalPodAutoscaler on CPU, memory and, where the app runs agents,
  the per-pod metric ``cofounder_active_agents`` (served by prometheus-adapter on
  custom.metrics.k8s.io), or
- for an app that consumes the agent queues, a KEDA ScaledObject carrying the same CPU and memory
  targets plus one ``aws-sqs-queue`` trigger per priority tier, combined by
  ``advanced.scalingModifiers`` into one composite metric, the weighted backlog of every tier,
  with the same explicit behavior. KEDA creates and owns the one HPA of that Deployment; a second
  HPA would fight it.

Zero-downtime rollouts: maxUnavailable 0, startup/readiness/liveness probes, a preStop pause
inside a longer termination grace period so the Service stops routing before the process ends,
zone and node spread, and a PDB. ``spec.replicas`` is deliberately not declared: the autoscaler
owns it. With server-side apply (pulumi-kubernetes' default) a field the program does not declare
is not managed by Pulumi, so ``pulumi up`` never resets what the HPA chose, and Kubernetes'
own guidance for HPA-managed Deployments is to omit it. A new Deployment starts at one pod and
the autoscaler raises it to ``minReplicas`` at its first sync (15 s).

Pods are non-root with a read-only root filesystem (an emptyDir on /tmp), all capabilities
dropped, no privilege escalation and the RuntimeDefault seccomp profile (Pod Security
``restricted``). Settings come only through ``envFrom`` Secrets/ConfigMaps, never plain env.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pulumi
import pulumi_kubernetes as k8s

from capacity import queue_scaling
from capacity.connections import DB_POOL_SIZE_ANNOTATION
from capacity.numbers import plain
from components import Between, Matches, require_valid

ACTIVE_AGENTS_METRIC = "cofounder_active_agents"
REQUESTS_METRIC = "cofounder_http_requests_per_second"
KEDA_API_VERSION = "keda.sh/v1alpha1"
#: The TargetGroupBinding CRD the AWS Load Balancer Controller v3.5.0 serves and stores
#: (config/crd/bases/elbv2.k8s.aws_targetgroupbindings.yaml at that tag).
TARGET_GROUP_BINDING_API_VERSION = "elbv2.k8s.aws/v1beta1"
SERVICE_PORT = 80


#: An image reference pinned by tag, by digest or both (``name:tag@sha256:<digest>``: the runtime
#: pulls the digest, the tag is for the reader), never the tag ``latest``. A registry can move a
#: tag; ``k8s-workload-image-digest`` requires the digest where the stack's profile says so.
#: ``ecr:<repository>`` as the name: a repository of the stack's ImageRegistry (its URI is
#: resolved by the program; components/image_registry.py).
IMAGE_REFERENCE = Matches(
    r"(ecr:[a-z][a-z0-9-]*|(?!ecr:)[^@\s:/]+(:[0-9]+)?(/[^@\s:/]+)*)"
    r"(:(?!latest(@|$))[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@sha256:[0-9a-f]{64})?|@sha256:[0-9a-f]{64})",
    "an image pinned by tag and/or digest: name:tag, name:tag@sha256:digest or name@sha256:digest, "
    "name being a registry path or ecr:<repository of cofounder:imageRegistry> "
    "(64 lowercase hex digits; never the tag latest)")
_PATH = Matches(r"/\S*", "a value matching /\\S*")
_CPU = Matches(r"[0-9]+(\.[0-9]+)?m?", "a value matching [0-9]+(\\.[0-9]+)?m?")
_MEMORY = Matches(r"[0-9]+(Mi|Gi)", "a value matching [0-9]+(Mi|Gi)")
#: No upper bound here: the stack's cofounder:scaling.maxReplicasPerApp is the one cap
#: (infra/checks.py apps_within_the_replica_cap; the pack's k8s-hpa-max-replicas-bounded).
_REPLICAS = Annotated[int, Between(1, None)]


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy:
    """One HPA scaling policy: at most ``value`` pods (``Pods``) or percent (``Percent``) per ``periodSeconds``."""

    #: Pods (a number of pods) or Percent (of the current replicas).
    type: Literal["Pods", "Percent"]
    #: How many pods, or what percent, per period.
    value: Annotated[int, Between(1, 1000)]
    #: The period the value applies to.
    period_seconds: Annotated[int, Between(1, 1800)] = 15


@dataclass(frozen=True, kw_only=True)
class ScalingRules:
    """``behavior.scaleUp`` or ``behavior.scaleDown`` of an HPA, declared explicitly."""

    #: How long the HPA looks back before changing the replica count in this direction.
    stabilization_window_seconds: Annotated[int, Between(0, 3600)]
    #: Which policy wins when several allow different changes: Max (fastest), Min, or Disabled.
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"
    #: How fast the replica count may change (the one selectPolicy picks wins).
    policies: list[ScalingPolicy]

    def checks(self):
        if self.select_policy != "Disabled" and not 1 <= len(self.policies) <= 10:
            yield "policies", [], "between 1 and 10 policies"


def fast_scale_up() -> ScalingRules:
    """Reach 5x quickly: double or +4 pods every 15 s, whichever is more, with no stabilization delay."""
    return ScalingRules(stabilization_window_seconds=0, select_policy="Max", policies=[
        ScalingPolicy(type="Percent", value=100), ScalingPolicy(type="Pods", value=4)])


def gentle_scale_down() -> ScalingRules:
    """Shed at most 10 % a minute, after five minutes of lower load."""
    return ScalingRules(stabilization_window_seconds=300, select_policy="Min", policies=[
        ScalingPolicy(type="Percent", value=10, period_seconds=60)])


@dataclass(frozen=True, kw_only=True)
class Probes:
    """HTTP probe endpoints of an app container."""

    #: HTTP path that says the pod can take requests (also the ALB health check).
    readiness_path: Annotated[str, _PATH] = "/healthz/ready"
    #: HTTP path whose failure restarts the container.
    liveness_path: Annotated[str, _PATH] = "/healthz/live"
    #: HTTP path that must answer before liveness checks start (up to 2 minutes).
    startup_path: Annotated[str, _PATH] = "/healthz/live"
    #: Port the probes call; null means the app's ``port``.
    port: Annotated[int | None, Between(1, 65535)] = None
    #: Seconds between startup probes (up to 2 minutes of them): a new pod is Ready at most one
    #: period after it boots, so a burst's pods come sooner with a shorter one.
    startup_period_seconds: Annotated[int, Between(1, 30)] = 1
    #: Seconds between readiness probes (about 15 s of failures mark a pod unready); after the
    #: startup probe passes, the next readiness probe makes the pod Ready.
    readiness_period_seconds: Annotated[int, Between(1, 30)] = 2


#: The data tier's connection settings an app may load (``envFrom``): DATABASE_URL and
#: DATABASE_URL_POOLED, REDIS_URL_<ROLE>, the agent queues' AGENT_* settings (``components/app_data_settings.py``).
DataAccess = Literal["database", "redis", "queue"]
#: The Valkey users an app may hold (components/valkey_users.py ROLES).
RedisRole = Literal["sessions", "ratelimit", "llmcache", "results", "pubsub"]
#: Pod template annotation: the versions of the credentials the pod loads; a rotation changes it,
#: which rolls the pods (maxUnavailable 0) onto the new credentials.
CREDENTIALS_ANNOTATION = "cofounder.dev/credentials-version"


@dataclass(frozen=True, kw_only=True)
class AppServiceSettings:
    """One entry of ``cofounder:apps``: an app Deployment and its autoscaling. Defaults are production-safe."""

    #: Container image: ``name:tag``, ``name:tag@sha256:<digest>`` or ``name@sha256:<digest>``
    #: (never ``latest``); ``name`` may be ``ecr:<repository>``, a repository of
    #: ``cofounder:imageRegistry``. Prod's policy requires that registry and the digest.
    image: Annotated[str, IMAGE_REFERENCE]
    #: The container port the app serves on (and the target port behind the load balancer).
    port: Annotated[int, Between(1, 65535)] = 8080
    probes: Probes = field(default_factory=Probes)
    #: CPU the scheduler reserves per pod (the HPA's CPU utilization is of this).
    cpu_request: Annotated[str, _CPU] = "250m"
    #: CPU a pod may burst to.
    cpu_limit: Annotated[str, _CPU] = "1"
    #: Memory the scheduler reserves per pod.
    memory_request: Annotated[str, _MEMORY] = "512Mi"
    #: Memory a pod may use before it is killed (equal to the request: no overcommit).
    memory_limit: Annotated[str, _MEMORY] = "512Mi"
    #: Pods the autoscaler never goes below (2+ survives a node loss).
    min_replicas: _REPLICAS = 2
    #: Pods the autoscaler never exceeds; bounds cost and database connections. At most the
    #: stack's ``cofounder:scaling.maxReplicasPerApp``.
    max_replicas: _REPLICAS = 10
    #: Average CPU utilization (of the request) the HPA aims for.
    cpu_target_percent: Annotated[int, Between(10, 100)] = 70
    #: Average memory utilization (of the request) the HPA aims for.
    memory_target_percent: Annotated[int, Between(10, 100)] = 80
    #: Target of the per-pod ``cofounder_active_agents`` metric (average per pod); null: not scaled on it.
    active_agents_target: Annotated[float | None, Between(0.1, 1000)] = None
    #: Target of the per-pod ``cofounder_http_requests_per_second`` metric (requests per second each
    #: pod should serve, from the load test: ``make tune``); null: not scaled on it. Unlike CPU it does
    #: not saturate, and it shows a step one scrape after it is scraped.
    requests_per_second_target: Annotated[float | None, Between(0.1, 100000)] = None
    scale_up: ScalingRules = field(default_factory=fast_scale_up)
    scale_down: ScalingRules = field(default_factory=gentle_scale_down)
    #: Extra pods during a rollout (maxUnavailable is always 0).
    max_surge: Annotated[str, Matches(r"[0-9]+%?", "a value matching [0-9]+%?")] = "25%"
    #: Per-pod database pool size (0: no database); the connection budget counts it at maxReplicas.
    db_pool_size: Annotated[int, Between(0, 500)] = 0
    #: False for pods running long agent work: the cluster autoscaler then never evicts them.
    safe_to_evict: bool = True
    #: The pod calls AWS APIs through IRSA (a role for its service account, API token mounted).
    needs_aws: bool = False
    #: The data tier's settings the pod gets as environment variables: database, redis, queue
    #: (queue: its IRSA role may enqueue agent runs, so it needs needsAws).
    data_access: list[DataAccess] = field(default_factory=list)
    #: The Valkey users the pod gets (one REDIS_URL_<ROLE> each); required with redis in dataAccess.
    redis_roles: list[RedisRole] = field(default_factory=list)
    #: Runs agent jobs from the agent queues: KEDA scales it on the weighted backlog of every tier,
    #: and its IRSA role may receive, delete and delay messages instead of enqueueing.
    consumes_agent_queue: bool = False
    #: Pause before SIGTERM; behind the ALB at least 15 s (capacity/drain.py).
    pre_stop_sleep_seconds: Annotated[int, Between(0, 120)] = 15
    #: preStop plus the longest request the app serves; behind the ALB it also sets the target
    #: group's deregistration delay (this minus preStopSleepSeconds).
    termination_grace_period_seconds: Annotated[int, Between(1, 7200)] = 75

    def checks(self):
        if self.min_replicas > self.max_replicas:
            yield "min_replicas", self.min_replicas, f"at most maxReplicas ({self.max_replicas})"
        if self.termination_grace_period_seconds <= self.pre_stop_sleep_seconds:
            yield ("termination_grace_period_seconds", self.termination_grace_period_seconds,
                   f"more than preStopSleepSeconds ({self.pre_stop_sleep_seconds}) so connections drain")
        if (self.db_pool_size > 0) != ("database" in self.data_access):
            yield ("db_pool_size", self.db_pool_size,
                   "above 0 exactly when dataAccess includes database (its pool counts in the connection budget)")
        if self.consumes_agent_queue and not (self.needs_aws and "queue" in self.data_access):
            yield ("consumes_agent_queue", True,
                   "needsAws true and queue in dataAccess: a consumer reads the AGENT_QUEUE_URLS with its IRSA role")
        elif "queue" in self.data_access and not self.needs_aws:
            yield ("needs_aws", False,
                   "true with queue in dataAccess: the pod enqueues agent runs with its IRSA role")
        if self.consumes_agent_queue and self.active_agents_target is not None:
            yield ("active_agents_target", self.active_agents_target,
                   "null for a consumesAgentQueue app: its running agents are its in-flight messages, which "
                   "the queue scaler already counts, and KEDA's composite metric replaces every external trigger")
        if self.consumes_agent_queue and self.requests_per_second_target is not None:
            yield ("requests_per_second_target", self.requests_per_second_target,
                   "null for a consumesAgentQueue app: KEDA scales it on the queue, not on requests")
        if len(set(self.data_access)) != len(self.data_access):
            yield "data_access", self.data_access, "distinct entries"
        if bool(self.redis_roles) != ("redis" in self.data_access):
            yield ("redis_roles", self.redis_roles,
                   "at least one Valkey user exactly when dataAccess includes redis (and none otherwise)")
        if len(set(self.redis_roles)) != len(self.redis_roles):
            yield "redis_roles", self.redis_roles, "distinct entries"


@dataclass(frozen=True, kw_only=True)
class QueueTierScaling:
    """One priority tier's queue in the worker's scaler."""

    #: The tier (``QueueTier.name``); its trigger is ``queue_<tier>`` (capacity/queue_scaling.py).
    tier: str
    queue_url: pulumi.Input[str]
    #: Agent slots kept per message of the tier (``QueueTier.scaling_weight``).
    weight: float


@dataclass(frozen=True, kw_only=True)
class QueueScaling:
    """Scaling on the agent queues through KEDA (replaces the native HPA by a ScaledObject)."""

    #: The tiers' queues, highest priority first.
    tiers: Sequence[QueueTierScaling]
    #: Agent runs one pod executes at once: the composite metric's target per pod.
    concurrency_per_pod: int
    aws_region: str
    #: The KEDA installation (its CRDs must exist before the ScaledObject); None if managed elsewhere.
    keda: pulumi.Resource | None = None

    @property
    def formula(self) -> str:
        """KEDA's ``scalingModifiers.formula``: agent slots the backlog of every tier needs."""
        return queue_scaling.formula((t.tier, t.weight) for t in self.tiers)


@dataclass(frozen=True, kw_only=True)
class LoadBalancerTarget:
    """The ALB target group the app's pods are registered in, through a TargetGroupBinding."""

    target_group_arn: pulumi.Input[str]
    #: The target group's VPC: the controller's webhook fills it in on create and refuses any
    #: later change, so it is declared rather than left to the webhook.
    vpc_id: pulumi.Input[str]
    #: The AWS Load Balancer Controller release: its CRD and webhook must exist first, and it
    #: must still run when the binding is deleted (it deregisters the pods, then drops the finalizer).
    controller: pulumi.Resource | None = None


@dataclass(frozen=True, kw_only=True)
class AppServiceArgs(AppServiceSettings):
    """Settings plus the wiring and the component's fixed choices."""

    #: Namespace of the app (the cluster's app namespace, Pod Security ``restricted``).
    namespace: pulumi.Input[str]
    #: The image as nodes pull it, when ``image`` is an ``ecr:`` reference (ImageRegistry.image_uri).
    pulled_image: pulumi.Input[str] | None = None
    #: IRSA role for the pod's service account (create it with IrsaRole); None: no AWS access and no API token.
    role_arn: pulumi.Input[str] | None = None
    #: Secrets and ConfigMaps whose keys become environment variables (the names of ``data_access``).
    env_from_secrets: Sequence[pulumi.Input[str]] = ()
    env_from_config_maps: Sequence[pulumi.Input[str]] = ()
    #: Versions of the credentials in those Secrets (a pod template annotation): a change rolls the pods.
    credentials_version: pulumi.Input[str] | None = None
    #: Also scale on queue depth (KEDA ScaledObject instead of the native HPA); None: native HPA.
    queue_scaling: QueueScaling | None = None
    #: Serve behind the ALB: a TargetGroupBinding registers the pods in this target group.
    load_balancer: LoadBalancerTarget | None = None
    run_as_user: int = 10001
    #: ``DoNotSchedule`` keeps replicas balanced over zones; ``ScheduleAnyway`` favours placement speed.
    zone_spread_when_unsatisfiable: str = "DoNotSchedule"
    #: Voluntary disruptions (node drains) take at most this many pods at a time.
    pdb_max_unavailable: int = 1
    labels: dict[str, str] = field(default_factory=dict)

    def checks(self):
        # A component used from Python (not the stack file) may not have its data-tier names
        # wired; only the rules about what the pod itself declares apply.
        for problem in AppServiceSettings.checks(self):
            if problem[0] not in ("db_pool_size", "consumes_agent_queue", "needs_aws"):
                yield problem
        if self.queue_scaling is not None:
            if not self.queue_scaling.tiers:
                yield "queue_scaling", [], "at least one queue tier"
            if self.active_agents_target is not None:
                yield ("active_agents_target", self.active_agents_target,
                       "null with queue_scaling: KEDA's composite metric replaces every external trigger")


def _rules(rules: ScalingRules) -> dict:
    return {
        "stabilizationWindowSeconds": rules.stabilization_window_seconds,
        "selectPolicy": rules.select_policy,
        "policies": [{"type": p.type, "value": p.value, "periodSeconds": p.period_seconds}
                     for p in rules.policies],
    }


def _queue_triggers(args: AppServiceArgs, queue: QueueScaling, auth_name: str) -> list[dict]:
    """The ScaledObject's triggers: cpu, memory, and one aws-sqs-queue trigger per tier."""
    # KEDA keeps cpu and memory as the HPA's resource metrics. Every other trigger feeds the
    # composite metric of scalingModifiers (controllers/keda/hpa.go at v2.18.1: "overwrite
    # external metrics in returned array with composite metric ONLY (keep resource metrics)"),
    # so the HPA takes the larger of cpu, memory and the weighted backlog of all tiers. Without
    # the formula, one trigger per tier would give one metric each and the HPA the largest
    # of them (Kubernetes' HPA algorithm: "the largest of the desired replica counts is
    # chosen"; keda-docs 2.18 scalers/rabbitmq-queue.md: "HPA will scale based on the largest
    # result considering each of triggers independently"): running low-tier runs would then
    # hold the slots a new high-tier run needs. The sum gives every waiting or running
    # message of every tier its slots (scaleOnInFlight counts ApproximateNumberOfMessages +
    # ApproximateNumberOfMessagesNotVisible; keda-docs 2.18 scalers/aws-sqs.md).
    triggers: list[dict] = [
        {"type": "cpu", "metricType": "Utilization",
         "metadata": {"value": str(args.cpu_target_percent)}},
        {"type": "memory", "metricType": "Utilization",
         "metadata": {"value": str(args.memory_target_percent)}},
    ]
    for tier in queue.tiers:
        triggers.append({
            "type": "aws-sqs-queue", "name": queue_scaling.trigger_name(tier.tier),
            "authenticationRef": {"name": auth_name},
            # queueLength is this trigger's own target (pkg/scalers/aws_sqs_queue_scaler.go at
            # v2.18.1, an integer); the composite's target (scalingModifiers) is what the HPA uses.
            "metadata": {"queueURL": tier.queue_url, "awsRegion": queue.aws_region,
                         "queueLength": str(queue.concurrency_per_pod),
                         "scaleOnInFlight": "true", "scaleOnDelayed": "false"}})
    return triggers


class AppService(pulumi.ComponentResource):
    """A Deployment with its Service, ServiceAccount, PDB and one autoscaler (HPA or KEDA)."""

    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    service_account_name: pulumi.Output[str]
    #: ``HorizontalPodAutoscaler`` or ``ScaledObject``: the one object that sets the replica count.
    autoscaler_kind: str
    #: Labels that select the app's pods (the Service's, the PDB's and the monitors' selector).
    selector: dict[str, str]

    def __init__(self, name: str, args: AppServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:apps:AppService", name, None, opts)
        require_valid(f"AppService {name}", args)
        selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "cofounder"}
        # component=app: what the pack's k8s-app-image-from-project-registry knows an app by
        labels = {**args.labels, **selector, "app.kubernetes.io/managed-by": "pulumi",
                  "app.kubernetes.io/component": "app"}

        def meta(annotations: dict | None = None) -> dict:
            return {"name": name, "namespace": args.namespace, "labels": labels,
                    **({"annotations": annotations} if annotations else {})}

        account = self._service_account(name, args, meta)
        service = self._service(name, meta(), selector)
        # Before the Deployment: the controller injects its readiness gate only into pods
        # created while a binding refers to their Service (docs/deploy/pod_readiness_gate.md).
        binding = self._target_group_binding(name, args, meta(), service) if args.load_balancer else None
        deployment = self._deployment(name, args, meta(), labels, selector, account, binding)
        self._disruption_budget(name, args, meta(), selector)

        target_ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment.metadata.name}
        behavior = {"scaleUp": _rules(args.scale_up), "scaleDown": _rules(args.scale_down)}
        if args.queue_scaling is None:
            self._hpa(name, args, meta(), target_ref, behavior)
            self.autoscaler_kind = "HorizontalPodAutoscaler"
        else:
            self._scaled_object(name, args, meta, target_ref, behavior)
            self.autoscaler_kind = "ScaledObject"

        self.selector = selector
        self.deployment_name = deployment.metadata.name
        self.service_name = pulumi.Output.from_input(name)
        self.service_account_name = account.metadata.name
        self.register_outputs({
            "deployment_name": self.deployment_name,
            "service_name": self.service_name,
            "service_account_name": self.service_account_name,
        })

    def _service_account(self, name: str, args: AppServiceArgs,
                         meta: Callable[..., dict]) -> k8s.core.v1.ServiceAccount:
        """The app's ServiceAccount (annotated with its IRSA role when it has one), no API token."""
        needs_aws = args.role_arn is not None
        # No Kubernetes API token in any app pod: the apps never call the API server. IRSA does not
        # need it: the pod identity webhook mounts its own projected token (audience
        # sts.amazonaws.com) as the volume aws-iam-token, whatever automountServiceAccountToken says
        # (aws/amazon-eks-pod-identity-webhook pkg/handler/handler.go, getPodSpecPatch); automount
        # only governs the kube-api-access volume.
        return k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta({"eks.amazonaws.com/role-arn": args.role_arn} if needs_aws else None),
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _service(self, name: str, metadata: dict, selector: dict) -> k8s.core.v1.Service:
        """The app's ClusterIP Service on its http port."""
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata=metadata,
            spec={"type": "ClusterIP", "selector": selector,
                  "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http", "protocol": "TCP"}]},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _deployment(self, name: str, args: AppServiceArgs, metadata: dict, labels: dict, selector: dict,
                    account: k8s.core.v1.ServiceAccount,
                    binding: k8s.apiextensions.CustomResource | None) -> k8s.apps.v1.Deployment:
        """The app's Deployment: rolling with maxUnavailable 0, replicas left to the autoscaler."""
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=metadata,
            spec={
                # No "replicas": the autoscaler owns it (see the module docstring).
                "selector": {"matchLabels": selector},
                "revisionHistoryLimit": 5,
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": 0, "maxSurge": args.max_surge}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {
                        # Explicit either way: the emptyDir on /tmp would otherwise make the
                        # cluster autoscaler treat every pod as unevictable local storage.
                        "cluster-autoscaler.kubernetes.io/safe-to-evict":
                            "true" if args.safe_to_evict else "false",
                        DB_POOL_SIZE_ANNOTATION: str(args.db_pool_size),
                        **({CREDENTIALS_ANNOTATION: args.credentials_version}
                           if args.credentials_version is not None else {})}},
                    "spec": self._pod_spec(name, args, selector, account),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[binding] if binding else []),
        )

    def _disruption_budget(self, name: str, args: AppServiceArgs, metadata: dict, selector: dict) -> None:
        """The app's PodDisruptionBudget."""
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=metadata,
            spec={"selector": {"matchLabels": selector},
                  "maxUnavailable": args.pdb_max_unavailable,
                  # A crash-looping pod must not block node drains.
                  "unhealthyPodEvictionPolicy": "AlwaysAllow"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _target_group_binding(self, name: str, args: AppServiceArgs, metadata: dict,
                              service: k8s.core.v1.Service) -> k8s.apiextensions.CustomResource:
        target = args.load_balancer
        assert target is not None
        depends = [service] + ([target.controller] if target.controller is not None else [])
        return k8s.apiextensions.CustomResource(
            f"{name}-tgb",
            api_version=TARGET_GROUP_BINDING_API_VERSION,
            kind="TargetGroupBinding",
            metadata=metadata,
            # Every field the webhook would default is declared: it refuses to change
            # targetGroupARN, targetType, ipAddressType or vpcID after creation.
            spec={
                "serviceRef": {"name": service.metadata.name, "port": SERVICE_PORT},
                "targetGroupARN": target.target_group_arn,
                "targetType": "ip",
                "ipAddressType": "ipv4",
                "targetGroupProtocol": "HTTP",
                "vpcID": target.vpc_id,
            },
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=depends,
                # A new target group needs a new binding (the ARN is immutable), and one target
                # group takes one binding: the old one goes first.
                replace_on_changes=["spec.targetGroupARN", "spec.vpcID"], delete_before_replace=True),
        )

    @staticmethod
    def _pod_spec(name: str, args: AppServiceArgs, selector: dict, account) -> dict:
        probe_port = args.probes.port or args.port

        def probe(path: str, period: int, failures: int) -> dict:
            return {"httpGet": {"path": path, "port": probe_port}, "periodSeconds": period,
                    "timeoutSeconds": 2, "failureThreshold": failures}

        env_from = ([{"secretRef": {"name": s}} for s in args.env_from_secrets]
                    + [{"configMapRef": {"name": c}} for c in args.env_from_config_maps])

        def spread(key: str, when: str) -> dict:
            # matchLabelKeys: during a rollout the new ReplicaSet is spread on its own.
            return {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": when,
                    "labelSelector": {"matchLabels": selector}, "matchLabelKeys": ["pod-template-hash"]}

        container: dict[str, Any] = {
            "name": name,
            "image": args.pulled_image if args.pulled_image is not None else args.image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": args.port, "protocol": "TCP"}],
            "resources": {"requests": {"cpu": args.cpu_request, "memory": args.memory_request},
                          "limits": {"cpu": args.cpu_limit, "memory": args.memory_limit}},
            # Up to 2 minutes to boot; liveness only starts once the startup probe passed.
            "startupProbe": probe(args.probes.startup_path, args.probes.startup_period_seconds,
                                  math.ceil(120 / args.probes.startup_period_seconds)),
            "readinessProbe": probe(args.probes.readiness_path, args.probes.readiness_period_seconds,
                                    max(3, math.ceil(15 / args.probes.readiness_period_seconds))),
            "livenessProbe": probe(args.probes.liveness_path, 10, 3),
            "lifecycle": {"preStop": {"sleep": {"seconds": args.pre_stop_sleep_seconds}}},
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
        if env_from:
            container["envFrom"] = env_from
        return {
            "serviceAccountName": account.metadata.name,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": args.termination_grace_period_seconds,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": args.run_as_user,
                "runAsGroup": args.run_as_user,
                "fsGroup": args.run_as_user,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "topologySpreadConstraints": [
                spread("topology.kubernetes.io/zone", args.zone_spread_when_unsatisfiable),
                spread("kubernetes.io/hostname", "ScheduleAnyway"),
            ],
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
        }

    def _hpa(self, name: str, args: AppServiceArgs, metadata: dict, target_ref: dict,
             behavior: dict) -> None:
        metrics = [
            {"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": args.cpu_target_percent}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {
                "type": "Utilization", "averageUtilization": args.memory_target_percent}}},
        ]
        if args.active_agents_target is not None:
            metrics.append({"type": "Pods", "pods": {
                "metric": {"name": ACTIVE_AGENTS_METRIC},
                "target": {"type": "AverageValue", "averageValue": plain(args.active_agents_target)}}})
        if args.requests_per_second_target is not None:
            metrics.append({"type": "Pods", "pods": {
                "metric": {"name": REQUESTS_METRIC},
                "target": {"type": "AverageValue", "averageValue": plain(args.requests_per_second_target)}}})
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=metadata,
            spec={"scaleTargetRef": target_ref, "minReplicas": args.min_replicas,
                  "maxReplicas": args.max_replicas, "metrics": metrics, "behavior": behavior},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _scaled_object(self, name: str, args: AppServiceArgs, meta, target_ref: dict,
                       behavior: dict) -> None:
        """The KEDA ScaledObject (and its TriggerAuthentication) scaling on every tier's queue."""
        queue = args.queue_scaling
        assert queue is not None  # only called for an app that scales on a queue
        depends = [queue.keda] if queue.keda is not None else []
        # Identity of KEDA's operator (its IRSA role may only read the tier queues' attributes).
        auth_name = f"{name}-aws"
        auth = k8s.apiextensions.CustomResource(
            f"{name}-keda-auth",
            api_version=KEDA_API_VERSION,
            kind="TriggerAuthentication",
            metadata={**meta(), "name": auth_name},
            spec={"podIdentity": {"provider": "aws", "identityOwner": "keda"}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        modifiers = {"formula": queue.formula, "target": str(queue.concurrency_per_pod),
                     "metricType": "AverageValue"}
        k8s.apiextensions.CustomResource(
            f"{name}-scaledobject",
            api_version=KEDA_API_VERSION,
            kind="ScaledObject",
            metadata=meta(),
            spec={
                "scaleTargetRef": target_ref,
                "minReplicaCount": args.min_replicas,
                "maxReplicaCount": args.max_replicas,
                # Same cadence as the HPA controller's sync for the external triggers.
                "pollingInterval": 15,
                "advanced": {"horizontalPodAutoscalerConfig": {"name": name, "behavior": behavior},
                             "scalingModifiers": modifiers},
                "triggers": _queue_triggers(args, queue, auth_name),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends, auth]),
        )
