"""components/postgres.py: a private, encrypted, monitored RDS for PostgreSQL instance."""

from __future__ import annotations

import json
import re

import pytest

from components import ComponentArgsError
from components.postgres import PASSWORD_SPECIALS, Postgres, PostgresArgs, parameter_group_family
from toolkit.harness import reveal

SUBNETS = ["subnet-a", "subnet-b", "subnet-c"]
NODES_SG = "sg-cluster"


def _postgres(run_program, **overrides):
    args = PostgresArgs(identifier="demo-postgres", vpc_id="vpc-1", subnet_ids=SUBNETS,
                        allowed_security_group_ids=[NODES_SG], **overrides)
    return run_program(lambda: Postgres("pg", args))


def test_defaults_are_production_safe(run_program):
    p = _postgres(run_program)
    db = p.one("aws:rds/instance:Instance")
    i = db.inputs
    # the major alone: with auto minor upgrades RDS moves the minor, and a pinned one would read as a downgrade
    assert (i["engine"], i["engineVersion"]) == ("postgres", "17")
    assert i["publiclyAccessible"] is False
    assert i["multiAz"] is True
    assert (i["storageType"], i["storageEncrypted"]) == ("gp3", True)
    assert i["allocatedStorage"] == 50 and i["maxAllocatedStorage"] == 500
    kms_arn = p.one("aws:kms/key:Key", "pg-kms").outputs["arn"]
    assert i["kmsKeyId"] == kms_arn and i["performanceInsightsKmsKeyId"] == kms_arn
    assert i["performanceInsightsEnabled"] is True and i["performanceInsightsRetentionPeriod"] == 7
    assert i["backupRetentionPeriod"] == 14
    assert i["deletionProtection"] is True
    assert i["skipFinalSnapshot"] is False
    assert i["copyTagsToSnapshot"] is True and i["autoMinorVersionUpgrade"] is True
    assert i["allowMajorVersionUpgrade"] is False
    assert i["iamDatabaseAuthenticationEnabled"] is False
    assert i["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert i["caCertIdentifier"] == "rds-ca-rsa2048-g1"
    assert db.options["protect"] is True
    key = p.one("aws:kms/key:Key", "pg-kms")
    assert key.inputs["enableKeyRotation"] is True
    assert key.options["protect"] is True  # losing the key loses the data and every snapshot


def test_final_snapshot_name_is_unique_per_instance(run_program):
    p = _postgres(run_program)
    suffix = p.one("random:index/randomId:RandomId")
    # a fixed "<id>-final" collides with the snapshot of an earlier instance of the same identifier
    assert suffix.name == "pg-final-snapshot-suffix" and suffix.parent == p.one("cofounder:data:Postgres").urn
    assert suffix.inputs["keepers"] == {"identifier": "demo-postgres"} and suffix.inputs["byteLength"] == 4
    final = p.one("aws:rds/instance:Instance").inputs["finalSnapshotIdentifier"]
    assert final == f"demo-postgres-final-{suffix.outputs['hex']}"
    assert re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", final) and "--" not in final  # RDS's naming rule


def test_enhanced_monitoring_has_its_own_role(run_program):
    p = _postgres(run_program)
    db = p.one("aws:rds/instance:Instance").inputs
    role = p.one("aws:iam/role:Role")
    assert db["monitoringInterval"] == 60 and db["monitoringRoleArn"] == role.outputs["arn"]
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    assert p.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs["policyArn"] == \
        "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


def test_monitoring_off_creates_no_role(run_program):
    p = _postgres(run_program, monitoring_interval_seconds=0)
    assert not p.of_type("aws:iam/role:Role")
    assert p.one("aws:rds/instance:Instance").inputs["monitoringInterval"] == 0


def test_parameter_group(run_program):
    p = _postgres(run_program, log_min_duration_statement_ms=250)
    group = p.one("aws:rds/parameterGroup:ParameterGroup")
    assert group.inputs["family"] == "postgres17"
    params = {x["name"]: x for x in group.inputs["parameters"]}
    assert params["shared_preload_libraries"] == {"name": "shared_preload_libraries", "value": "pg_stat_statements",
                                                  "applyMethod": "pending-reboot"}
    assert params["pg_stat_statements.track"]["value"] == "all"
    assert params["log_min_duration_statement"]["value"] == "250"
    assert params["rds.force_ssl"]["value"] == "1"
    assert p.one("aws:rds/instance:Instance").inputs["parameterGroupName"] == group.outputs["name"]
    assert parameter_group_family("16.4") == "postgres16" and parameter_group_family("17") == "postgres17"


def test_full_version_pin_without_auto_minor_upgrade(run_program):
    p = _postgres(run_program, engine_version="17.6", auto_minor_version_upgrade=False)
    db = p.one("aws:rds/instance:Instance").inputs
    assert (db["engineVersion"], db["autoMinorVersionUpgrade"]) == ("17.6", False)
    assert p.one("aws:rds/parameterGroup:ParameterGroup").inputs["family"] == "postgres17"


@pytest.mark.parametrize("kwargs, message", [
    ({"engine_version": "17.6"}, "engine_version = '17.6' is not allowed: expected the major version alone (17)"),
    ({"engine_version": "17", "auto_minor_version_upgrade": False},
     "engine_version = '17' is not allowed: expected a full version such as 17.6"),
])
def test_args_refuse_a_version_that_drifts(run_program, kwargs, message):
    from components.postgres import Postgres
    with pytest.raises(ComponentArgsError, match=re.escape(message)):
        run_program(lambda: Postgres("db", PostgresArgs(identifier="x", vpc_id="v", subnet_ids=SUBNETS, **kwargs)))


def test_network_private_subnets_and_only_the_cluster_on_5432(run_program):
    p = _postgres(run_program)
    group = p.one("aws:rds/subnetGroup:SubnetGroup")
    assert group.inputs["subnetIds"] == SUBNETS
    sg = p.one("aws:ec2/securityGroup:SecurityGroup")
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")
    (rule,) = p.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rule.inputs["referencedSecurityGroupId"] == NODES_SG
    assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (5432, 5432, "tcp")
    assert "cidrIpv4" not in rule.inputs
    db = p.one("aws:rds/instance:Instance").inputs
    assert db["vpcSecurityGroupIds"] == [sg.outputs["id"]]
    assert db["dbSubnetGroupName"] == group.outputs["name"]


def test_no_allowed_groups_admits_nobody(run_program):
    p = run_program(lambda: Postgres("pg", PostgresArgs(identifier="x", vpc_id="vpc-1", subnet_ids=SUBNETS)))
    assert not p.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def test_master_password_is_managed_by_rds_with_its_own_key_and_never_in_the_state(run_program):
    p = _postgres(run_program)
    db = p.one("aws:rds/instance:Instance")
    key = p.one("aws:kms/key:Key", "pg-secrets-kms")
    assert db.inputs["manageMasterUserPassword"] is True
    assert db.inputs["masterUserSecretKmsKeyId"] == key.outputs["arn"]
    assert "password" not in db.inputs and not p.of_type("random:index/randomPassword:RandomPassword")
    assert key.inputs["enableKeyRotation"] is True and key.options["protect"] is True
    assert not set(PASSWORD_SPECIALS) & set("/'\"@ :?#%")  # what the role passwords may use (URL-safe)


@pytest.mark.parametrize("days", [7, 30])
def test_master_secret_rotates_on_the_configured_schedule(run_program, days):
    captured = {}

    def program():
        captured["pg"] = Postgres("pg", PostgresArgs(identifier="demo-postgres", vpc_id="vpc-1", subnet_ids=SUBNETS,
                                                     master_password_rotation_days=days))
    p = run_program(program)
    from pulumi.runtime.sync_await import _sync_await
    secret_arn = p.one("aws:rds/instance:Instance").outputs["masterUserSecrets"][0]["secretArn"]
    rotation = p.one("aws:secretsmanager/secretRotation:SecretRotation")
    # RDS-managed: no Lambda, the schedule is all that is set
    assert rotation.inputs == {"secretId": secret_arn, "rotationRules": {"automaticallyAfterDays": days},
                               "rotateImmediately": False}
    assert _sync_await(captured["pg"].master_secret_arn.future()) == secret_arn


def test_rotation_schedule_is_bounded(run_program):
    with pytest.raises(ComponentArgsError, match="master_password_rotation_days"):
        run_program(lambda: Postgres("db", PostgresArgs(identifier="x", vpc_id="v", subnet_ids=SUBNETS,
                                                        master_password_rotation_days=0)))


def test_dev_style_overrides(run_program):
    p = _postgres(run_program, multi_az=False, deletion_protection=False, skip_final_snapshot=True, protect=False,
                  instance_class="db.t4g.medium", iam_database_authentication=True)
    db = p.one("aws:rds/instance:Instance")
    assert db.inputs["multiAz"] is False and db.inputs["deletionProtection"] is False
    assert db.inputs["skipFinalSnapshot"] is True and db.options["protect"] is False
    assert [k.options["protect"] for k in p.of_type("aws:kms/key:Key")] == [False, False, False]
    assert db.inputs["instanceClass"] == "db.t4g.medium"
    assert db.inputs["iamDatabaseAuthenticationEnabled"] is True


def test_exported_logs_have_a_retention_and_their_own_key_before_the_instance(run_program):
    p = _postgres(run_program)
    groups = p.of_type("aws:cloudwatch/logGroup:LogGroup")
    # the names RDS exports to: otherwise RDS creates its own groups, never expiring and without a key
    assert {g.inputs["name"]: g.inputs["retentionInDays"] for g in groups} == {
        "/aws/rds/instance/demo-postgres/postgresql": 30, "/aws/rds/instance/demo-postgres/upgrade": 30}
    db = p.one("aws:rds/instance:Instance")
    assert set(db.options["dependsOn"]) == {g.urn for g in groups}
    key = p.one("aws:kms/key:Key", "pg-log-key")
    assert {g.inputs["kmsKeyId"] for g in groups} == {key.outputs["arn"]}
    assert key.outputs["arn"] != db.inputs["kmsKeyId"]  # not the storage key
    assert key.options["protect"] is True  # follows the instance: the slow-query log is part of its record


def test_log_retention_override(run_program):
    p = _postgres(run_program, log_retention_days=365)
    assert [g.inputs["retentionInDays"] for g in p.of_type("aws:cloudwatch/logGroup:LogGroup")] == [365, 365]


def test_every_child_is_parented_named_and_tagged(run_program):
    p = _postgres(run_program)
    component = p.one("cofounder:data:Postgres")
    for r in p.resources:
        if r is component:
            continue
        assert r.parent == component.urn and r.name.startswith("pg-")
        if r.type.startswith("aws:") and "tags" in r.inputs:
            assert r.inputs["tags"]["component"] == "data"


# --- per stack ------------------------------------------------------------------------------

@pytest.mark.parametrize("stack, days", [("dev", 14), ("staging", 30), ("prod", 365)])
def test_stack_log_retention(stack_program, stack, days):
    groups = {g.inputs["name"]: g.inputs["retentionInDays"]
              for g in stack_program(stack).of_type("aws:cloudwatch/logGroup:LogGroup")
              if g.inputs.get("name", "").startswith("/aws/rds/instance/")}
    assert groups == {f"/aws/rds/instance/cofounder-{stack}-postgres/postgresql": days,
                      f"/aws/rds/instance/cofounder-{stack}-postgres/upgrade": days}


@pytest.mark.parametrize("stack, expected", [
    ("dev", {"instanceClass": "db.t4g.medium", "multiAz": False, "deletionProtection": False,
             "skipFinalSnapshot": True, "backupRetentionPeriod": 1, "allocatedStorage": 20,
             "maxAllocatedStorage": 100, "performanceInsightsRetentionPeriod": 7}),
    ("staging", {"instanceClass": "db.m7g.large", "multiAz": True, "deletionProtection": True,
                 "skipFinalSnapshot": False, "backupRetentionPeriod": 7, "allocatedStorage": 50,
                 "maxAllocatedStorage": 200, "performanceInsightsRetentionPeriod": 7}),
    ("prod", {"instanceClass": "db.r7g.xlarge", "multiAz": True, "deletionProtection": True,
              "skipFinalSnapshot": False, "backupRetentionPeriod": 30, "allocatedStorage": 100,
              "maxAllocatedStorage": 1000, "performanceInsightsRetentionPeriod": 31}),
])
def test_stack_settings(stack_program, stack, expected):
    p = stack_program(stack)
    db = p.one("aws:rds/instance:Instance")
    assert {k: db.inputs[k] for k in expected} == expected
    assert db.inputs["identifier"] == f"cofounder-{stack}-postgres"
    assert (db.inputs["engineVersion"], db.inputs["autoMinorVersionUpgrade"]) == ("17", True)
    assert db.inputs["publiclyAccessible"] is False and db.inputs["storageEncrypted"] is True
    assert db.options["protect"] is (stack == "prod")
    suffix = p.one("random:index/randomId:RandomId", "postgres-final-snapshot-suffix")
    assert suffix.inputs["keepers"] == {"identifier": f"cofounder-{stack}-postgres"}
    assert db.inputs["finalSnapshotIdentifier"] == f"cofounder-{stack}-postgres-final-{suffix.outputs['hex']}"
    subnets = p.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"]
    assert subnets == reveal(p.outputs["privateSubnetIds"])
    log_min = {x["name"]: x["value"] for x in p.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]}
    assert log_min["log_min_duration_statement"] == ("500" if stack == "prod" else "200")


@pytest.mark.parametrize("override, expected", [
    ({"instanceClass": "db.z9.large"},
     "cofounder:postgres.instanceClass = 'db.z9.large' is not allowed: expected an RDS instance class of "
     "capacity/instance-classes.yaml (db.t4g.{micro,small,medium,large,xlarge,2xlarge}, "),
    ({"allocatedStorageGib": 100, "maxAllocatedStorageGib": 50},
     "cofounder:postgres.maxAllocatedStorageGib = 50 is not allowed: expected at least allocatedStorageGib (100)"),
    ({"performanceInsightsRetentionDays": 30},
     "cofounder:postgres.performanceInsightsRetentionDays = 30 is not allowed: expected 7 or a multiple of 31"),
    ({"engineVersion": "16.4"},
     "cofounder:postgres.engineVersion = '16.4' is not allowed: expected a value matching 17(\\.\\d+)?"),
    ({"engineVersion": "17.6"},
     "cofounder:postgres.engineVersion = '17.6' is not allowed: expected the major version alone (17) while "
     "autoMinorVersionUpgrade is true: RDS upgrades the minor itself, and a pinned minor would make the next "
     "update a downgrade"),
    ({"engineVersion": "17", "autoMinorVersionUpgrade": False},
     "cofounder:postgres.engineVersion = '17' is not allowed: expected a full version such as 17.6 while "
     "autoMinorVersionUpgrade is false"),
    ({"logRetentionDays": 0},
     "cofounder:postgres.logRetentionDays = 0 is not allowed: expected a value between 1 and 3653"),
    ({"logRetentionDays": 15},
     "cofounder:postgres.logRetentionDays = 15 is not allowed: expected a retention CloudWatch Logs accepts: "
     "1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653"),
    ({"engineVersion": 17},
     "cofounder:postgres.engineVersion = 17 is not allowed: expected a string"),
    ({"monitoringIntervalSeconds": 2},
     "cofounder:postgres.monitoringIntervalSeconds = 2 is not allowed: expected one of 0, 1, 5, 10, 15, 30, 60"),
    ({"reservedConnections": 2},
     "cofounder:postgres.reservedConnections = 2 is not allowed: expected a value between 5 and 1000"),
])
def test_bad_postgres_config(run_stack_with, override, expected):
    from infra.config import ConfigError
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:postgres": {"instanceClass": "db.t4g.medium", **override}})
    assert str(err.value).startswith(f"stacks/Pulumi.dev.yaml: {expected}")
    assert "\n" not in str(err.value)


def test_full_version_pin_config_without_auto_minor_upgrade(run_stack_with):
    p = run_stack_with("dev", {"cofounder:postgres": {"instanceClass": "db.t4g.medium", "engineVersion": "17.6",
                                                     "autoMinorVersionUpgrade": False}})
    db = p.one("aws:rds/instance:Instance").inputs
    assert (db["engineVersion"], db["autoMinorVersionUpgrade"]) == ("17.6", False)
