"""components/redis.py: a Valkey cluster (cluster mode) with TLS, RBAC users per role and failover."""

from __future__ import annotations

import json

import pulumi
import pytest
from pulumi.runtime.sync_await import _sync_await

from components import ComponentArgsError
from components.redis import Redis, RedisArgs, parameter_group_family
from components.valkey_users import ACCESS_STRINGS, DEFAULT_USER_ACCESS, ROLES
from toolkit.harness import is_secret, reveal

SUBNETS = ["subnet-a", "subnet-b", "subnet-c"]


def _redis(run_program, capture=None, **overrides):
    args = RedisArgs(identifier="demo-redis", vpc_id="vpc-1", subnet_ids=SUBNETS,
                     allowed_security_group_ids=["sg-cluster"], **overrides)

    def program():
        r = Redis("cache", args)
        if capture is not None:
            capture["redis"] = r
    return run_program(program)


def test_defaults_cluster_mode_tls_auth_failover(run_program):
    p = _redis(run_program)
    group = p.one("aws:elasticache/replicationGroup:ReplicationGroup")
    i = group.inputs
    assert (i["engine"], i["engineVersion"]) == ("valkey", "8.1")
    assert i["clusterMode"] == "enabled"
    assert (i["numNodeGroups"], i["replicasPerNodeGroup"]) == (2, 1)
    assert i["automaticFailoverEnabled"] is True and i["multiAzEnabled"] is True
    assert i["transitEncryptionEnabled"] is True and i["transitEncryptionMode"] == "required"
    assert i["atRestEncryptionEnabled"] is True
    assert i["kmsKeyId"] == p.one("aws:kms/key:Key", "cache-kms").outputs["arn"]
    assert "authToken" not in i
    assert i["userGroupIds"] == [p.one("aws:elasticache/userGroup:UserGroup").outputs["userGroupId"]]
    assert i["snapshotRetentionLimit"] == 7
    assert i["port"] == 6379
    assert group.options["protect"] is True
    assert p.one("aws:kms/key:Key", "cache-kms").options["protect"] is True  # losing the key loses every snapshot


def test_final_snapshot_name_is_unique_per_group(run_program):
    p = _redis(run_program)
    suffix = p.one("random:index/randomId:RandomId")
    # a fixed "<id>-final" collides with the snapshot of an earlier group of the same identifier
    assert suffix.name == "cache-final-snapshot-suffix" and suffix.parent == p.one("cofounder:data:Redis").urn
    assert suffix.inputs["keepers"] == {"identifier": "demo-redis"}
    assert p.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs["finalSnapshotIdentifier"] == \
        f"demo-redis-final-{suffix.outputs['hex']}"


def test_parameter_group_enables_cluster_mode_and_declares_the_eviction_policy(run_program):
    p = _redis(run_program)
    params = p.one("aws:elasticache/parameterGroup:ParameterGroup")
    assert params.inputs["family"] == "valkey8"
    # every key carries a TTL; one-hit LLM cache entries go before sessions read on every request
    assert params.inputs["parameters"] == [{"name": "cluster-enabled", "value": "yes"},
                                           {"name": "maxmemory-policy", "value": "volatile-lfu"}]
    # unchanged: the description is ForceNew, and the group's name is fixed
    assert params.inputs["description"] == "demo-redis: cluster mode"
    assert p.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs["parameterGroupName"] == \
        params.outputs["name"]
    assert parameter_group_family("7.2") == "valkey7"


def test_one_user_per_role_with_its_access_string_and_the_default_user_off(run_program):
    p = _redis(run_program)
    users = {u.inputs["userName"]: u for u in p.of_type("aws:elasticache/user:User")}
    assert set(users) == {"default", *ROLES}
    for name, user in users.items():
        assert user.inputs["engine"] == "valkey" and user.inputs["userId"] == f"demo-redis-{name}"
        assert user.inputs["accessString"] == ACCESS_STRINGS.get(name, DEFAULT_USER_ACCESS)
        mode = user.inputs["authenticationMode"]
        assert is_secret(mode) and reveal(mode) == {"type": "password", "passwords": [
            p.one("random:index/randomPassword:RandomPassword", f"cache-user-{name}-password").outputs["result"]]}
    assert users["default"].inputs["accessString"] == "off resetchannels -@all"
    # key prefixes per role; pub/sub has channels and no key at all
    assert ACCESS_STRINGS["sessions"].startswith("on ~sess:* resetchannels -@all ")
    assert "~" not in ACCESS_STRINGS["pubsub"] and "&agent:*" in ACCESS_STRINGS["pubsub"].split()
    for access in ACCESS_STRINGS.values():
        rules = access.split()
        assert "-@all" in rules and not [r for r in rules if r.startswith("+@")]  # commands, never categories
        assert not {"~*", "allkeys", "allcommands", "allchannels", "+flushall", "+config", "+keys"} & set(rules)
    group = p.one("aws:elasticache/userGroup:UserGroup")
    assert group.inputs["engine"] == "valkey" and group.inputs["userGroupId"] == "demo-redis-users"
    assert sorted(group.inputs["userIds"]) == sorted(u.outputs["userId"] for u in users.values())


def test_user_passwords_are_generated_and_kept_in_secrets_manager(run_program):
    captured = {}
    p = _redis(run_program, capture=captured)
    key = p.one("aws:kms/key:Key", "cache-secrets-kms")
    for role in ROLES:
        password = p.one("random:index/randomPassword:RandomPassword", f"cache-user-{role}-password")
        assert password.inputs["length"] == 64 and password.inputs["special"] is False  # nothing a URL escapes
        secret = p.one("aws:secretsmanager/secret:Secret", f"cache-user-{role}-secret")
        assert secret.inputs["name"] == f"cofounder/valkey/{role}" and secret.inputs["kmsKeyId"] == key.outputs["arn"]
        version = p.one("aws:secretsmanager/secretVersion:SecretVersion", f"cache-user-{role}-secret-version")
        assert is_secret(version.inputs["secretString"])
        assert json.loads(reveal(version.inputs["secretString"])) == {
            "username": role, "password": password.outputs["result"]}
        stored = captured["redis"].users[role]
        assert _sync_await(stored.secret_arn.future()) == secret.outputs["arn"]
    assert set(captured["redis"].users) == set(ROLES)  # the default user's password is handed to nobody


def _slots(program, role: str = "sessions") -> tuple[dict, dict | None, list, str]:
    """The role's two password slots' keepers, the user's passwords and the stored one."""
    rp = "random:index/randomPassword:RandomPassword"
    odd = program.one(rp, f"cache-user-{role}-password")
    even = next(iter(r for r in program.of_type(rp) if r.name == f"cache-user-{role}-password-b"), None)
    user = next(u for u in program.of_type("aws:elasticache/user:User") if u.inputs["userName"] == role)
    version = program.one("aws:secretsmanager/secretVersion:SecretVersion", f"cache-user-{role}-secret-version")
    values = {odd.outputs["result"]: "odd", **({even.outputs["result"]: "even"} if even else {})}
    passwords = [values[p] for p in reveal(user.inputs["authenticationMode"])["passwords"]]
    stored = values[json.loads(reveal(version.inputs["secretString"]))["password"]]
    return odd.inputs["keepers"], even.inputs["keepers"] if even else None, passwords, stored


def test_raising_the_generation_draws_a_new_password_and_keeps_the_previous_one_valid(run_program):
    # generation 1: one password, nothing before it
    assert _slots(_redis(run_program)) == ({"generation": "1"}, None, ["odd"], "odd")
    # generation 2 draws the even slot and stores it; the odd slot (generation 1's, unchanged)
    # still authenticates the pods that have not been replaced yet
    assert _slots(_redis(run_program, credentials_generation=2)) == (
        {"generation": "1"}, {"generation": "2"}, ["even", "odd"], "even")
    # generation 3 redraws the odd slot; generation 2's stays valid
    assert _slots(_redis(run_program, credentials_generation=3)) == (
        {"generation": "3"}, {"generation": "2"}, ["odd", "even"], "odd")


def test_network_private_subnets_and_only_the_cluster_on_6379(run_program):
    p = _redis(run_program)
    assert p.one("aws:elasticache/subnetGroup:SubnetGroup").inputs["subnetIds"] == SUBNETS
    (rule,) = p.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["referencedSecurityGroupId"] == "sg-cluster"
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (6379, 6379)
    sg = p.one("aws:ec2/securityGroup:SecurityGroup")
    assert not sg.inputs.get("egress")
    assert p.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs["securityGroupIds"] == [sg.outputs["id"]]


def test_overrides(run_program):
    p = _redis(run_program, shards=1, replicas_per_shard=1, multi_az=False, snapshot_retention_days=0,
               protect=False, node_type="cache.t4g.small")
    group = p.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert (group.inputs["numNodeGroups"], group.inputs["multiAzEnabled"]) == (1, False)
    assert group.inputs["snapshotRetentionLimit"] == 0 and group.inputs["nodeType"] == "cache.t4g.small"
    assert group.options["protect"] is False
    assert all(k.options["protect"] is False for k in p.of_type("aws:kms/key:Key"))


def test_zero_replicas_is_refused(run_program):
    from components.redis import Redis
    with pytest.raises(ValueError, match="replicas_per_shard = 0 is not allowed: expected a value between 1 and 5") as err:
        run_program(lambda: Redis("r", RedisArgs(identifier="x", vpc_id="v", subnet_ids=SUBNETS, replicas_per_shard=0)))
    # a RunError: the Pulumi CLI prints the message alone, without a traceback
    assert isinstance(err.value, ComponentArgsError) and isinstance(err.value, pulumi.RunError)


def test_long_identifier_is_refused(run_program):
    from components.redis import Redis
    with pytest.raises(ComponentArgsError, match="expected a lowercase id of at most 40 characters"):
        run_program(lambda: Redis("r", RedisArgs(identifier="x" * 41, vpc_id="v", subnet_ids=SUBNETS)))


def test_config_refuses_zero_replicas(run_stack_with):
    from infra.config import ConfigError
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:redis": {"replicasPerShard": 0}})
    assert str(err.value) == ("stacks/Pulumi.dev.yaml: cofounder:redis.replicasPerShard = 0 is not allowed: "
                              "expected a value between 1 and 5")


@pytest.mark.parametrize("stack, expected", [
    ("dev", {"nodeType": "cache.t4g.small", "numNodeGroups": 1, "replicasPerNodeGroup": 1,
             "multiAzEnabled": False, "snapshotRetentionLimit": 1}),
    ("staging", {"nodeType": "cache.t4g.medium", "numNodeGroups": 2, "replicasPerNodeGroup": 1,
                 "multiAzEnabled": True, "snapshotRetentionLimit": 3}),
    ("prod", {"nodeType": "cache.r7g.large", "numNodeGroups": 3, "replicasPerNodeGroup": 2,
              "multiAzEnabled": True, "snapshotRetentionLimit": 14}),
])
def test_stack_settings(stack_program, stack, expected):
    p = stack_program(stack)
    group = p.one("aws:elasticache/replicationGroup:ReplicationGroup")
    assert {k: group.inputs[k] for k in expected} == expected
    assert group.inputs["replicationGroupId"] == f"cofounder-{stack}-redis"
    suffix = p.one("random:index/randomId:RandomId", "redis-final-snapshot-suffix")
    assert group.inputs["finalSnapshotIdentifier"] == f"cofounder-{stack}-redis-final-{suffix.outputs['hex']}"
    assert group.inputs["transitEncryptionMode"] == "required" and group.inputs["automaticFailoverEnabled"] is True
    assert group.options["protect"] is (stack == "prod")
    assert p.outputs["redisConfigurationEndpoint"].startswith(f"clustercfg.cofounder-{stack}-redis.")


def test_the_access_strings_are_the_ones_docs_data_tier_shows():
    from pathlib import Path

    from components.valkey_users import CLIENT_COMMANDS
    doc = (Path(__file__).parent.parent / "docs" / "data-tier.md").read_text()
    for role, access in {**ACCESS_STRINGS, "default": DEFAULT_USER_ACCESS}.items():
        shown = access.replace(f" {CLIENT_COMMANDS}", "")
        assert f"| `{role}` | `{shown}`" in doc, role
    assert f"`{CLIENT_COMMANDS}`" in doc
