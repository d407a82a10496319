"""The data tier: RDS PostgreSQL behind PgBouncer with its roles by purpose, ElastiCache (Valkey)
with one user per role, the SQS agent queues (one per priority tier), External Secrets Operator,
and the Secrets and ConfigMap that hand their connection settings to the apps."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from capacity.connections import Budget
from capacity.rotation import effective_generation, rotation_date
from components import args_for
from components.app_data_settings import AppCredentials, AppDataSettings, AppDataSettingsArgs
from components.database_roles import DatabaseRoles, DatabaseRolesArgs
from components.external_secrets import ExternalSecrets, ExternalSecretsArgs
from components.pgbouncer import PgBouncer, PgBouncerArgs, rds_ca_bundle
from components.postgres import Postgres, PostgresArgs
from components.queue import Queue, QueueArgs
from components.redis import Redis, RedisArgs
from infra.checks import connection_budget
from infra.platform import Platform
from infra.stack import StackConfig


@dataclass(frozen=True)
class DataTier:
    postgres: Postgres
    redis: Redis
    agent_queue: Queue
    pgbouncer: PgBouncer
    external_secrets: ExternalSecrets
    database_roles: DatabaseRoles
    app_data: AppDataSettings
    #: The generations this deploy uses (configured plus scheduled periods): postgres, redis.
    credentials_generations: dict[str, int]
    #: cofounder:apps maxReplicas x dbPoolSize against PgBouncer and RDS max_connections (the
    #: loader has already refused a stack where it does not fit).
    connection_budget: Budget


def build_data_tier(cfg: StackConfig, platform: Platform) -> DataTier:
    network, cluster = platform.network, platform.cluster
    # Admitted on 5432/6379: the EKS cluster security group, which sits on every node and pod ENI
    # (PgBouncer, the bootstrap Job and the apps' Redis clients alike); nothing else in the VPC.
    private = dict(vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids,
                   allowed_security_group_ids=[cluster.node_security_group_id])
    postgres = Postgres("postgres", args_for(cfg.postgres, PostgresArgs, identifier=f"{cfg.name_prefix}-postgres",
                                             **private))
    # The generations this deploy uses: the configured ones plus the scheduled periods gone by.
    today = rotation_date()
    generations = {section: effective_generation(s.credentials_generation, s.credentials_rotation_days, today)
                   for section, s in (("postgres", cfg.postgres), ("redis", cfg.redis))}
    redis = Redis("redis", args_for(cfg.redis, RedisArgs, identifier=f"{cfg.name_prefix}-redis",
                                    secret_name_prefix=cfg.name_prefix, **private,
                                    credentials_generation=generations["redis"]))
    agent_queue = Queue("agent-queue", args_for(cfg.queues, QueueArgs, queue_name=cfg.agent_queue_name))
    eso = ExternalSecrets("external-secrets", args_for(cfg.external_secrets, ExternalSecretsArgs),
                          opts=platform.in_cluster)
    # The master user only creates the roles; everything else connects as one of them.
    roles = DatabaseRoles("database-roles", DatabaseRolesArgs(
        namespace=cluster.app_namespace, namespace_name=cfg.cluster.app_namespace, db_host=postgres.address,
        db_name=postgres.db_name,
        master_secret_arn=postgres.master_secret_arn, secrets_key_arn=postgres.secrets_key_arn,
        generation=generations["postgres"], secret_name_prefix=cfg.name_prefix,
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url, region=cfg.region,
        external_secrets_release=eso.release, refresh_interval=eso.refresh_interval,
        server_ca_pem=rds_ca_bundle(), tags={"component": "data"}), opts=platform.in_cluster)
    auth = roles.roles["pgbouncer_auth"]
    pgbouncer = PgBouncer("pgbouncer", args_for(
        cfg.pgbouncer, PgBouncerArgs, namespace=cluster.app_namespace, db_host=postgres.address,
        db_name=postgres.db_name, db_user=auth.username, db_password=auth.password),
        opts=_after(platform, roles))
    # What the apps load with envFrom, by cofounder:apps.<app>.dataAccess and redisRoles.
    app_data = AppDataSettings("app-data", AppDataSettingsArgs(
        namespace=cluster.app_namespace, region=cfg.region,
        apps={name: AppCredentials(service_account=name, database="database" in app.data_access,
                                   redis_roles=list(app.redis_roles)) for name, app in cfg.apps.items()},
        db_host=postgres.address, db_port=5432, pooler_host=pgbouncer.host, pooler_port=pgbouncer.port,
        db_name=postgres.db_name, app_role=roles.roles["app"], migrator_role=roles.roles["migrator"],
        redis_endpoint=redis.configuration_endpoint, redis_port=6379, redis_users=redis.users,
        queue_settings=agent_queue.app_settings, external_secrets_release=eso.release,
        refresh_interval=eso.refresh_interval, depends_on=[roles.job]), opts=platform.in_cluster)
    return DataTier(postgres=postgres, redis=redis, agent_queue=agent_queue, pgbouncer=pgbouncer,
                    external_secrets=eso, database_roles=roles, app_data=app_data,
                    credentials_generations=generations, connection_budget=connection_budget(cfg))


def _after(platform: Platform, roles: DatabaseRoles) -> pulumi.ResourceOptions:
    """In the cluster, once the Job has set the roles' passwords (PgBouncer logs in as pgbouncer_auth)."""
    return pulumi.ResourceOptions.merge(platform.in_cluster, pulumi.ResourceOptions(depends_on=[roles.job]))
