"""RDS rules."""

import pytest

from tests.policies.helpers import violations

INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
GOOD = {"engine": "postgres", "publiclyAccessible": False, "storageEncrypted": True,
        "backupRetentionPeriod": 14, "multiAz": True, "deletionProtection": True,
        "skipFinalSnapshot": False, "parameterGroupName": "cofounder-pg16"}
RULES = ["rds-instance-not-public", "rds-instance-storage-encrypted", "rds-instance-backup-retention",
         "rds-instance-multi-az", "rds-instance-deletion-protection", "rds-parameter-group-pg-stat-statements"]


@pytest.mark.parametrize("policy", RULES)
def test_a_production_grade_instance_passes(policy):
    assert violations(policy, INSTANCE, GOOD) == []


@pytest.mark.parametrize("policy, change", [
    ("rds-instance-not-public", {"publiclyAccessible": True}),
    ("rds-instance-storage-encrypted", {"storageEncrypted": False}),
    ("rds-instance-backup-retention", {"backupRetentionPeriod": 3}),
    ("rds-instance-multi-az", {"multiAz": False}),
    ("rds-instance-deletion-protection", {"deletionProtection": False}),
    ("rds-instance-deletion-protection", {"skipFinalSnapshot": True}),
    ("rds-parameter-group-pg-stat-statements", {"parameterGroupName": None}),
])
def test_each_unsafe_setting_is_a_violation(policy, change):
    assert violations(policy, INSTANCE, {**GOOD, **change})


def test_stack_config_relaxes_multi_az_protection_and_retention_outside_prod():
    dev = {**GOOD, "multiAz": False, "deletionProtection": False, "backupRetentionPeriod": 1}
    assert violations("rds-instance-multi-az", INSTANCE, dev, {"required": False}) == []
    assert violations("rds-instance-deletion-protection", INSTANCE, dev, {"required": False}) == []
    assert violations("rds-instance-backup-retention", INSTANCE, dev, {"minimumDays": 1}) == []
    assert violations("rds-instance-backup-retention", INSTANCE, GOOD, {"minimumDays": 30})


def test_parameter_group_must_preload_pg_stat_statements():
    good = {"family": "postgres16", "parameters": [
        {"name": "shared_preload_libraries", "value": "pg_stat_statements,auto_explain", "applyMethod": "pending-reboot"}]}
    bad = {"family": "postgres16", "parameters": [{"name": "log_min_duration_statement", "value": "500"}]}
    assert violations("rds-parameter-group-pg-stat-statements", PARAMETER_GROUP, good) == []
    assert violations("rds-parameter-group-pg-stat-statements", PARAMETER_GROUP, bad)
    assert violations("rds-parameter-group-pg-stat-statements", PARAMETER_GROUP, {"family": "mysql8.0"}) == []


def test_a_burstable_class_is_refused_where_the_stack_is_production():
    for cls in ("db.t4g.medium", "db.t3.large"):
        found = violations("rds-instance-class-not-burstable", INSTANCE, {**GOOD, "instanceClass": cls})
        assert found and found[0].startswith(f"instanceClass {cls} is burstable")
    for cls in ("db.r7g.xlarge", "db.m7g.large"):
        assert violations("rds-instance-class-not-burstable", INSTANCE, {**GOOD, "instanceClass": cls}) == []
    # dev and staging allow T classes (environments.py); prod keeps the default
    assert violations("rds-instance-class-not-burstable", INSTANCE, {**GOOD, "instanceClass": "db.t4g.medium"},
                      {"allowBurstable": True}) == []
