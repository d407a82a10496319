"""PgBouncer: the in-cluster connection pooler between the app pods and RDS.

Every app pod keeps a pool of client connections to PgBouncer (cheap); PgBouncer multiplexes
them onto a few server connections to Postgres (expensive: memory per backend, capped by
``max_connections``) in transaction pooling mode. ``capacity/connections.py`` proves the numbers
fit at maximum scale; the program refuses a stack where they do not.

Builds, in the app namespace, through the Kubernetes provider handed in via ``opts``:
- a Secret with ``pgbouncer.ini`` and ``userlist.txt`` (built from Pulumi secrets: the
  ``pgbouncer_auth`` login and the stats user only) and the exporter's connection string; a
  ConfigMap with the RDS root CAs;
- a Deployment (>= 2 replicas, spread over nodes and zones, non-root, read-only root filesystem,
  TCP probes, a preStop drain) of the pinned ``edoburu/pgbouncer`` image, with the pinned
  ``prometheus-community`` exporter as a sidecar on port 9127 (``metrics``);
- a ClusterIP Service on 6432 and a PodDisruptionBudget.

Who may log in: the app logins, looked up in Postgres at each client login with ``auth_query``
(``AUTH_QUERY``) as ``auth_user`` (the ``pgbouncer_auth`` login of DatabaseRoles), which may only
call the ``SECURITY DEFINER`` function ``pgbouncer.get_auth``; it returns the SCRAM verifier of an
``app_a``/``app_b`` login and nothing else. PgBouncer then logs in to Postgres as that login with
the client's SCRAM proof. So a rotated app password needs no PgBouncer change: the next client
login reads the new verifier, and open server connections stay open (Postgres checks a password
only when a connection starts). A rotated ``pgbouncer_auth`` password changes the config Secret,
which rolls the replicas one at a time (maxUnavailable 0, drain below).

TLS to RDS is ``verify-full`` against the bundled RDS root CAs: the chain and the host name are
both checked, so a host in the VPC cannot impersonate the database. App pods reach PgBouncer
inside the cluster in plain text; PgBouncer's own client TLS is not configured here.

Draining: on termination the pod first leaves the Service endpoints (preStop sleeps
``drain_seconds`` meanwhile), then PgBouncer gets SIGINT, its safe shutdown: no new
connections, running transactions finish, then it exits; clients reconnect to another replica.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Any

import pulumi
import pulumi_random as random
from pulumi_kubernetes.apps.v1 import Deployment
from pulumi_kubernetes.core.v1 import ConfigMap, Secret, Service
from pulumi_kubernetes.policy.v1 import PodDisruptionBudget

from components import Between, require_valid, restricted_container
from components.postgres import postgres_url

PORT = 6432
METRICS_PORT = 9127
STATS_USER = "pgbouncer_stats"
CONFIG_DIR = "/etc/pgbouncer"
CA_DIR = "/etc/pgbouncer-ca"
CA_FILE = "rds-ca-bundle.pem"
CA_BUNDLE_FILE = "rds-ca-rsa2048-g1.pem"
#: edoburu/pgbouncer v1.25.1-p0 by digest. Docker Hub's digest for that tag is not published in a
#: repository of the image's own; this is the digest the fluxo-kt/aza-pg project pins and its CI
#: pulls (fluxo-kt/aza-pg@670a298c3ffe73aa6aedc0f6b9d4471546c0c66f:stacks/primary/compose.yml,
#: brought up by .github/workflows/build-postgres-image.yml). Verify with
#: ``docker buildx imagetools inspect edoburu/pgbouncer:v1.25.1-p0`` before a bump (docs/images.md).
PGBOUNCER_IMAGE = ("edoburu/pgbouncer:v1.25.1-p0"
                   "@sha256:c7bfcaa24de830e29588bb9ad1eb39cebaf07c27149e1974445899b695634bb4")
#: prometheus-community's exporter, by tag only: no public source gave its v0.11.0 digest, so the
#: pack's k8s-workload-image-digest allows exactly this repo:tag (environments.py TAG_ONLY_IMAGES).
EXPORTER_IMAGE = "quay.io/prometheuscommunity/pgbouncer-exporter:v0.11.0"
#: The image's ``postgres`` user (uid/gid 70) and the exporter image's ``nobody``.
PGBOUNCER_UID = 70
EXPORTER_UID = 65534
#: What PgBouncer runs as ``auth_user`` to fetch a client's SCRAM verifier (components/data/database-roles.sql).
AUTH_QUERY = "SELECT usename, passwd FROM pgbouncer.get_auth($1)"


def rds_ca_bundle() -> str:
    """The RDS root CAs PgBouncer trusts (``components/data/rds-ca-rsa2048-g1.pem``, provenance in
    ``components/data/README.md``)."""
    return resources.files("components").joinpath("data", CA_BUNDLE_FILE).read_text()


def bundle_regions(pem: str) -> set[str]:
    """Regions whose root CA the bundle holds (each certificate is preceded by its name)."""
    return set(re.findall(r"^# Amazon RDS (\S+) Root CA RSA2048 G1$", pem, re.M))


@dataclass(frozen=True, kw_only=True)
class PgBouncerSettings:
    """``cofounder:pgbouncer``: the in-cluster connection pooler in front of RDS."""

    #: At least 2: one replica may be drained or rescheduled while the other serves.
    replicas: Annotated[int, Between(2, 50)] = 2
    #: Server connections per replica for the app database (PgBouncer default_pool_size).
    default_pool_size: Annotated[int, Between(1, 5000)] = 20
    #: Extra server connections per replica for bursts (reserve_pool_size).
    reserve_pool_size: Annotated[int, Between(0, 1000)] = 5
    #: Client connections each replica accepts (max_client_conn).
    max_client_conn: Annotated[int, Between(10, 100000)] = 1000
    #: Prepared statements tracked per server connection in transaction mode (PgBouncer >= 1.21);
    #: above 0 so drivers that prepare statements work.
    max_prepared_statements: Annotated[int, Between(1, 10000)] = 200


@dataclass(frozen=True, kw_only=True)
class PgBouncerArgs(PgBouncerSettings):
    """Settings plus the wiring and the component's fixed choices."""

    namespace: pulumi.Input[str]
    #: The RDS instance address (its certificate names it: verify-full checks this host).
    db_host: pulumi.Input[str]
    db_name: str
    #: PgBouncer's ``auth_user``: the login that may only run ``AUTH_QUERY`` (DatabaseRoles' pgbouncer_auth).
    db_user: str
    #: That login's password (a Pulumi secret).
    db_password: pulumi.Input[str]
    db_port: int = 5432
    #: Name of the Deployment, Service and PDB; the Service DNS name apps connect to.
    service_name: str = "pgbouncer"
    #: Seconds a client waits before the reserve pool opens for it.
    reserve_pool_timeout_seconds: int = 3
    #: PgBouncer image by digest (edoburu/pgbouncer: maintained, Alpine, PgBouncer 1.25.1).
    image: str = PGBOUNCER_IMAGE
    #: Prometheus exporter sidecar (tag only, see EXPORTER_IMAGE); None leaves it out.
    exporter_image: str | None = EXPORTER_IMAGE
    #: PEM bundle of CAs PgBouncer trusts for the RDS server certificate.
    server_ca_pem: str = field(default_factory=rds_ca_bundle)
    #: Seconds the preStop hook waits for the endpoint removal to reach every client.
    drain_seconds: int = 15
    #: Upper bound for the drain plus the safe shutdown (running transactions finishing).
    termination_grace_period_seconds: int = 60
    cpu_request: str = "100m"
    memory_request: str = "64Mi"
    memory_limit: str = "256Mi"
    labels: dict[str, str] = field(default_factory=dict)


def pgbouncer_ini(args: PgBouncerArgs, db_host: str) -> str:
    """The ``pgbouncer.ini`` PgBouncer runs with (no secret in it: passwords live in userlist.txt)."""
    return "\n".join([
        "[databases]",
        f"{args.db_name} = host={db_host} port={args.db_port} dbname={args.db_name}",
        "",
        "[pgbouncer]",
        "listen_addr = 0.0.0.0",
        f"listen_port = {PORT}",
        # No unix socket: nothing local uses one and the root filesystem is read-only.
        "unix_socket_dir =",
        "auth_type = scram-sha-256",
        f"auth_file = {CONFIG_DIR}/userlist.txt",
        f"auth_user = {args.db_user}",
        f"auth_query = {AUTH_QUERY}",
        f"stats_users = {STATS_USER}",
        "pool_mode = transaction",
        f"default_pool_size = {args.default_pool_size}",
        f"reserve_pool_size = {args.reserve_pool_size}",
        f"reserve_pool_timeout = {args.reserve_pool_timeout_seconds}",
        # Hard cap per replica: the connection budget counts exactly this many per replica.
        f"max_db_connections = {args.default_pool_size + args.reserve_pool_size}",
        f"max_client_conn = {args.max_client_conn}",
        f"max_prepared_statements = {args.max_prepared_statements}",
        "server_tls_sslmode = verify-full",
        f"server_tls_ca_file = {CA_DIR}/{CA_FILE}",
        "server_tls_protocols = tlsv1.2,tlsv1.3",
        # node-postgres and JDBC send it at startup; PgBouncer would otherwise reject the client.
        "ignore_startup_parameters = extra_float_digits",
        "",
    ])


def userlist(users: dict[str, str]) -> str:
    """``userlist.txt``: one ``"user" "password"`` line each (plain passwords: SCRAM to the server needs them)."""
    return "".join(f'"{user}" "{password}"\n' for user, password in users.items())


def _pgbouncer_container(args: PgBouncerArgs) -> dict[str, Any]:
    """The PgBouncer container: PID 1, TCP probes, preStop drain, non-root, read-only root."""
    return {
        "name": "pgbouncer",
        "image": args.image,
        # Straight to the binary: config comes from the Secret, not the image's env-driven entrypoint,
        # and PgBouncer is PID 1, so the preStop hook can signal it.
        "command": ["/usr/bin/pgbouncer", f"{CONFIG_DIR}/pgbouncer.ini"],
        "ports": [{"name": "postgres", "containerPort": PORT, "protocol": "TCP"}],
        "readinessProbe": {"tcpSocket": {"port": "postgres"}, "periodSeconds": 5, "failureThreshold": 2},
        "livenessProbe": {"tcpSocket": {"port": "postgres"}, "initialDelaySeconds": 10,
                          "periodSeconds": 10, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": [
            "/bin/sh", "-c", f"sleep {args.drain_seconds}; kill -INT 1"]}}},
        "resources": {"requests": {"cpu": args.cpu_request, "memory": args.memory_request},
                      "limits": {"memory": args.memory_limit}},
        "securityContext": {**restricted_container(), "runAsUser": PGBOUNCER_UID, "runAsGroup": PGBOUNCER_UID},
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "rds-ca", "mountPath": CA_DIR, "readOnly": True},
        ],
    }


def _exporter_container(args: PgBouncerArgs, config: Secret) -> dict[str, Any]:
    """The pgbouncer-exporter sidecar, reading its connection string from the config Secret."""
    return {
        "name": "exporter",
        "image": args.exporter_image,
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "env": [{"name": "PGBOUNCER_EXPORTER_CONNECTION_STRING", "valueFrom": {"secretKeyRef": {
            "name": config.metadata["name"], "key": "exporter-connection-string"}}}],
        "readinessProbe": {"tcpSocket": {"port": "metrics"}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": "metrics"}, "initialDelaySeconds": 10, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {**restricted_container(), "runAsUser": EXPORTER_UID, "runAsGroup": EXPORTER_UID},
    }


def _anti_affinity(selector: dict[str, str], topology_key: str, weight: int) -> dict:
    """A preferred pod anti-affinity term: spread the selected pods over ``topology_key``."""
    return {"weight": weight, "podAffinityTerm": {
        "topologyKey": topology_key, "labelSelector": {"matchLabels": selector}}}


class PgBouncer(pulumi.ComponentResource):
    """A replicated PgBouncer Deployment and Service in front of RDS."""

    service_name: pulumi.Output[str]
    #: ``<service>.<namespace>.svc.cluster.local``.
    host: pulumi.Output[str]
    port: int
    #: The exporter's container port (``metrics``); None without the exporter.
    metrics_port: int | None
    #: Labels that select the PgBouncer pods (the Service's and the PDB's selector).
    selector: dict[str, str]

    def __init__(self, name: str, args: PgBouncerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:PgBouncer", name, None, opts)
        require_valid(f"PgBouncer {name}", args)
        # name + part-of: the observability PodMonitor selects PgBouncer pods by these two.
        labels = {**args.labels, "app.kubernetes.io/name": "pgbouncer",
                  "app.kubernetes.io/instance": args.service_name,
                  "app.kubernetes.io/component": "connection-pooler",
                  "app.kubernetes.io/part-of": "cofounder"}
        selector = {"app.kubernetes.io/name": "pgbouncer", "app.kubernetes.io/instance": args.service_name}

        config = self._config_secret(name, args, labels)
        ca = self._ca_config_map(name, args, labels)
        containers = [_pgbouncer_container(args)]
        if args.exporter_image:
            containers.append(_exporter_container(args, config))
        deployment = self._deployment(name, args, labels, selector, containers, config, ca)
        service = self._service(name, args, labels, selector, deployment)
        self._disruption_budget(name, args, labels, selector)

        self.service_name = service.metadata["name"]
        self.host = pulumi.Output.all(service.metadata["name"], args.namespace).apply(
            lambda v: f"{v[0]}.{v[1]}.svc.cluster.local")
        self.port = PORT
        self.metrics_port = METRICS_PORT if args.exporter_image else None
        self.selector = selector
        self.register_outputs({
            "service_name": self.service_name,
            "host": self.host,
        })

    def _config_secret(self, name: str, args: PgBouncerArgs, labels: dict) -> Secret:
        """The config Secret: pgbouncer.ini, the userlist and the exporter's connection string."""
        child = pulumi.ResourceOptions(parent=self)
        stats_password = random.RandomPassword(f"{name}-stats-password", length=32, special=False, opts=child)

        # Auto-named (name + random suffix): a changed config is a new Secret, which rolls the pods.
        return Secret(
            f"{name}-config",
            metadata={"namespace": args.namespace, "labels": labels},
            type="Opaque",
            string_data=pulumi.Output.secret(pulumi.Output.all(args.db_host, args.db_password, stats_password.result)
                                             .apply(lambda v: {  # type: ignore[arg-type]
                "pgbouncer.ini": pgbouncer_ini(args, v[0]),
                "userlist.txt": userlist({args.db_user: v[1], STATS_USER: v[2]}),
                "exporter-connection-string": postgres_url(STATS_USER, v[2], "127.0.0.1", PORT, "pgbouncer",
                                                           "sslmode=disable"),
            })),
            opts=child,
        )

    def _ca_config_map(self, name: str, args: PgBouncerArgs, labels: dict) -> ConfigMap:
        """The ConfigMap with the RDS CA bundle PgBouncer verifies the server against."""
        return ConfigMap(
            f"{name}-rds-ca",
            metadata={"namespace": args.namespace, "labels": labels},
            data={CA_FILE: args.server_ca_pem},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _deployment(self, name: str, args: PgBouncerArgs, labels: dict, selector: dict,
                    containers: list[dict[str, Any]], config: Secret, ca: ConfigMap) -> Deployment:
        """The PgBouncer Deployment: rolling, spread over hosts and zones, config and CA mounted."""
        return Deployment(
            f"{name}-deployment",
            metadata={"name": args.service_name, "namespace": args.namespace, "labels": labels},
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "terminationGracePeriodSeconds": args.termination_grace_period_seconds,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "fsGroup": PGBOUNCER_UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        # Preferred, not required: a replica should still start when nodes are short.
                        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            _anti_affinity(selector, "kubernetes.io/hostname", 100),
                            _anti_affinity(selector, "topology.kubernetes.io/zone", 50),
                        ]}},
                        "containers": containers,
                        "volumes": [
                            {"name": "config", "secret": {
                                "secretName": config.metadata["name"], "defaultMode": 0o440,
                                "items": [{"key": "pgbouncer.ini", "path": "pgbouncer.ini"},
                                          {"key": "userlist.txt", "path": "userlist.txt"}]}},
                            {"name": "rds-ca", "configMap": {"name": ca.metadata["name"], "defaultMode": 0o444}},
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _service(self, name: str, args: PgBouncerArgs, labels: dict, selector: dict,
                 deployment: Deployment) -> Service:
        """The ClusterIP Service apps connect to (and the exporter's metrics port)."""
        return Service(
            f"{name}-service",
            metadata={"name": args.service_name, "namespace": args.namespace, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "postgres", "port": PORT, "targetPort": "postgres", "protocol": "TCP"}]
                + ([{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}]
                   if args.exporter_image else []),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )

    def _disruption_budget(self, name: str, args: PgBouncerArgs, labels: dict, selector: dict) -> None:
        """The PodDisruptionBudget: one replica down at a time."""
        PodDisruptionBudget(
            f"{name}-pdb",
            metadata={"name": args.service_name, "namespace": args.namespace, "labels": labels},
            spec={"maxUnavailable": 1, "selector": {"matchLabels": selector}},
            opts=pulumi.ResourceOptions(parent=self),
        )
