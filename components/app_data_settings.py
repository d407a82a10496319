"""AppDataSettings: the data tier's connection settings, handed to the app pods.

Builds, in the app namespace, one Secret with ``DATABASE_URL`` (direct to RDS, for migrations),
``DATABASE_URL_POOLED`` (through PgBouncer, for application queries) and ``REDIS_URL``, all built
from Pulumi secrets, and one ConfigMap with ``QUEUE_URL`` (an SQS URL is not a secret: access
is IAM). Apps load both with ``envFrom``; their names are outputs (``secret_name``,
``config_map_name``). Both are auto-named: a changed URL is a new object, so the apps that
reference the new name roll.
"""

from __future__ import annotations

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
    queue_url: pulumi.Input[str]
    labels: dict[str, str] = field(default_factory=dict)


class AppDataSettings(pulumi.ComponentResource):
    """A Secret and a ConfigMap with the data tier's URLs, for ``envFrom`` in the app pods."""

    secret_name: pulumi.Output[str]
    config_map_name: pulumi.Output[str]

    def __init__(self, name: str, args: AppDataSettingsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:AppDataSettings", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**args.labels, "app.kubernetes.io/part-of": "cofounder", "app.kubernetes.io/component": "data"}

        secret = Secret(
            f"{name}-secret",
            metadata={"namespace": args.namespace, "labels": labels},
            type="Opaque",
            string_data=pulumi.Output.secret({
                "DATABASE_URL": args.database_url,
                "DATABASE_URL_POOLED": args.database_url_pooled,
                "REDIS_URL": args.redis_url,
            }),
            opts=child,
        )
        config_map = ConfigMap(
            f"{name}-config",
            metadata={"namespace": args.namespace, "labels": labels},
            data={"QUEUE_URL": args.queue_url},
            opts=child,
        )
        self.secret_name = secret.metadata["name"]
        self.config_map_name = config_map.metadata["name"]
        self.register_outputs({"secret_name": self.secret_name, "config_map_name": self.config_map_name})
