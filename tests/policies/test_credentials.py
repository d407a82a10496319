"""The credential rules: RDS-managed master password, Valkey RBAC, the master secret only for the
bootstrap, and secret stores scoped to their service account's IRSA role."""

from __future__ import annotations

import json

import pytest

from tests.conftest import STACKS
from tests.policies.helpers import resource, stack_violations, violations

NEW_RULES = ["rds-instance-managed-master-password", "elasticache-replication-group-rbac",
             "elasticache-user-least-privilege", "elasticache-user-group-default-user-off",
             "k8s-no-master-database-credentials", "k8s-secret-store-scoped-to-service-account"]
INSTANCE = "aws:rds/instance:Instance"
GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
USER = "aws:elasticache/user:User"
USER_GROUP = "aws:elasticache/userGroup:UserGroup"
ES = "kubernetes:external-secrets.io/v1:ExternalSecret"
STORE = "kubernetes:external-secrets.io/v1:SecretStore"
MASTER = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-abc"
APP_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cofounder/postgres/app-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/backend-irsa-role"
SECRET = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "x"}


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] in NEW_RULES] == []


def test_rds_managed_master_password():
    good = {"manageMasterUserPassword": True, "masterUserSecretKmsKeyId": "arn:aws:kms:us-east-1:1:key/k"}
    rule = "rds-instance-managed-master-password"
    assert violations(rule, INSTANCE, good) == []
    assert violations(rule, INSTANCE, {"password": SECRET})  # the old pulumi-random password
    assert violations(rule, INSTANCE, {**good, "masterUserSecretKmsKeyId": None})  # AWS-managed key
    assert violations(rule, INSTANCE, {"replicateSourceDb": "src"}) == []  # a replica has the source's user


def test_replication_group_uses_rbac_and_no_token():
    rule = "elasticache-replication-group-rbac"
    assert violations(rule, GROUP, {"userGroupIds": ["g"]}) == []
    assert violations(rule, GROUP, {"authToken": SECRET})
    assert violations(rule, GROUP, {"userGroupIds": ["g"], "authToken": SECRET})


@pytest.mark.parametrize("access", ["on ~* +@all", "on allkeys -@all +get", "on ~sess:* -@all +@write",
                                    "on ~sess:* allchannels -@all +get", "on &* -@all +publish"])
def test_a_user_with_broad_access_is_a_violation(access):
    assert violations("elasticache-user-least-privilege", USER, {"userName": "sessions", "accessString": access})


def test_the_default_user_must_be_off_and_role_users_pass():
    from components.valkey_users import ACCESS_STRINGS, DEFAULT_USER_ACCESS
    rule = "elasticache-user-least-privilege"
    for role, access in ACCESS_STRINGS.items():
        assert violations(rule, USER, {"userName": role, "accessString": access}) == []
    assert violations(rule, USER, {"userName": "default", "accessString": DEFAULT_USER_ACCESS}) == []
    assert violations(rule, USER, {"userName": "default", "accessString": "on ~sess:* -@all +get"})


def _cache_stack(default_access: str | None):
    users = [resource(USER, "sessions", {"userId": "c-sessions", "userName": "sessions",
                                         "accessString": "on ~sess:* -@all +get"})]
    if default_access is not None:
        users.append(resource(USER, "default", {"userId": "c-default", "userName": "default",
                                                "accessString": default_access}))
    group = resource(USER_GROUP, "users", {"userGroupId": "c-users", "userIds": [
        u.props["userId"] for u in users]})
    return [*users, group, resource(GROUP, "cluster", {"userGroupIds": ["c-users"]})]


def test_the_user_group_needs_its_own_default_user_switched_off():
    rule = "elasticache-user-group-default-user-off"
    assert stack_violations(rule, _cache_stack("off resetchannels -@all")) == []
    assert stack_violations(rule, _cache_stack(None))  # ElastiCache's own default user: full access
    assert stack_violations(rule, _cache_stack("on ~* +@all"))
    assert stack_violations(rule, [resource(GROUP, "cluster", {"userGroupIds": ["elsewhere"]})])


def _secrets_stack(*, es_labels=None, store_account="backend", granted=(APP_SECRET,), pod_account="backend",
                   extra=()):
    labels = es_labels if es_labels is not None else {"app.kubernetes.io/component": "data"}
    return [
        resource(INSTANCE, "db", {"masterUserSecrets": [{"secretArn": MASTER}]}),
        resource("kubernetes:core/v1:ServiceAccount", "sa", {"metadata": {
            "name": "backend", "namespace": "cofounder", "annotations": {"eks.amazonaws.com/role-arn": ROLE_ARN}}}),
        resource("aws:iam/role:Role", "role", {"arn": ROLE_ARN, "name": "backend-irsa-role"}),
        resource("aws:iam/rolePolicy:RolePolicy", "policy", {"role": "backend-irsa-role", "policy": json.dumps({
            "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
                                                    "Resource": list(granted)}]})}),
        resource(STORE, "store", {"metadata": {"name": "backend", "namespace": "cofounder"}, "spec": {"provider": {
            "aws": {"service": "SecretsManager", "auth": {"jwt": {"serviceAccountRef": {"name": store_account}}}}}}}),
        resource(ES, "es", {"metadata": {"name": "backend-database", "namespace": "cofounder", "labels": labels},
                            "spec": {"secretStoreRef": {"name": "backend", "kind": "SecretStore"},
                                     "target": {"name": "backend-database"},
                                     "data": [{"secretKey": "p", "remoteRef": {"key": APP_SECRET, "property": "x"}},
                                              *extra]}}),
        resource("kubernetes:apps/v1:Deployment", "backend", {"metadata": {"name": "backend", "namespace": "cofounder"},
                 "spec": {"template": {"spec": {"serviceAccountName": pod_account, "containers": [
                     {"name": "backend", "envFrom": [{"secretRef": {"name": "backend-database"}}]}]}}}}),
    ]


def test_a_store_scoped_to_its_pods_account_passes():
    assert stack_violations("k8s-secret-store-scoped-to-service-account", _secrets_stack()) == []
    assert stack_violations("k8s-no-master-database-credentials", _secrets_stack()) == []


@pytest.mark.parametrize("change", [
    {"granted": ("arn:aws:secretsmanager:us-east-1:123456789012:secret:*",)},  # any secret
    {"granted": (APP_SECRET, "arn:aws:secretsmanager:us-east-1:123456789012:secret:other")},  # more than it syncs
    {"granted": ()},  # syncs what the role does not grant
    {"store_account": "default"},  # an account without an IRSA role of this stack
    {"pod_account": "worker"},  # the pod runs as another account than the one the Secret was read with
])
def test_a_store_not_scoped_to_its_service_account_is_a_violation(change):
    assert stack_violations("k8s-secret-store-scoped-to-service-account", _secrets_stack(**change))


def test_a_cluster_secret_store_is_a_violation():
    store = resource("kubernetes:external-secrets.io/v1:ClusterSecretStore", "all", {"spec": {}})
    assert stack_violations("k8s-secret-store-scoped-to-service-account", [store])


def test_the_master_secret_outside_the_bootstrap_is_a_violation():
    rule = "k8s-no-master-database-credentials"
    master_field = ({"secretKey": "PGPASSWORD", "remoteRef": {"key": MASTER, "property": "password"}},)
    # an app's ExternalSecret with the master password, and the app loading it
    found = stack_violations(rule, _secrets_stack(extra=master_field, granted=(APP_SECRET, MASTER)))
    assert found and "refers to the RDS master secret" in found[0][0]
    # the bootstrap's own ExternalSecret may; an app loading that Secret may not
    bootstrap = {"app.kubernetes.io/component": "database-bootstrap"}
    found = stack_violations(rule, _secrets_stack(es_labels=bootstrap, extra=master_field,
                                                  granted=(APP_SECRET, MASTER)))
    assert [m for m, _ in found] == ["'backend' loads Secret 'backend-database', which holds the RDS master "
                                     "credentials"]
    leak = resource("kubernetes:core/v1:ConfigMap", "leak", {"metadata": {"name": "leak"}, "data": {"arn": MASTER}})
    assert stack_violations(rule, [*_secrets_stack(), leak])
