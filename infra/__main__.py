"""The CoFounder stack: the stack file's settings in, the architecture declared, a few outputs out.

The Pulumi CLI runs this file (``main: infra/``); the offline preview, the policy runner and the
tests run the very same file under the SDK's mock runtime. Each step is a module of infra/ that
hands each component its settings section whole plus the wiring only the program knows.
"""

import pulumi

from components import declared
from infra import config
from infra.apps import deploy_apps, isolate_apps
from infra.budget import build_budget
from infra.data import build_data_tier
from infra.front_door import build_edge, build_load_balancer
from infra.observability import build_alarms, build_monitoring, build_tracing
from infra.platform import build_platform

recorder = declared.record()                        # first: every resource as the engine gets it, for the budget
cfg = config.load()

platform = build_platform(cfg)                      # VPC, EKS, Cluster Autoscaler, metrics-server
lb = build_load_balancer(cfg, platform)             # internal ALB + AWS Load Balancer Controller
data = build_data_tier(cfg, platform)               # RDS + roles + PgBouncer, Valkey users, SQS, ESO, app Secrets
monitoring = build_monitoring(cfg, platform)        # Prometheus, Grafana, monitors, alert rules
build_alarms(cfg, data, lb)                         # CloudWatch alarms on the managed services
tracing = build_tracing(cfg, platform)              # OpenTelemetry Collector -> X-Ray, the apps' SDK env
tier = deploy_apps(cfg, platform, data, lb, monitoring, tracing)  # frontend, backend, worker, autoscalers
isolate_apps(cfg, platform, data, lb, tier, monitoring, tracing)  # default deny, one NetworkPolicy per flow
edge = build_edge(cfg, lb) if lb else None          # WAF + CloudFront in front of everything
budget = build_budget(cfg, recorder)                # last: the AWS Budget from the cost of all of the above

network, cluster = platform.network, platform.cluster
pulumi.export("environment", cfg.environment)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("privateSubnetIds", network.private_subnet_ids)
pulumi.export("publicSubnetIds", network.public_subnet_ids)
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("oidcIssuerUrl", cluster.oidc_issuer_url)
pulumi.export("kubeconfig", cluster.kubeconfig)  # a secret: `pulumi stack output kubeconfig --show-secrets`
pulumi.export("appNamespace", cluster.app_namespace)
pulumi.export("headroom", cluster.headroom.as_dict())
pulumi.export("postgresAddress", data.postgres.address)
pulumi.export("redisConfigurationEndpoint", data.redis.configuration_endpoint)
pulumi.export("agentQueueUrls", data.agent_queue.queue_urls)              # tier -> URL, highest priority first
pulumi.export("agentDeadLetterQueueUrls", data.agent_queue.dlq_urls)
pulumi.export("connectionBudget", data.connection_budget.as_dict())
pulumi.export("appDataSecretNames", data.app_data.secret_names)            # app -> the Secrets it loads
pulumi.export("databaseLogins", {p: r.username for p, r in data.database_roles.roles.items()})
# What this deploy's rotation schedule resolved to (capacity/rotation.py): a new value rotates.
pulumi.export("credentialsGenerations", data.credentials_generations)
pulumi.export("appDataConfigMapName", data.app_data.queue_config_map_name)
pulumi.export("imageRepositoryUrls", tier.registry.repository_urls)  # app -> the URI to push to
# Read by the time-to-scale report and documented targets for the load test.
pulumi.export("scalingTargets", cfg.scaling.as_camel())
# Read by the cost report: the usage assumptions and the price table's region.
pulumi.export("costAssumptions", {**cfg.cost.as_camel(), "region": cfg.region})
if budget is not None:
    pulumi.export("budgetName", budget.budget_name)
    pulumi.export("budgetLimitUsd", budget.limit_amount)          # maximum-scale estimate x (1 + margin)
    pulumi.export("costAlertTopicArn", budget.topic_arn)
if edge is not None and lb is not None:
    pulumi.export("url", edge.url)
    pulumi.export("edgeDomainName", edge.domain_name)
    pulumi.export("edgeDistributionId", edge.distribution_id)
    pulumi.export("edgeBucketName", edge.bucket_name)
    pulumi.export("loadBalancerDnsName", lb.load_balancer.dns_name)
