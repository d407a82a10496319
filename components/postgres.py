"""Postgres: the application's RDS for PostgreSQL instance, private and encrypted.

Builds a KMS key (storage and Performance Insights), a DB subnet group in the private subnets, a security group that
admits only the given security groups on 5432, a parameter group (pg_stat_statements, slow-query
logging, TLS required), the enhanced-monitoring role, log groups for the exported logs (with their own KMS key) and the
instance itself: gp3 with storage autoscaling, backups, optional Multi-AZ standby, deletion
protection, a final snapshot and Pulumi ``protect`` where the stack asks for them.

The master password is RDS's own (``manage_master_user_password``): RDS generates it and keeps it
in a Secrets Manager secret encrypted with a customer-managed key of its own (``<name>-secrets-kms``),
and rotates it (every 7 days unless told otherwise, https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-secrets-manager.html);
the schedule is the stack's ``masterPasswordRotationDays``, set by a ``SecretRotation`` on that
secret without a Lambda (pulumi-aws 7.51 ``secretsmanager.SecretRotation``: ``rotation_lambda_arn``
"must be supplied if the secret is not managed by AWS"; terraform-provider-aws#34108). The password
is never in the Pulumi state, and only the database bootstrap Job reads the secret
(``master_secret_arn``); the apps connect as the roles of ``DatabaseRoles``.

Who may connect: the security groups in ``allowed_security_group_ids``. On EKS that is the
cluster security group, which sits on every node and every pod ENI, so PgBouncer (and migration
jobs) reach 5432 while nothing else in the VPC does. Apps should use PgBouncer
(``DATABASE_URL_POOLED``); ``database_url`` is for migrations and administration.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws

from capacity import classes
from components import LOG_RETENTION, Between, Matches, require_valid
from components.credentials import URL_SAFE_SPECIALS, secrets_kms_key
from components.data_access import final_snapshot_identifier, kms_key, private_subnet_group, security_group_for
from components.log_encryption import log_key

PORT = 5432
#: What generated database passwords may use besides letters and digits (URL-safe, RDS-allowed).
PASSWORD_SPECIALS = URL_SAFE_SPECIALS


@dataclass(frozen=True, kw_only=True)
class PostgresSettings:
    """``cofounder:postgres``: the RDS for PostgreSQL instance behind PgBouncer. Defaults are production-safe."""

    #: RDS instance class: one of capacity/instance-classes.yaml, which holds its memory (it sets
    #: max_connections), vCPUs and price.
    instance_class: Annotated[str, classes.listed("rds")] = "db.r7g.large"
    #: PostgreSQL 17: the major alone ("17") while autoMinorVersionUpgrade is true, since RDS moves the
    #: minor and a pinned one would make the next update a downgrade; a full "17.x" pin when it is false.
    engine_version: Annotated[str, Matches(r"17(\.\d+)?", "a value matching 17(\\.\\d+)?")] = "17"
    #: Initial gp3 storage.
    allocated_storage_gib: Annotated[int, Between(20, 65536)] = 50
    #: Storage autoscaling ceiling; RDS grows gp3 storage up to this without downtime.
    max_allocated_storage_gib: Annotated[int, Between(20, 65536)] = 500
    #: A synchronous standby in a second availability zone.
    multi_az: bool = True
    #: Days of automated backups (point-in-time recovery).
    backup_retention_days: Annotated[int, Between(1, 35)] = 14
    #: RDS refuses to delete the instance until this is off.
    deletion_protection: bool = True
    #: Skip the snapshot RDS takes when the instance is deleted (only for throwaway stacks).
    skip_final_snapshot: bool = False
    #: Pulumi ``protect`` on the instance and its KMS key: `pulumi destroy` and replacements fail until lifted.
    protect: bool = True
    #: Statements slower than this are logged; -1 disables slow-query logging.
    log_min_duration_statement_ms: Annotated[int, Between(-1, 3600000)] = 500
    #: Days Performance Insights keeps (7 is free; otherwise months of 31 days).
    performance_insights_retention_days: Annotated[int, Between(7, 731)] = 7
    #: Enhanced monitoring granularity; 0 turns it off (and creates no monitoring role).
    monitoring_interval_seconds: Literal[0, 1, 5, 10, 15, 30, 60] = 60
    #: RDS applies minor versions in the maintenance window (engineVersion is then the major).
    auto_minor_version_upgrade: bool = True
    #: Also accept IAM tokens for database logins.
    iam_database_authentication: bool = False
    #: Connections kept free of PgBouncer for administrators, migrations and rdsadmin.
    reserved_connections: Annotated[int, Between(5, 1000)] = 10
    #: Days CloudWatch Logs keeps the exported postgresql and upgrade logs.
    log_retention_days: Annotated[int, Between(1, 3653), LOG_RETENTION] = 30
    #: Days between rotations of the RDS-managed master password (Secrets Manager's managed rotation).
    master_password_rotation_days: Annotated[int, Between(1, 365)] = 7
    #: Raise by one to rotate the app, migrator and pgbouncer_auth passwords at the next deploy
    #: (DatabaseRoles; docs/data-tier.md, Rotation).
    credentials_generation: Annotated[int, Between(1, 1000000)] = 1
    #: Days between scheduled rotations of those passwords: the first deploy of each new period
    #: (UTC days since 1970 over this) rotates them; null: only credentialsGeneration rotates.
    credentials_rotation_days: Annotated[int | None, Between(1, 365)] = 30

    def checks(self):
        if self.auto_minor_version_upgrade and "." in self.engine_version:
            yield ("engine_version", self.engine_version,
                   "the major version alone (17) while autoMinorVersionUpgrade is true: RDS upgrades the minor "
                   "itself, and a pinned minor would make the next update a downgrade")
        if not self.auto_minor_version_upgrade and "." not in self.engine_version:
            yield ("engine_version", self.engine_version,
                   "a full version such as 17.6 while autoMinorVersionUpgrade is false")
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            yield ("max_allocated_storage_gib", self.max_allocated_storage_gib,
                   f"at least allocatedStorageGib ({self.allocated_storage_gib})")
        if self.performance_insights_retention_days != 7 and self.performance_insights_retention_days % 31:
            yield ("performance_insights_retention_days", self.performance_insights_retention_days,
                   "7 or a multiple of 31 (months) up to 731")


@dataclass(frozen=True, kw_only=True)
class PostgresArgs(PostgresSettings):
    """Settings plus the wiring and the component's fixed choices."""

    #: Physical name of the instance (RDS identifier), unique per account and region.
    identifier: str
    vpc_id: pulumi.Input[str]
    #: Private subnets for the DB subnet group (at least two zones).
    subnet_ids: pulumi.Input[Sequence[str]]
    #: Security groups admitted on 5432 (the EKS cluster security group). Empty admits nobody.
    allowed_security_group_ids: Sequence[pulumi.Input[str]] = ()
    db_name: str = "cofounder"
    master_username: str = "cofounder_admin"
    #: The server certificate's CA; PgBouncer verifies it against the bundle for this CA.
    ca_cert_identifier: str = "rds-ca-rsa2048-g1"
    tags: dict[str, str] = field(default_factory=dict)


def parameter_group_family(engine_version: str) -> str:
    return f"postgres{engine_version.split('.')[0]}"


def postgres_url(user: str, password: str, host: str, port: int | str, db_name: str, query: str = "") -> str:
    """A libpq connection URL; the password alphabet needs no percent-encoding (see PASSWORD_SPECIALS)."""
    return f"postgresql://{user}:{password}@{host}:{port}/{db_name}" + (f"?{query}" if query else "")


class Postgres(pulumi.ComponentResource):
    """An RDS for PostgreSQL instance reachable only from the allowed security groups."""

    #: The RDS identifier (CloudWatch's DBInstanceIdentifier).
    instance_identifier: pulumi.Output[str]
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    endpoint: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    db_name: str
    master_username: str
    #: The RDS-managed Secrets Manager secret with the master credentials (bootstrap only).
    master_secret_arn: pulumi.Output[str]
    #: The customer-managed key of the data tier's database secrets (master and roles).
    secrets_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:Postgres", name, None, opts)
        require_valid(f"Postgres {name}", args)
        tags = {**args.tags, "component": "data"}

        key = kms_key(name, self, f"{args.identifier}: RDS storage and Performance Insights", tags,
                      service="rds", protect=args.protect)
        secrets_key = secrets_kms_key(name, self, f"{args.identifier}: database credentials in Secrets Manager",
                                      tags, protect=args.protect)
        subnets = self._subnet_group(name, args, tags)
        sg = security_group_for(
            name, self, vpc_id=args.vpc_id, port=PORT, sources=args.allowed_security_group_ids,
            description=f"{args.identifier}: Postgres {PORT} from the cluster only",
            rule_description="Postgres from the cluster (nodes and pods, incl. PgBouncer)",
            tags={**tags, "Name": f"{args.identifier}-postgres"},
        )
        params = self._parameter_group(name, args, tags)
        monitoring_role_arn = self._monitoring_role(name, args, tags)
        exports = ["postgresql", "upgrade"]
        log_groups = self._log_groups(name, args, exports, tags)
        instance = self._instance(name, args, tags, key=key, secrets_key=secrets_key, subnets=subnets, sg=sg,
                                  params=params, monitoring_role_arn=monitoring_role_arn, exports=exports,
                                  log_groups=log_groups)
        master_secret_arn = self._master_rotation(name, args, instance)

        self.instance_identifier = instance.identifier
        self.address = instance.address
        self.port = instance.port
        self.endpoint = instance.endpoint
        self.security_group_id = sg.id
        self.db_name = args.db_name
        self.master_username = args.master_username
        self.master_secret_arn = master_secret_arn
        self.secrets_key_arn = secrets_key.arn
        self.register_outputs({
            "address": self.address,
            "port": self.port,
            "security_group_id": self.security_group_id,
            "master_secret_arn": self.master_secret_arn,
        })

    def _subnet_group(self, name: str, args: PostgresArgs, tags: dict) -> aws.rds.SubnetGroup:
        """The DB subnet group over the private subnets."""
        return private_subnet_group(aws.rds.SubnetGroup, name, self, identifier=args.identifier,
                                    subnet_ids=args.subnet_ids, tags=tags)

    def _parameter_group(self, name: str, args: PostgresArgs, tags: dict) -> aws.rds.ParameterGroup:
        """The parameter group: pg_stat_statements, slow-query log, TLS only."""
        return aws.rds.ParameterGroup(
            f"{name}-params",
            name=f"{args.identifier}-{parameter_group_family(args.engine_version)}",
            family=parameter_group_family(args.engine_version),
            description=f"{args.identifier}: pg_stat_statements, slow-query log, TLS only",
            parameters=[
                # Loading a library needs a restart; RDS refuses "immediate" for it.
                aws.rds.ParameterGroupParameterArgs(name="shared_preload_libraries",
                                                    value="pg_stat_statements", apply_method="pending-reboot"),
                aws.rds.ParameterGroupParameterArgs(name="pg_stat_statements.track", value="all",
                                                    apply_method="immediate"),
                aws.rds.ParameterGroupParameterArgs(name="log_min_duration_statement",
                                                    value=str(args.log_min_duration_statement_ms),
                                                    apply_method="immediate"),
                aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1", apply_method="immediate"),
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _monitoring_role(self, name: str, args: PostgresArgs, tags: dict) -> pulumi.Output[str] | None:
        """The enhanced-monitoring role (its ARN), or None when enhanced monitoring is off."""
        if args.monitoring_interval_seconds <= 0:
            return None
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{name}-monitoring",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "monitoring.rds.amazonaws.com"}}],
            }),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=role.name,
            policy_arn=aws.get_partition_output().partition.apply(
                lambda p: f"arn:{p}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"),
            opts=child,
        )
        return role.arn

    def _log_groups(self, name: str, args: PostgresArgs, exports: list[str],
                    tags: dict) -> list[aws.cloudwatch.LogGroup]:
        """One encrypted log group per exported PostgreSQL log, with a retention."""
        # RDS exports into /aws/rds/instance/<id>/<log> and creates a missing group itself, never
        # expiring and without a key: so they exist before the instance, with a retention and a key
        # of their own (slow statements carry the query text, parameters included, e.g. personal data).
        logs_key = log_key(name, self, f"{args.identifier}: exported PostgreSQL logs", tags, protect=args.protect)
        return [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{log}",
                name=f"/aws/rds/instance/{args.identifier}/{log}",
                retention_in_days=args.log_retention_days,
                kms_key_id=logs_key.arn,
                tags=tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for log in exports
        ]

    def _instance(self, name: str, args: PostgresArgs, tags: dict, *, key: aws.kms.Key,
                  secrets_key: aws.kms.Key, subnets: aws.rds.SubnetGroup, sg: aws.ec2.SecurityGroup,
                  params: aws.rds.ParameterGroup, monitoring_role_arn: pulumi.Output[str] | None,
                  exports: list[str], log_groups: list[aws.cloudwatch.LogGroup]) -> aws.rds.Instance:
        """The RDS instance itself, after its log groups."""
        return aws.rds.Instance(
            f"{name}-db",
            identifier=args.identifier,
            engine="postgres",
            engine_version=args.engine_version,
            instance_class=args.instance_class,
            db_name=args.db_name,
            username=args.master_username,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=secrets_key.arn,
            port=PORT,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[sg.id],
            parameter_group_name=params.name,
            publicly_accessible=False,
            ca_cert_identifier=args.ca_cert_identifier,
            storage_type="gp3",
            allocated_storage=args.allocated_storage_gib,
            max_allocated_storage=args.max_allocated_storage_gib,
            storage_encrypted=True,
            kms_key_id=key.arn,
            multi_az=args.multi_az,
            backup_retention_period=args.backup_retention_days,
            backup_window="03:00-04:00",
            maintenance_window="sun:04:30-sun:05:30",
            copy_tags_to_snapshot=True,
            delete_automated_backups=False,
            deletion_protection=args.deletion_protection,
            skip_final_snapshot=args.skip_final_snapshot,
            final_snapshot_identifier=final_snapshot_identifier(name, self, args.identifier),
            auto_minor_version_upgrade=args.auto_minor_version_upgrade,
            allow_major_version_upgrade=False,
            iam_database_authentication_enabled=args.iam_database_authentication,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=key.arn,
            performance_insights_retention_period=args.performance_insights_retention_days,
            monitoring_interval=args.monitoring_interval_seconds,
            monitoring_role_arn=monitoring_role_arn,
            enabled_cloudwatch_logs_exports=exports,
            tags={**tags, "Name": args.identifier},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect, depends_on=log_groups),
        )

    def _master_rotation(self, name: str, args: PostgresArgs, instance: aws.rds.Instance) -> pulumi.Output[str]:
        """The rotation schedule of the RDS-managed master secret (the secret's ARN)."""
        master_secret_arn = instance.master_user_secrets.apply(lambda s: s[0].secret_arn if s else None)
        aws.secretsmanager.SecretRotation(
            f"{name}-master-rotation",
            secret_id=master_secret_arn,
            rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                automatically_after_days=args.master_password_rotation_days),
            # RDS rotated it when it created it; the schedule alone is what changes here.
            rotate_immediately=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return master_secret_arn
