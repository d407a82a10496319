"""DatabaseRoles: the application's Postgres roles by purpose, their passwords in Secrets Manager,
and the Kubernetes Job that creates and updates them.

Roles (``components/data/database-roles.sql``): ``app`` (DML on the application schema, through
PgBouncer: ``DATABASE_URL_POOLED``), ``migrator`` (owns the schema: DDL, the direct
``DATABASE_URL``) and ``pgbouncer_auth`` (PgBouncer's ``auth_user``, which may only call the
``SECURITY DEFINER`` lookup ``pgbouncer.get_auth``). Each is a NOLOGIN group role with two logins,
``<role>_a`` and ``<role>_b``: generation N (``cofounder:postgres.credentialsGeneration`` plus
the ``credentialsRotationDays`` periods gone by, infra/data.py) sets the password of the ``_b``
login when N is even and of the ``_a`` login when N is odd, and leaves the other one alone, so a
rotation never locks out a pod that still holds the previous credentials.

Builds:
- per purpose, a generated password (pulumi-random, a Pulumi secret) in a Secrets Manager secret
  ``<prefix>/postgres/<role>`` encrypted with the database secrets key (``credentials.py``);
- the bootstrap identity: ServiceAccount ``database-bootstrap`` with an IRSA role allowed to read
  the RDS-managed master secret and the three role secrets, nothing else; its SecretStore and the
  ExternalSecret ``database-bootstrap`` (ESO) that copies them into the Job's Secret;
- a ConfigMap with the SQL and the RDS root CAs, and the Job ``database-bootstrap-<hash>``: the
  official ``postgres`` image (by digest) running ``psql -f`` over TLS ``verify-full`` as the master
  user. The name carries a hash of the SQL and the secrets' versions, so a change is a new Job
  (a Job's pod template is immutable) and an unchanged deploy runs nothing. Pulumi waits for the
  Job to complete (pulumi-kubernetes' Job await), and the apps' Secrets depend on it.

Why a Job in the cluster and not a Postgres provider run by the deployer: the instance is private
(no public address, its security group admits only the EKS cluster security group), so neither a
laptop nor CI has a network path to it; a provider would need a bastion or a public endpoint. The
Job runs where the apps run, on the path the apps already use, with its own NetworkPolicy
(``database-bootstrap-to-postgres``), and it is the only workload that reads the master secret.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import restricted_container
from components.credentials import URL_SAFE_SPECIALS, StoredPassword, secret_read_policy, stored_password
from components.external_secrets import RemoteField, external_secret, secret_store
from components.irsa_role import IrsaRole, IrsaRoleArgs

SQL_FILE = "database-roles.sql"
PURPOSES = ("app", "migrator", "pgbouncer_auth")
#: The application schema (the app's search_path; owned by migrator).
APP_SCHEMA = "cofounder"
BOOTSTRAP = "database-bootstrap"
#: The component label every bootstrap object carries: the one workload allowed the master secret
#: (policy ``k8s-no-master-database-credentials``).
BOOTSTRAP_COMPONENT = "database-bootstrap"
#: postgres:17-alpine (PostgreSQL 17.11, Alpine 3.24), the image index digest Docker's official-images
#: record lists for that tag: docker-library/repo-info@14ad5cc17dd0e9a01079feefc7a59c24536f5291,
#: repos/postgres/remote/17-alpine.md. Its ``postgres`` user is uid/gid 70 (same file).
POSTGRES_IMAGE = "postgres:17-alpine@sha256:b0f9560a2de083e2cc7382e75f808c7381a32852a7ec49117deedb300e552b24"
POSTGRES_UID = 70
SQL_DIR = "/etc/database-bootstrap"
CA_FILE = "rds-ca-bundle.pem"


def roles_sql() -> str:
    """The SQL the Job runs (``components/data/database-roles.sql``)."""
    return resources.files("components").joinpath("data", SQL_FILE).read_text()


def login_for(purpose: str, generation: int) -> str:
    """The login generation ``generation`` sets: ``<purpose>_a`` for odd, ``<purpose>_b`` for even."""
    return f"{purpose}_{'a' if generation % 2 else 'b'}"


@dataclass(frozen=True, kw_only=True)
class DatabaseRolesArgs:
    """Inputs of DatabaseRoles."""

    #: The app namespace (EksCluster.app_namespace): the Job, its ServiceAccount, store and Secret live there.
    namespace: pulumi.Input[str]
    #: Its name, for the IRSA trust policy (cofounder:cluster.appNamespace).
    namespace_name: str
    db_host: pulumi.Input[str]
    db_name: str
    db_port: int = 5432
    #: The RDS-managed master secret (Postgres.master_secret_arn) and its key.
    master_secret_arn: pulumi.Input[str]
    secrets_key_arn: pulumi.Input[str]
    #: Raise by one to rotate the three roles' passwords (cofounder:postgres.credentialsGeneration).
    generation: int = 1
    #: Prefix of the secrets' names (``<prefix>/postgres/<role>``).
    secret_name_prefix: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    region: str
    #: ESO's release and refresh interval (ExternalSecrets); the store needs its CRDs.
    external_secrets_release: pulumi.Resource
    refresh_interval: str = "3600s"
    #: PEM bundle of CAs for the RDS server certificate (verify-full).
    server_ca_pem: str
    image: str = POSTGRES_IMAGE
    #: Seconds the Job may run before Kubernetes stops it (retries included).
    active_deadline_seconds: int = 600
    tags: dict[str, str] = field(default_factory=dict)


class DatabaseRoles(pulumi.ComponentResource):
    """The roles' secrets and the Job that applies them; pass ``job`` to whatever needs the roles."""

    #: Purpose -> its current login and password, and the secret holding them.
    roles: dict[str, StoredPassword]
    job: k8s.batch.v1.Job
    service_account: str
    #: Labels of the Job's pods (its NetworkPolicy selects them).
    selector: dict[str, str]

    def __init__(self, name: str, args: DatabaseRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:DatabaseRoles", name, None, opts)
        labels = {"app.kubernetes.io/name": BOOTSTRAP, "app.kubernetes.io/component": BOOTSTRAP_COMPONENT,
                  "app.kubernetes.io/part-of": "cofounder"}
        tags = {**args.tags, "component": "data"}

        self.roles = {purpose: stored_password(
            f"{name}-{purpose.replace('_', '-')}", self, username=login_for(purpose, args.generation),
            secret_name=f"{args.secret_name_prefix}/postgres/{purpose}", kms_key_arn=args.secrets_key_arn,
            generation=args.generation, length=40, specials=URL_SAFE_SPECIALS, tags=tags)
            for purpose in PURPOSES}
        account = self._service_account(name, args, labels, tags)
        versions = [stored.version for stored in self.roles.values()]
        credentials = self._credentials(name, args, labels, account, versions)
        self.job = self._job(name, args, labels, versions, credentials)
        self.service_account = BOOTSTRAP
        self.selector = labels
        self.register_outputs({"logins": {p: r.username for p, r in self.roles.items()},
                               "job_name": self.job.metadata["name"]})

    def _service_account(self, name: str, args: DatabaseRolesArgs, labels: dict,
                         tags: dict) -> k8s.core.v1.ServiceAccount:
        """The Job's ServiceAccount and its IRSA role, which reads the master and role secrets."""
        secret_arns = [args.master_secret_arn, *(r.secret_arn for r in self.roles.values())]
        role = IrsaRole(f"{name}-irsa", IrsaRoleArgs(
            oidc_provider_arn=args.oidc_provider_arn, oidc_issuer_url=args.oidc_issuer_url,
            namespace=args.namespace_name, service_account=BOOTSTRAP,
            policy_json=pulumi.Output.all(args.secrets_key_arn, *secret_arns).apply(
                lambda v: json.dumps(secret_read_policy(v[1:], [v[0]]))),
            tags={**tags, "component": BOOTSTRAP}), opts=pulumi.ResourceOptions(parent=self))
        return k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={"name": BOOTSTRAP, "namespace": args.namespace, "labels": labels,
                      "annotations": {"eks.amazonaws.com/role-arn": role.role_arn}},
            automount_service_account_token=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _credentials(self, name: str, args: DatabaseRolesArgs, labels: dict,
                     account: k8s.core.v1.ServiceAccount, versions: list) -> k8s.apiextensions.CustomResource:
        """The SecretStore and the ExternalSecret that bring the master and role passwords in."""
        store = secret_store(f"{name}-secret-store", self, namespace=args.namespace, service_account=BOOTSTRAP,
                             region=args.region, labels=labels, depends_on=[account, args.external_secrets_release])
        fields = [RemoteField("PGUSER", args.master_secret_arn, "username"),
                  RemoteField("PGPASSWORD", args.master_secret_arn, "password")]
        fields += [RemoteField(f"{purpose.upper()}_PASSWORD", stored.secret_arn, "password")
                   for purpose, stored in self.roles.items()]
        return external_secret(
            f"{name}-credentials", self, namespace=args.namespace, store=BOOTSTRAP, target=BOOTSTRAP,
            fields=fields, template=None, versions=versions, refresh_interval=args.refresh_interval,
            labels=labels, depends_on=[store])

    def _job(self, name: str, args: DatabaseRolesArgs, labels: dict, versions: list,
             credentials: k8s.apiextensions.CustomResource) -> k8s.batch.v1.Job:
        """The SQL ConfigMap and the Job that applies it, named after what it applies."""
        sql = roles_sql()
        files = k8s.core.v1.ConfigMap(
            f"{name}-sql",
            metadata={"namespace": args.namespace, "labels": labels},
            data={SQL_FILE: sql, CA_FILE: args.server_ca_pem},
            opts=pulumi.ResourceOptions(parent=self),
        )
        digest = pulumi.Output.all(*versions).apply(
            lambda v: hashlib.sha256("\n".join([sql, args.image, *map(str, v)]).encode()).hexdigest()[:10])
        return k8s.batch.v1.Job(
            f"{name}-job",
            metadata={"name": digest.apply(lambda d: f"{BOOTSTRAP}-{d}"), "namespace": args.namespace,
                      "labels": labels},
            spec={
                "backoffLimit": 4,
                "activeDeadlineSeconds": args.active_deadline_seconds,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": _pod_spec(args, files.metadata["name"]),
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[credentials]),
        )


def _pod_spec(args: DatabaseRolesArgs, files_config_map: pulumi.Input[str]) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        {"name": "PGHOST", "value": args.db_host},
        {"name": "PGPORT", "value": str(args.db_port)},
        {"name": "PGDATABASE", "value": args.db_name},
        {"name": "PGSSLMODE", "value": "verify-full"},
        {"name": "PGSSLROOTCERT", "value": f"{SQL_DIR}/{CA_FILE}"},
        {"name": "PGCONNECT_TIMEOUT", "value": "10"},
        {"name": "APP_SCHEMA", "value": APP_SCHEMA},
        *({"name": f"{purpose.upper()}_LOGIN", "value": login_for(purpose, args.generation)} for purpose in PURPOSES),
    ]
    return {
        "restartPolicy": "Never",
        "serviceAccountName": BOOTSTRAP,
        # No Kubernetes API token: the Job only talks to Postgres (its Secret arrives as env).
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": POSTGRES_UID, "runAsGroup": POSTGRES_UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "psql",
            "image": args.image,
            "command": ["psql", "--no-psqlrc", "--file", f"{SQL_DIR}/{SQL_FILE}"],
            "env": env,
            "envFrom": [{"secretRef": {"name": BOOTSTRAP}}],
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            "securityContext": restricted_container(),
            "volumeMounts": [{"name": "files", "mountPath": SQL_DIR, "readOnly": True}],
        }],
        "volumes": [{"name": "files", "configMap": {"name": files_config_map, "defaultMode": 0o444}}],
    }
