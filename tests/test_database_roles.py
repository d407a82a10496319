"""components/database_roles.py: the Postgres roles by purpose, their secrets, and the bootstrap Job."""

from __future__ import annotations

import json
import re

import pulumi
import pulumi_kubernetes as k8s
import pytest
from pulumi.runtime.sync_await import _sync_await

from components.database_roles import (
    POSTGRES_IMAGE,
    PURPOSES,
    DatabaseRoles,
    DatabaseRolesArgs,
    login_for,
    roles_sql,
)
from components.external_secrets import ExternalSecrets, ExternalSecretsArgs
from components.pgbouncer import AUTH_QUERY, rds_ca_bundle
from components.postgres import Postgres, PostgresArgs
from toolkit.harness import is_secret, reveal

SUBNETS = ["subnet-a", "subnet-b"]
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/X"


def _roles(run_program, generation: int = 1, captured: dict | None = None):
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        in_cluster = pulumi.ResourceOptions(providers={"kubernetes": provider})
        pg = Postgres("postgres", PostgresArgs(identifier="demo-postgres", vpc_id="vpc-1", subnet_ids=SUBNETS))
        eso = ExternalSecrets("external-secrets", ExternalSecretsArgs(), opts=in_cluster)
        roles = DatabaseRoles("database-roles", DatabaseRolesArgs(
            namespace="cofounder", namespace_name="cofounder", db_host=pg.address, db_name=pg.db_name,
            master_secret_arn=pg.master_secret_arn, secrets_key_arn=pg.secrets_key_arn, generation=generation,
            secret_name_prefix="demo", oidc_provider_arn=f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}",
            oidc_issuer_url=f"https://{ISSUER}", region="us-east-1", external_secrets_release=eso.release,
            server_ca_pem=rds_ca_bundle()), opts=in_cluster)
        if captured is not None:
            captured["roles"] = roles
    return run_program(program)


def _env(job) -> dict:
    (container,) = job.inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def test_each_purpose_has_its_own_generated_password_in_secrets_manager(run_program):
    captured = {}
    p = _roles(run_program, captured=captured)
    key_arn = p.one("aws:kms/key:Key", "postgres-secrets-kms").outputs["arn"]
    for purpose in PURPOSES:
        stem = f"database-roles-{purpose.replace('_', '-')}"
        password = p.one("random:index/randomPassword:RandomPassword", f"{stem}-password")
        assert password.inputs["length"] == 40 and password.inputs["keepers"] == {"generation": "1"}
        secret = p.one("aws:secretsmanager/secret:Secret", f"{stem}-secret")
        assert secret.inputs["name"] == f"demo/postgres/{purpose}" and secret.inputs["kmsKeyId"] == key_arn
        version = p.one("aws:secretsmanager/secretVersion:SecretVersion", f"{stem}-secret-version").inputs
        assert is_secret(version["secretString"])
        assert json.loads(reveal(version["secretString"])) == {
            "username": f"{purpose}_a", "password": password.outputs["result"]}
        assert _sync_await(pulumi.Output.from_input(captured["roles"].roles[purpose].username).future()) == \
            f"{purpose}_a"


def test_logins_alternate_with_the_generation():
    assert [login_for("app", g) for g in (1, 2, 3, 4)] == ["app_a", "app_b", "app_a", "app_b"]


def test_a_rotation_is_a_new_job_for_the_other_login(run_program):
    first = _roles(run_program, generation=1).one("kubernetes:batch/v1:Job")
    second = _roles(run_program, generation=2).one("kubernetes:batch/v1:Job")
    assert re.fullmatch(r"database-bootstrap-[0-9a-f]{10}", first.inputs["metadata"]["name"])
    # a Job's template is immutable: the new passwords (and the other logins) are a new Job
    assert first.inputs["metadata"]["name"] != second.inputs["metadata"]["name"]
    assert {k: v for k, v in _env(first).items() if k.endswith("_LOGIN")} == {
        "APP_LOGIN": "app_a", "MIGRATOR_LOGIN": "migrator_a", "PGBOUNCER_AUTH_LOGIN": "pgbouncer_auth_a"}
    assert {k: v for k, v in _env(second).items() if k.endswith("_LOGIN")} == {
        "APP_LOGIN": "app_b", "MIGRATOR_LOGIN": "migrator_b", "PGBOUNCER_AUTH_LOGIN": "pgbouncer_auth_b"}


def test_the_job_runs_the_repository_sql_over_verified_tls_as_a_restricted_pod(run_program, validate_k8s):
    p = _roles(run_program)
    job = p.one("kubernetes:batch/v1:Job")
    validate_k8s(job)
    spec = job.inputs["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["image"] == POSTGRES_IMAGE and "@sha256:" in POSTGRES_IMAGE
    assert container["command"] == ["psql", "--no-psqlrc", "--file", "/etc/database-bootstrap/database-roles.sql"]
    env = _env(job)
    assert env["PGSSLMODE"] == "verify-full" and env["PGHOST"].startswith("demo-postgres.")
    assert container["envFrom"] == [{"secretRef": {"name": "database-bootstrap"}}]
    assert spec["serviceAccountName"] == "database-bootstrap" and spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["restartPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    files = p.one("kubernetes:core/v1:ConfigMap", "database-roles-sql")
    assert files.inputs["data"] == {"database-roles.sql": roles_sql(), "rds-ca-bundle.pem": rds_ca_bundle()}
    account = p.one("kubernetes:core/v1:ServiceAccount", "database-roles-service-account")
    validate_k8s(account)
    # Pulumi waits for the Job after the Secret it loads is declared
    credentials = p.one("kubernetes:external-secrets.io/v1:ExternalSecret", "database-roles-credentials")
    assert credentials.urn in job.options["dependsOn"]


def test_only_the_bootstrap_reads_the_master_secret_and_exactly_the_role_secrets(run_program):
    p = _roles(run_program)
    master = p.one("aws:rds/instance:Instance").outputs["masterUserSecrets"][0]["secretArn"]
    credentials = p.one("kubernetes:external-secrets.io/v1:ExternalSecret", "database-roles-credentials").inputs
    assert credentials["metadata"]["labels"]["app.kubernetes.io/component"] == "database-bootstrap"
    fields = {d["secretKey"]: (d["remoteRef"]["key"], d["remoteRef"]["property"]) for d in credentials["spec"]["data"]}
    assert fields["PGUSER"] == (master, "username") and fields["PGPASSWORD"] == (master, "password")
    role_arns = {p.one("aws:secretsmanager/secret:Secret", f"database-roles-{x.replace('_', '-')}-secret")
                 .outputs["arn"] for x in PURPOSES}
    policy = json.loads(p.one("aws:iam/rolePolicy:RolePolicy", "database-roles-irsa-policy").inputs["policy"])
    read, decrypt = policy["Statement"]
    assert set(read["Resource"]) == {master, *role_arns}
    assert decrypt["Resource"] == [p.one("aws:kms/key:Key", "postgres-secrets-kms").outputs["arn"]]
    assert decrypt["Condition"] == {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}
    trust = json.loads(p.one("aws:iam/role:Role", "database-roles-irsa-role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Condition"]["StringEquals"][f"{ISSUER}:sub"] == \
        "system:serviceaccount:cofounder:database-bootstrap"


def test_sql_is_idempotent_and_grants_by_purpose():
    sql = roles_sql()
    env_names = set(re.findall(r"^\\getenv \w+ (\w+)$", sql, re.M))
    # every variable the SQL reads is one the Job sets (env) or loads (its Secret)
    assert env_names == {"APP_SCHEMA", "PGDATABASE", "APP_LOGIN", "APP_PASSWORD", "MIGRATOR_LOGIN",
                         "MIGRATOR_PASSWORD", "PGBOUNCER_AUTH_LOGIN", "PGBOUNCER_AUTH_PASSWORD"}
    assert "\\set ON_ERROR_STOP on" in sql
    creates = re.findall(r"^\s*(CREATE (?!OR REPLACE)[A-Z ]+?)(?: IF NOT EXISTS)?\s", sql, re.M)
    assert all("IF NOT EXISTS" in line or "ROLE" in line
               for line in re.findall(r"^\s*CREATE .*$", sql, re.M) if "OR REPLACE" not in line), creates
    assert "IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles" in sql  # roles: the DO-block pattern
    assert not re.search(r"\bDROP\b|\bSUPERUSER\b(?<!NOSUPERUSER)", sql.replace("NOSUPERUSER", ""))
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA :\"schema\" TO app;" in sql
    assert "CREATE SCHEMA IF NOT EXISTS :\"schema\" AUTHORIZATION migrator;" in sql
    # PgBouncer's lookup: SECURITY DEFINER, only the app logins, callable by pgbouncer_auth alone
    assert "SECURITY DEFINER" in sql and "AND s.usename IN ('app_a', 'app_b')" in sql
    assert "REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;" in sql
    assert "GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO pgbouncer_auth;" in sql
    assert "pgbouncer.get_auth($1)" in AUTH_QUERY


@pytest.mark.parametrize("purpose", PURPOSES)
def test_sql_sets_the_password_of_this_generation_login_only(purpose):
    variable = {"app": "app", "migrator": "migrator", "pgbouncer_auth": "auth"}[purpose]
    assert f"ALTER ROLE :\"{variable}_login\" WITH LOGIN PASSWORD :'{variable}_password';" in roles_sql()
