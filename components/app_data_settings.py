"""AppDataSettings: the data tier's connection settings, handed to the app pods.

Builds, in the app namespace, the objects the apps load with ``envFrom``
(``cofounder:apps.<app>.envFromSecrets`` / ``envFromConfigMaps``):
- Secret ``cofounder-database``: ``DATABASE_URL`` (direct to RDS, for migrations) and
  ``DATABASE_URL_POOLED`` (through PgBouncer, for application queries);
- Secret ``cofounder-redis``: ``REDIS_URL`` (``rediss://`` with the auth token);
- ConfigMap ``cofounder-queue``: the agent queues' settings (``Queue.app_settings``: the tier
  names and queue URLs in priority order, attempts, backoff base, longest run, concurrency);
  SQS URLs are not secrets, access is IAM.
The Secrets are built from Pulumi secrets only. The names are fixed because the apps' stack
config names them; a changed URL updates the object in place, and pods pick it up at their next
restart (rotating a password therefore means a rollout of the apps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.core.v1 import ConfigMap, Secret


@dataclass(frozen=True, kw_only=True)
class AppDataSettingsArgs:
    """Inputs of AppDataSettings."""

    namespace: pulumi.Input[str]
    #: Direct Postgres URL (secret).
    database_url: pulumi.Input[str]
    #: Postgres URL through PgBouncer (secret).
    database_url_pooled: pulumi.Input[str]
    #: ``rediss://`` URL with the auth token (secret).
    redis_url: pulumi.Input[str]
    #: The ConfigMap's data: the agent queues' settings (``Queue.app_settings``).
    queue_settings: Mapping[str, pulumi.Input[str]]
    database_secret_name: str = "cofounder-database"
    redis_secret_name: str = "cofounder-redis"
    queue_config_map_name: str = "cofounder-queue"
    labels: dict[str, str] = field(default_factory=dict)


class AppDataSettings(pulumi.ComponentResource):
    """Two Secrets and a ConfigMap with the data tier's URLs, for ``envFrom`` in the app pods."""

    database_secret_name: pulumi.Output[str]
    redis_secret_name: pulumi.Output[str]
    queue_config_map_name: pulumi.Output[str]

    def __init__(self, name: str, args: AppDataSettingsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:AppDataSettings", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, "app.kubernetes.io/part-of": "cofounder", "app.kubernetes.io/component": "data"}

        def metadata(object_name: str) -> dict:
            return {"name": object_name, "namespace": args.namespace, "labels": labels}

        database = Secret(
            f"{name}-database",
            metadata=metadata(args.database_secret_name),
            type="Opaque",
            string_data=pulumi.Output.secret({
                "DATABASE_URL": args.database_url,
                "DATABASE_URL_POOLED": args.database_url_pooled,
            }),
            opts=child,
        )
        redis = Secret(
            f"{name}-redis",
            metadata=metadata(args.redis_secret_name),
            type="Opaque",
            string_data=pulumi.Output.secret({"REDIS_URL": args.redis_url}),
            opts=child,
        )
        queue = ConfigMap(
            f"{name}-queue",
            metadata=metadata(args.queue_config_map_name),
            data=dict(args.queue_settings),
            opts=child,
        )
        self.database_secret_name = database.metadata["name"]
        self.redis_secret_name = redis.metadata["name"]
        self.queue_config_map_name = queue.metadata["name"]
        self.register_outputs({
            "database_secret_name": self.database_secret_name,
            "redis_secret_name": self.redis_secret_name,
            "queue_config_map_name": self.queue_config_map_name,
        })
