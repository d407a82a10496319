"""components/pgbouncer.py and components/app_data_settings.py, run standalone with a Kubernetes
provider created here (the EKS platform hands its provider down the same way)."""

from __future__ import annotations

import configparser

import pulumi
import pulumi_kubernetes as k8s
import pytest
from cofounder_policies.environments import TAG_ONLY_IMAGES
from pulumi.runtime.sync_await import _sync_await

from components import ComponentArgsError
from components.app_data_settings import AppCredentials, AppDataSettings, AppDataSettingsArgs
from components.database_roles import DatabaseRoles, DatabaseRolesArgs
from components.external_secrets import ExternalSecrets, ExternalSecretsArgs
from components.pgbouncer import PgBouncer, PgBouncerArgs, bundle_regions, pgbouncer_ini, rds_ca_bundle, userlist
from components.postgres import Postgres, PostgresArgs
from components.queue import Queue, QueueArgs
from components.redis import Redis, RedisArgs
from tests.conftest import secret_leaks
from toolkit.harness import is_secret, reveal

RDS_HOST = "demo-postgres.c0ffee123456.us-east-1.rds.amazonaws.com"
SUBNETS = ["subnet-a", "subnet-b"]


def _data_tier(captured: dict, **pgbouncer_overrides):
    """The data tier as infra wires it: AWS side, ESO and the roles' Job, then PgBouncer (as the
    pgbouncer_auth login) and the apps' settings in the cluster."""
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        in_cluster = pulumi.ResourceOptions(providers={"kubernetes": provider})
        pg = Postgres("postgres", PostgresArgs(identifier="demo-postgres", vpc_id="vpc-1", subnet_ids=SUBNETS,
                                               allowed_security_group_ids=["sg-cluster"]))
        redis = Redis("redis", RedisArgs(identifier="demo-redis", vpc_id="vpc-1", subnet_ids=SUBNETS,
                                         allowed_security_group_ids=["sg-cluster"]))
        queue = Queue("agent-queue", QueueArgs(queue_name="demo-agent-execution"))
        eso = ExternalSecrets("external-secrets", ExternalSecretsArgs(), opts=in_cluster)
        roles = DatabaseRoles("database-roles", DatabaseRolesArgs(
            namespace="cofounder", namespace_name="cofounder", db_host=pg.address, db_name=pg.db_name,
            master_secret_arn=pg.master_secret_arn, secrets_key_arn=pg.secrets_key_arn, secret_name_prefix="demo",
            oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X",
            oidc_issuer_url="https://oidc.eks.us-east-1.amazonaws.com/id/X", region="us-east-1",
            external_secrets_release=eso.release, server_ca_pem=rds_ca_bundle()), opts=in_cluster)
        auth = roles.roles["pgbouncer_auth"]
        bouncer = PgBouncer("pgbouncer", PgBouncerArgs(
            namespace="cofounder", db_host=pg.address, db_name=pg.db_name, db_user=auth.username,
            db_password=auth.password, **pgbouncer_overrides), opts=in_cluster)
        settings = AppDataSettings("app-data", AppDataSettingsArgs(
            namespace="cofounder", region="us-east-1",
            apps={"frontend": AppCredentials(service_account="frontend"),
                  "backend": AppCredentials(service_account="backend", database=True,
                                            redis_roles=["sessions", "pubsub"])},
            db_host=pg.address, db_port=5432, pooler_host=bouncer.host, pooler_port=bouncer.port,
            db_name=pg.db_name, app_role=roles.roles["app"], migrator_role=roles.roles["migrator"],
            redis_endpoint=redis.configuration_endpoint, redis_port=6379, redis_users=redis.users,
            queue_settings=queue.app_settings, external_secrets_release=eso.release,
            depends_on=[roles.job]), opts=in_cluster)
        captured.update(bouncer=bouncer, settings=settings, provider=provider, roles=roles)
    return program


@pytest.fixture
def tier(run_program):
    captured = {}
    program = run_program(_data_tier(captured))
    return program, captured


def _ini(program) -> configparser.ConfigParser:
    secret = program.one("kubernetes:core/v1:Secret", "pgbouncer-config")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(reveal(secret.inputs["stringData"])["pgbouncer.ini"])
    return parser


def test_every_kubernetes_object_validates(tier, validate_k8s):
    program, _ = tier
    objects = [r for r in program.resources if r.type.startswith("kubernetes:") and r.custom
               and r.type.split(":")[1] in ("apps/v1", "core/v1", "policy/v1", "batch/v1")]
    assert {r.type for r in objects} == {
        "kubernetes:apps/v1:Deployment", "kubernetes:core/v1:Service", "kubernetes:policy/v1:PodDisruptionBudget",
        "kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap", "kubernetes:core/v1:ServiceAccount",
        "kubernetes:core/v1:Namespace", "kubernetes:batch/v1:Job"}
    for r in objects:
        validate_k8s(r)


def test_objects_use_the_provider_handed_in(tier):
    program, captured = tier
    # Children resolve their provider from their parent: the component carries the one handed in.
    for component in (captured["bouncer"], captured["settings"]):
        assert component.get_provider("kubernetes:apps/v1:Deployment") is captured["provider"]
    for comp in (program.one("cofounder:data:PgBouncer"), program.one("cofounder:data:AppDataSettings")):
        children = program.children(comp)
        assert children and all(r.type.startswith(("kubernetes:", "random:")) for r in children)


def test_pgbouncer_ini(tier):
    program, _ = tier
    ini = _ini(program)
    assert ini["databases"]["cofounder"] == f"host={RDS_HOST} port=5432 dbname=cofounder"
    pgb = ini["pgbouncer"]
    assert pgb["listen_port"] == "6432"
    assert pgb["pool_mode"] == "transaction"
    assert pgb["auth_type"] == "scram-sha-256"
    assert pgb["auth_file"] == "/etc/pgbouncer/userlist.txt"
    assert int(pgb["max_prepared_statements"]) > 0
    assert (pgb["default_pool_size"], pgb["reserve_pool_size"], pgb["max_db_connections"]) == ("20", "5", "25")
    assert pgb["max_client_conn"] == "1000"
    assert pgb["server_tls_sslmode"] == "verify-full"
    assert pgb["server_tls_ca_file"] == "/etc/pgbouncer-ca/rds-ca-bundle.pem"
    assert pgb["stats_users"] == "pgbouncer_stats"


def test_ini_follows_the_budget_inputs():
    args = PgBouncerArgs(namespace="ns", db_host="h", db_name="db", db_user="u", db_password="p",
                         default_pool_size=100, reserve_pool_size=20, max_client_conn=3000, max_prepared_statements=50)
    text = pgbouncer_ini(args, "h")
    assert "default_pool_size = 100\n" in text and "max_db_connections = 120\n" in text
    assert "max_client_conn = 3000\n" in text and "max_prepared_statements = 50\n" in text
    assert userlist({"a": "x", "b": "y"}) == '"a" "x"\n"b" "y"\n'


@pytest.mark.parametrize("kwargs, message", [
    ({"replicas": 1}, "PgBouncer pgb: replicas = 1 is not allowed: expected a value between 2 and 50"),
    ({"max_prepared_statements": 0},
     "PgBouncer pgb: max_prepared_statements = 0 is not allowed: expected a value between 1 and 10000"),
])
def test_args_refuse_unsafe_values(run_program, kwargs, message):
    from components.pgbouncer import PgBouncer
    with pytest.raises(ValueError) as err:
        run_program(lambda: PgBouncer("pgb", PgBouncerArgs(namespace="ns", db_host="h", db_name="db", db_user="u",
                                                             db_password="p", **kwargs)))
    assert str(err.value) == message
    # a RunError: the Pulumi CLI prints the message alone, without a traceback
    assert isinstance(err.value, ComponentArgsError) and isinstance(err.value, pulumi.RunError)


def test_config_secret_holds_ini_userlist_and_exporter_dsn_as_secrets(tier):
    program, _ = tier
    secret = program.one("kubernetes:core/v1:Secret", "pgbouncer-config")
    assert is_secret(secret.inputs["stringData"])
    data = reveal(secret.inputs["stringData"])
    password = program.one("random:index/randomPassword:RandomPassword",
                           "database-roles-pgbouncer-auth-password").outputs["result"]
    stats = program.one("random:index/randomPassword:RandomPassword", "pgbouncer-stats-password").outputs["result"]
    assert data["userlist.txt"] == f'"pgbouncer_auth_a" "{password}"\n"pgbouncer_stats" "{stats}"\n'
    assert data["exporter-connection-string"] == \
        f"postgresql://pgbouncer_stats:{stats}@127.0.0.1:6432/pgbouncer?sslmode=disable"
    assert secret.inputs["metadata"]["namespace"] == "cofounder"


def test_rds_ca_bundle_is_mounted(tier):
    program, _ = tier
    ca = program.one("kubernetes:core/v1:ConfigMap", "pgbouncer-rds-ca")
    pem = ca.inputs["data"]["rds-ca-bundle.pem"]
    assert pem == rds_ca_bundle()
    assert "# Amazon RDS us-east-1 Root CA RSA2048 G1\n-----BEGIN CERTIFICATE-----" in pem
    regions = bundle_regions(pem)
    assert pem.count("-----BEGIN CERTIFICATE-----") == len(regions) == 27 and "us-east-1" in regions


def test_deployment_is_resilient_and_hardened(tier):
    program, _ = tier
    dep = program.one("kubernetes:apps/v1:Deployment")
    spec = dep.inputs["spec"]
    assert dep.inputs["metadata"]["name"] == "pgbouncer" and dep.inputs["metadata"]["namespace"] == "cofounder"
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert {t["podAffinityTerm"]["topologyKey"] for t in anti} == {"kubernetes.io/hostname",
                                                                   "topology.kubernetes.io/zone"}
    for term in anti:
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]
    containers = {c["name"]: c for c in pod["containers"]}
    bouncer = containers["pgbouncer"]
    assert bouncer["image"] == ("edoburu/pgbouncer:v1.25.1-p0"
                                "@sha256:c7bfcaa24de830e29588bb9ad1eb39cebaf07c27149e1974445899b695634bb4")
    assert bouncer["command"] == ["/usr/bin/pgbouncer", "/etc/pgbouncer/pgbouncer.ini"]
    assert bouncer["readinessProbe"]["tcpSocket"] == {"port": "postgres"}
    assert bouncer["livenessProbe"]["tcpSocket"] == {"port": "postgres"}
    assert bouncer["ports"] == [{"name": "postgres", "containerPort": 6432, "protocol": "TCP"}]
    # drain: leave the endpoints, then SIGINT (safe shutdown) to PgBouncer as PID 1
    assert bouncer["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/sh", "-c", "sleep 15; kill -INT 1"]
    assert pod["terminationGracePeriodSeconds"] > 15
    for c in containers.values():
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsUser"] > 0
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
        assert ":" in c["image"] and not c["image"].endswith(":latest")
    exporter = containers["exporter"]
    # tag only, and exactly the tag the pack allows without a digest
    assert exporter["image"] == "quay.io/prometheuscommunity/pgbouncer-exporter:v0.11.0"
    assert exporter["image"] in TAG_ONLY_IMAGES
    assert exporter["ports"][0]["containerPort"] == 9127
    env = exporter["env"][0]
    assert env["name"] == "PGBOUNCER_EXPORTER_CONNECTION_STRING" and "value" not in env
    secret_name = program.one("kubernetes:core/v1:Secret", "pgbouncer-config").outputs["metadata"]["name"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": secret_name, "key": "exporter-connection-string"}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["secret"]["secretName"] == secret_name
    mounts = {m["mountPath"]: m["name"] for m in bouncer["volumeMounts"]}
    assert mounts == {"/etc/pgbouncer": "config", "/etc/pgbouncer-ca": "rds-ca"}


def test_service_and_pdb(tier):
    program, _ = tier
    svc = program.one("kubernetes:core/v1:Service")
    dep = program.one("kubernetes:apps/v1:Deployment")
    assert svc.inputs["metadata"]["name"] == "pgbouncer"
    ports = {p["name"]: p for p in svc.inputs["spec"]["ports"]}
    assert ports["postgres"]["port"] == 6432 and ports["postgres"]["targetPort"] == "postgres"
    assert ports["metrics"]["port"] == 9127
    assert svc.inputs["spec"]["selector"] == dep.inputs["spec"]["selector"]["matchLabels"]
    pdb = program.one("kubernetes:policy/v1:PodDisruptionBudget")
    assert pdb.inputs["spec"]["maxUnavailable"] == 1
    assert pdb.inputs["spec"]["selector"] == dep.inputs["spec"]["selector"]


def test_without_exporter(run_program):
    program = run_program(_data_tier({}, exporter_image=None, replicas=3))
    dep = program.one("kubernetes:apps/v1:Deployment")
    assert [c["name"] for c in dep.inputs["spec"]["template"]["spec"]["containers"]] == ["pgbouncer"]
    assert dep.inputs["spec"]["replicas"] == 3
    assert [p["name"] for p in program.one("kubernetes:core/v1:Service").inputs["spec"]["ports"]] == ["postgres"]


def test_pgbouncer_logs_in_as_pgbouncer_auth_and_looks_up_app_logins(tier):
    program, captured = tier
    ini = _ini(program)["pgbouncer"]
    login = _sync_await(pulumi.Output.from_input(captured["roles"].roles["pgbouncer_auth"].username).future())
    assert login == "pgbouncer_auth_a"  # generation 1
    assert ini["auth_user"] == login
    assert ini["auth_query"] == "SELECT usename, passwd FROM pgbouncer.get_auth($1)"
    users = reveal(program.one("kubernetes:core/v1:Secret", "pgbouncer-config").inputs["stringData"])["userlist.txt"]
    password = program.one("random:index/randomPassword:RandomPassword",
                           "database-roles-pgbouncer-auth-password").outputs["result"]
    # only the auth login and the stats user: the app logins are looked up, the master is never here
    assert [line.split('" "')[0].strip('"') for line in users.splitlines()] == [login, "pgbouncer_stats"]
    assert f'"{login}" "{password}"' in users and "cofounder_admin" not in users


def test_apps_get_their_urls_from_secrets_manager_through_their_own_store(tier):
    program, captured = tier
    settings = captured["settings"]
    assert settings.secret_names == {"backend": ["backend-database", "backend-redis"]}  # frontend: nothing
    store = program.one("kubernetes:external-secrets.io/v1:SecretStore", "app-data-backend-store").inputs
    assert store["metadata"]["name"] == "backend"
    assert store["spec"]["provider"]["aws"] == {"service": "SecretsManager", "region": "us-east-1",
                                                "auth": {"jwt": {"serviceAccountRef": {"name": "backend"}}}}
    db = program.one("kubernetes:external-secrets.io/v1:ExternalSecret", "app-data-backend-database").inputs
    assert db["spec"]["secretStoreRef"] == {"name": "backend", "kind": "SecretStore"}
    assert db["spec"]["target"]["name"] == "backend-database"
    assert db["spec"]["target"]["template"]["data"] == {
        "DATABASE_URL": "postgresql://{{ .migrator_username }}:{{ .migrator_password }}@"
                        f"{RDS_HOST}:5432/cofounder?sslmode=require",
        "DATABASE_URL_POOLED": "postgresql://{{ .app_username }}:{{ .app_password }}@"
                               "pgbouncer.cofounder.svc.cluster.local:6432/cofounder"}
    app_arn = program.one("aws:secretsmanager/secret:Secret", "database-roles-app-secret").outputs["arn"]
    migrator_arn = program.one("aws:secretsmanager/secret:Secret", "database-roles-migrator-secret").outputs["arn"]
    assert {(d["secretKey"], d["remoteRef"]["key"], d["remoteRef"]["property"]) for d in db["spec"]["data"]} == {
        ("migrator_username", migrator_arn, "username"), ("migrator_password", migrator_arn, "password"),
        ("app_username", app_arn, "username"), ("app_password", app_arn, "password")}
    redis = program.one("kubernetes:external-secrets.io/v1:ExternalSecret", "app-data-backend-redis").inputs
    endpoint = "clustercfg.demo-redis.c0ffee.use1.cache.amazonaws.com:6379"
    assert redis["spec"]["target"]["template"]["data"] == {
        "REDIS_URL_SESSIONS": f"rediss://sessions:{{{{ .sessions_password }}}}@{endpoint}",
        "REDIS_URL_PUBSUB": f"rediss://pubsub:{{{{ .pubsub_password }}}}@{endpoint}"}
    assert not any(is_secret(v) for v in (db, redis))  # templates and ARNs only: no password in the object
    arns = [_sync_await(a.future()) for a in settings.secret_arns["backend"]]
    assert sorted(arns) == sorted([app_arn, migrator_arn, *(
        program.one("aws:secretsmanager/secret:Secret", f"redis-user-{r}-secret").outputs["arn"]
        for r in ("sessions", "pubsub"))])
    queue = program.one("kubernetes:core/v1:ConfigMap", "app-data-queue")
    assert queue.inputs["metadata"]["name"] == "cofounder-queue"
    data = queue.inputs["data"]
    assert data["AGENT_QUEUE_TIERS"] == "high,normal,low"
    assert data["AGENT_QUEUE_URL_HIGH"] == "https://sqs.us-east-1.amazonaws.com/123456789012/demo-agent-execution-high"
    assert not is_secret(data)  # queue URLs are not secrets: access is IAM


def test_a_new_secret_version_resyncs_the_external_secret(run_program):
    first = run_program(_data_tier({})).one("kubernetes:external-secrets.io/v1:ExternalSecret",
                                            "app-data-backend-database").inputs["metadata"]["annotations"]
    assert set(first) == {"force-sync"} and first["force-sync"].count(",") == 1  # migrator and app versions


def test_no_secret_outside_a_secret_wrapper(tier):
    program, _ = tier
    # stats + 3 database roles + 6 Valkey users (default included)
    assert len(program.of_type("random:index/randomPassword:RandomPassword")) == 10
    assert secret_leaks(program) == []


def test_the_leak_check_can_fail(run_program):
    """A password written into a ConfigMap is caught."""
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        redis = Redis("redis", RedisArgs(identifier="x", vpc_id="v", subnet_ids=SUBNETS))
        k8s.core.v1.ConfigMap("leak", data={"pw": pulumi.Output.unsecret(redis.users["sessions"].password)},
                              opts=pulumi.ResourceOptions(provider=provider))
    leaks = secret_leaks(run_program(program))
    assert leaks == ["urn:pulumi:test::cofounder::kubernetes:core/v1:ConfigMap::leak.data.pw"]
