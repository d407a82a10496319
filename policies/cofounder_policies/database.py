"""RDS PostgreSQL instances and their parameter groups."""

from __future__ import annotations

from cofounder_policies.rules import ADVISORY, MANDATORY, get, is_set, items, resource_rule

INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
REQUIRED = {"required": {"type": "boolean", "default": True,
                         "description": "Whether this stack requires the setting (false in dev)"}}


def _not_public(props, settings):
    if get(props, "publiclyAccessible") is True:
        yield "publiclyAccessible is true"


def _encrypted(props, settings):
    if get(props, "storageEncrypted") is not True and not get(props, "replicateSourceDb"):
        yield "storageEncrypted is not true"


def _backups(props, settings):
    days, minimum = get(props, "backupRetentionPeriod"), int(settings["minimumDays"])
    if days is None or days < minimum:
        yield f"backupRetentionPeriod is {days}, below the stack's minimum of {minimum} days"


def _multi_az(props, settings):
    if settings["required"] and get(props, "multiAz") is not True:
        yield "multiAz is not true and this stack requires a standby in a second AZ"


def _deletion_protection(props, settings):
    if settings["required"] and get(props, "deletionProtection") is not True:
        yield "deletionProtection is not true and this stack requires it"
    if settings["required"] and get(props, "skipFinalSnapshot") is True:
        yield "skipFinalSnapshot is true: deleting the instance would keep no snapshot"


#: Burstable instance families (T classes) earn CPU credits while idle and spend them under load;
#: once spent, the instance runs at its baseline share of a vCPU (Amazon RDS User Guide, "DB
#: instance class types", burstable-performance classes; ElastiCache User Guide, "Supported node
#: types", T nodes: the same CPU-credit model). A 5x peak that outlasts the credit balance slows
#: every query; RDS's unlimited mode bills the surplus instead, at a rate no budget here counts.
BURSTABLE_PREFIXES = ("db.t2.", "db.t3.", "db.t4g.")
ALLOW_BURSTABLE = {"allowBurstable": {"type": "boolean", "default": False,
                                      "description": "Whether this stack may run burstable (T) classes "
                                                     "(true outside production)"}}


def not_burstable(field: str, prefixes: tuple[str, ...], what: str):
    """A rule check: ``field`` names no burstable class unless the stack allows them."""
    def check(props, settings):
        value = str(get(props, field, ""))
        if not settings["allowBurstable"] and value.startswith(prefixes):
            yield (f"{field} {value} is burstable: under a sustained peak its CPU credits run out and it "
                   f"drops to its baseline; this stack requires a fixed-performance {what} (m or r)")
    return check


_not_burstable = not_burstable("instanceClass", BURSTABLE_PREFIXES, "class")


def _managed_master_password(props, settings):
    if get(props, "replicateSourceDb"):
        return  # a read replica has the source's master user
    if get(props, "manageMasterUserPassword") is not True:
        yield ("manageMasterUserPassword is not true: the master password would live in the Pulumi state "
               "and never rotate")
    elif not is_set(props, "masterUserSecretKmsKeyId"):
        yield "masterUserSecretKmsKeyId is not set: the master secret would use the AWS-managed key"
    if is_set(props, "password") or is_set(props, "passwordWo"):
        yield "a password is set on the instance"


def _pg_stat_statements(props, settings):
    if "engine" in props:  # an instance: it must use a custom parameter group
        if str(get(props, "engine", "")).startswith("postgres") and not get(props, "parameterGroupName"):
            yield "the instance uses the default parameter group; set parameterGroupName"
        return
    if not str(get(props, "family", "")).startswith("postgres"):
        return
    libraries = [str(get(p, "value", "")) for p in items(get(props, "parameters"))
                 if get(p, "name") == "shared_preload_libraries"]
    if not any("pg_stat_statements" in [lib.strip() for lib in value.split(",")] for value in libraries):
        yield "shared_preload_libraries does not include pg_stat_statements"


POLICIES = [
    resource_rule(
        "rds-instance-not-public",
        "The database must not get a public IP. Fix: publiclyAccessible=false and private "
        "subnets in its db subnet group; reach it from the cluster through its security group.",
        MANDATORY, [INSTANCE], _not_public),
    resource_rule(
        "rds-instance-storage-encrypted",
        "Database storage, snapshots and backups must be encrypted at rest. Fix: "
        "storageEncrypted=true (optionally kmsKeyId); an existing instance needs a snapshot restore.",
        MANDATORY, [INSTANCE], _encrypted),
    resource_rule(
        "rds-instance-backup-retention",
        "Automated backups with point-in-time recovery protect against data loss. Fix: set "
        "backupRetentionPeriod to at least the stack's minimumDays.",
        MANDATORY, [INSTANCE], _backups,
        config={"minimumDays": {"type": "integer", "minimum": 1, "maximum": 35, "default": 7,
                                "description": "Minimum automated backup retention in days"}}),
    resource_rule(
        "rds-instance-multi-az",
        "Where the stack requires it (prod), a synchronous standby in a second AZ survives an AZ "
        "outage without data loss. Fix: multiAz=true (cofounder:postgres.multiAz).",
        MANDATORY, [INSTANCE], _multi_az, config=REQUIRED),
    resource_rule(
        "rds-instance-deletion-protection",
        "Where the stack requires it (prod), the database cannot be deleted by a bad change and "
        "leaves a final snapshot. Fix: deletionProtection=true, skipFinalSnapshot=false "
        "(and protect the resource).",
        MANDATORY, [INSTANCE], _deletion_protection, config=REQUIRED),
    resource_rule(
        "rds-instance-class-not-burstable",
        "In production a burstable (db.t*) class runs out of CPU credits under a sustained 5x peak and "
        "falls to its baseline share of a vCPU, and its small memory leaves few connections "
        "(max_connections follows memory). Fix: a fixed-performance class such as db.m7g.large or "
        "db.r7g.large (cofounder:postgres.instanceClass).",
        MANDATORY, [INSTANCE], _not_burstable, config=ALLOW_BURSTABLE),
    resource_rule(
        "rds-instance-managed-master-password",
        "The master password must be generated, kept and rotated by RDS in Secrets Manager, encrypted with "
        "a customer-managed key, never a value in the program or its state. Fix: "
        "manageMasterUserPassword=true, masterUserSecretKmsKeyId=<key ARN>, no password.",
        MANDATORY, [INSTANCE], _managed_master_password),
    resource_rule(
        "rds-parameter-group-pg-stat-statements",
        "pg_stat_statements is how slow queries are found. Fix: give PostgreSQL instances a "
        "custom parameter group whose shared_preload_libraries includes pg_stat_statements "
        "(applyMethod pending-reboot).",
        ADVISORY, [INSTANCE, PARAMETER_GROUP], _pg_stat_statements),
]
