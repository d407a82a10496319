"""AppDataSettings: the data tier's connection settings, handed to each app's pods.

Builds, in the app namespace, what the apps load with ``envFrom`` (by ``cofounder:apps.<app>.dataAccess``):
- per app with ``database`` or ``redis``: a SecretStore named after its service account (External
  Secrets Operator, IRSA: components/external_secrets.py) and, through it,
  - ExternalSecret/Secret ``<app>-database``: ``DATABASE_URL`` (direct to RDS with
    ``sslmode=require``, as a ``migrator`` login, for migrations) and ``DATABASE_URL_POOLED``
    (through PgBouncer, as an ``app`` login, for application queries);
  - ExternalSecret/Secret ``<app>-redis``: one ``REDIS_URL_<ROLE>`` (``rediss://<user>:<password>@...``)
    per Valkey user of ``redisRoles``;
- ConfigMap ``cofounder-queue``: the agent queues' settings (``Queue.app_settings``: the tier
  names and queue URLs in priority order, attempts, backoff base, longest run, concurrency);
  SQS URLs are not secrets, access is IAM.

ESO builds the URLs from the Secrets Manager secrets with its template; the ExternalSecret holds
only the template, host names and secret ARNs, never a password. ``secret_arns[app]`` lists
exactly the secrets an app's store reads: its IRSA role is allowed those and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_kubernetes.core.v1 import ConfigMap

from components.credentials import StoredPassword
from components.external_secrets import RemoteField, external_secret, secret_store


@dataclass(frozen=True, kw_only=True)
class AppCredentials:
    """What one app's pods get."""

    #: The app's service account (AppService names it after the app): its store authenticates as it.
    service_account: str
    database: bool = False
    #: Valkey users (valkey_users.ROLES).
    redis_roles: Sequence[str] = ()


@dataclass(frozen=True, kw_only=True)
class AppDataSettingsArgs:
    """Inputs of AppDataSettings."""

    namespace: pulumi.Input[str]
    apps: Mapping[str, AppCredentials]
    region: str
    #: RDS address (direct URL) and the PgBouncer Service host (pooled URL).
    db_host: pulumi.Input[str]
    db_port: int
    pooler_host: pulumi.Input[str]
    pooler_port: int
    db_name: str
    #: The app and migrator roles' logins and secrets (DatabaseRoles.roles).
    app_role: StoredPassword
    migrator_role: StoredPassword
    redis_endpoint: pulumi.Input[str]
    redis_port: int
    #: Valkey user per role (Redis.users).
    redis_users: Mapping[str, StoredPassword]
    #: The ConfigMap's data: the agent queues' settings (``Queue.app_settings``).
    queue_settings: Mapping[str, pulumi.Input[str]]
    #: ESO's release (its CRDs) and refresh interval.
    external_secrets_release: pulumi.Resource
    refresh_interval: str = "3600s"
    #: The secrets' Secrets Manager writes and the Job that sets the roles' passwords: the apps'
    #: Secrets are synced after them.
    depends_on: Sequence[pulumi.Resource] = ()
    queue_config_map_name: str = "cofounder-queue"
    labels: dict[str, str] = field(default_factory=dict)


def redis_url_key(role: str) -> str:
    return f"REDIS_URL_{role.upper()}"


class AppDataSettings(pulumi.ComponentResource):
    """Per app, its SecretStore and ExternalSecrets; one ConfigMap with the queue settings."""

    #: App -> the Secrets its pods load (``envFrom``).
    secret_names: dict[str, list[str]]
    #: App -> the Secrets Manager secrets its store reads (its IRSA role's resources).
    secret_arns: dict[str, list[pulumi.Output[str]]]
    #: App -> the versions of those secrets, joined (its pods' credentials annotation).
    credentials_versions: dict[str, pulumi.Output[str]]
    queue_config_map_name: pulumi.Output[str]

    def __init__(self, name: str, args: AppDataSettingsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:AppDataSettings", name, None, opts)
        labels = {**args.labels, "app.kubernetes.io/part-of": "cofounder", "app.kubernetes.io/component": "data"}
        self.secret_names, self.secret_arns, self.credentials_versions = {}, {}, {}
        for app, wants in args.apps.items():
            if not (wants.database or wants.redis_roles):
                continue
            store = secret_store(f"{name}-{app}-store", self, namespace=args.namespace,
                                 service_account=wants.service_account, region=args.region, labels=labels,
                                 depends_on=[args.external_secrets_release])
            names: list[str] = []
            used: list[StoredPassword] = []
            if wants.database:
                used += [args.app_role, args.migrator_role]
                self._database(name, app, args, wants, store, labels)
                names.append(f"{app}-database")
            if wants.redis_roles:
                users = [args.redis_users[role] for role in wants.redis_roles]
                used += users
                self._redis(name, app, args, wants, store, labels, users)
                names.append(f"{app}-redis")
            self.secret_names[app] = names
            self.secret_arns[app] = [u.secret_arn for u in used]
            self.credentials_versions[app] = pulumi.Output.all(*(u.version for u in used)).apply(
                lambda v: ",".join(str(x) for x in v))
        queue = ConfigMap(
            f"{name}-queue",
            metadata={"name": args.queue_config_map_name, "namespace": args.namespace, "labels": labels},
            data=dict(args.queue_settings),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.queue_config_map_name = queue.metadata["name"]
        self.register_outputs({"secret_names": self.secret_names,
                               "queue_config_map_name": self.queue_config_map_name})

    def _database(self, name, app, args: AppDataSettingsArgs, wants: AppCredentials, store, labels):
        direct = pulumi.Output.all(args.db_host).apply(
            lambda v: "postgresql://{{ .migrator_username }}:{{ .migrator_password }}@"
                      f"{v[0]}:{args.db_port}/{args.db_name}?sslmode=require")
        pooled = pulumi.Output.all(args.pooler_host).apply(
            lambda v: "postgresql://{{ .app_username }}:{{ .app_password }}@"
                      f"{v[0]}:{args.pooler_port}/{args.db_name}")
        fields = [RemoteField(f"{role}_{prop}", stored.secret_arn, prop)
                  for role, stored in (("migrator", args.migrator_role), ("app", args.app_role))
                  for prop in ("username", "password")]
        return external_secret(
            f"{name}-{app}-database", self, namespace=args.namespace, store=wants.service_account,
            target=f"{app}-database", fields=fields,
            template={"DATABASE_URL": direct, "DATABASE_URL_POOLED": pooled},
            versions=[args.migrator_role.version, args.app_role.version], refresh_interval=args.refresh_interval,
            labels=labels, depends_on=[store, *args.depends_on])

    def _redis(self, name, app, args: AppDataSettingsArgs, wants: AppCredentials, store, labels, users):
        fields = [RemoteField(f"{role}_password", user.secret_arn, "password")
                  for role, user in zip(wants.redis_roles, users, strict=True)]
        def url(role: str) -> pulumi.Output[str]:
            return pulumi.Output.from_input(args.redis_endpoint).apply(
                lambda host: f"rediss://{role}:{{{{ .{role}_password }}}}@{host}:{args.redis_port}")
        template = {redis_url_key(role): url(role) for role in wants.redis_roles}
        return external_secret(
            f"{name}-{app}-redis", self, namespace=args.namespace, store=wants.service_account,
            target=f"{app}-redis", fields=fields, template=template, versions=[u.version for u in users],
            refresh_interval=args.refresh_interval, labels=labels, depends_on=[store, *args.depends_on])
