"""The data tier: RDS PostgreSQL behind PgBouncer, ElastiCache (Valkey), the SQS agent queues (one
per priority tier), and the Secrets and ConfigMap that hand their connection settings to the apps."""

from __future__ import annotations

from dataclasses import dataclass

from capacity.connections import Budget
from components import args_for
from components.app_data_settings import AppDataSettings, AppDataSettingsArgs
from components.pgbouncer import PgBouncer, PgBouncerArgs
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
    app_data: AppDataSettings
    #: cofounder:apps maxReplicas x dbPoolSize against PgBouncer and RDS max_connections (the
    #: loader has already refused a stack where it does not fit).
    connection_budget: Budget


def build_data_tier(cfg: StackConfig, platform: Platform) -> DataTier:
    network, cluster = platform.network, platform.cluster
    # Admitted on 5432/6379: the EKS cluster security group, which sits on every node and pod ENI
    # (PgBouncer, migration jobs and the apps' Redis clients alike); nothing else in the VPC.
    private = dict(vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids,
                   allowed_security_group_ids=[cluster.node_security_group_id])
    postgres = Postgres("postgres", args_for(cfg.postgres, PostgresArgs, identifier=f"{cfg.name_prefix}-postgres",
                                             **private))
    redis = Redis("redis", args_for(cfg.redis, RedisArgs, identifier=f"{cfg.name_prefix}-redis", **private))
    agent_queue = Queue("agent-queue", args_for(cfg.queues, QueueArgs, queue_name=cfg.agent_queue_name))
    pgbouncer = PgBouncer("pgbouncer", args_for(
        cfg.pgbouncer, PgBouncerArgs, namespace=cluster.app_namespace, db_host=postgres.address,
        db_name=postgres.db_name, db_user=postgres.master_username, db_password=postgres.master_password),
        opts=platform.in_cluster)
    # What the apps load with envFrom, by cofounder:apps.<app>.dataAccess.
    app_data = AppDataSettings("app-data", AppDataSettingsArgs(
        namespace=cluster.app_namespace, database_url=postgres.database_url,
        database_url_pooled=pgbouncer.database_url_pooled, redis_url=redis.redis_url,
        queue_settings=agent_queue.app_settings), opts=platform.in_cluster)
    return DataTier(postgres=postgres, redis=redis, agent_queue=agent_queue, pgbouncer=pgbouncer,
                    app_data=app_data, connection_budget=connection_budget(cfg))
