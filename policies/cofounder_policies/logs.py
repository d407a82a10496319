"""CloudWatch Logs: every log group the stack writes to is encrypted with a customer-managed KMS key.

The stack's log groups hold what the platform records about itself: the VPC flow logs (which
address talked to which), the EKS control-plane logs (the audit log has every request to the
Kubernetes API), the exported PostgreSQL logs (a slow statement is logged with its text and
parameters) and the WAF's request logs. CloudWatch Logs' default encryption protects them at
rest but leaves access to IAM alone; a customer key adds a key policy that also governs who can
read them, makes every use visible in CloudTrail and lets access be revoked. The same check is
AWS Config's managed rule ``cloudwatch-log-group-encrypted``.

Two services create the group they write to when it does not exist, with no key and no
retention: EKS (``/aws/eks/<cluster>/cluster``, EKS user guide, "Send control plane logs to
CloudWatch Logs") and RDS (``/aws/rds/instance/<identifier>/<log>``, RDS user guide,
"Publishing database logs to Amazon CloudWatch Logs"). The rule therefore also requires those
groups to be declared by exactly those names, so that the declared, encrypted one is the one used.
"""

from __future__ import annotations

from cofounder_policies.rules import MANDATORY, is_set, items, known, of_type, resource_rule, stack_rule

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
CLUSTER = "aws:eks/cluster:Cluster"
INSTANCE = "aws:rds/instance:Instance"


def service_log_groups(resources) -> list[tuple[str, str]]:
    """(log group name, URN of its writer) for each group EKS or RDS would otherwise create itself.
    A writer whose name is unknown during a preview is skipped (the program names both)."""
    found = []
    for cluster in of_type(resources, CLUSTER):
        name = known(cluster.props, "name")
        if name and items(known(cluster.props, "enabledClusterLogTypes")):
            found.append((f"/aws/eks/{name}/cluster", cluster.urn))
    for db in of_type(resources, INSTANCE):
        identifier = known(db.props, "identifier")
        for log in items(known(db.props, "enabledCloudwatchLogsExports")) if identifier else []:
            found.append((f"/aws/rds/instance/{identifier}/{log}", db.urn))
    return found


def _encrypted(resources, settings):
    groups = of_type(resources, LOG_GROUP)
    for group in groups:
        if not is_set(group.props, "kmsKeyId"):
            yield "the log group has no kmsKeyId (CloudWatch Logs' default encryption, no customer key)", group.urn
    declared = {known(g.props, "name") for g in groups}
    for name, writer in service_log_groups(resources):
        if name not in declared:
            yield (f"no log group {name} is declared, so the service creates it itself, without a KMS key "
                   f"(and without a retention)"), writer


def _retained(props, settings):
    days, minimum = known(props, "retentionInDays"), int(settings["minimumDays"])
    # Unset or 0 is "never expire", which keeps everything.
    if days and int(days) < minimum:
        yield f"retentionInDays is {int(days)}, below this stack's minimum of {minimum} days"


POLICIES = [
    stack_rule(
        "cloudwatch-log-group-encrypted",
        "Flow logs, the EKS audit log, slow-query logs and WAF request logs say who did what: like the "
        "data stores, they are encrypted with a customer-managed KMS key, whose policy also governs who "
        "reads them. Fix: give every aws.cloudwatch.LogGroup a kmsKeyId, a key from "
        "components/log_encryption.py's log_key (rotation on; its policy admits only CloudWatch Logs of "
        "this account and region, through the kms:EncryptionContext:aws:logs:arn condition) in the log "
        "group's region; and declare the groups EKS and RDS write to (/aws/eks/<cluster>/cluster, "
        "/aws/rds/instance/<identifier>/<log>) by exactly those names, before the cluster or instance.",
        MANDATORY, _encrypted),
    resource_rule(
        "cloudwatch-log-group-retention",
        "The logs an investigation needs (flow logs, the EKS audit log, database and WAF request logs) are "
        "kept for at least the stack's minimum: a year in prod, as AWS Config's cw-loggroup-retention-"
        "period-check (default MinRetentionTime 365; \"Never expire\" is compliant) and Checkov's "
        "CKV_AWS_338 ask. Fix: the section's retention setting (e.g. cofounder:waf.logRetentionDays, "
        "cofounder:network.flowLogRetentionDays) at or above minimumDays in the stack file.",
        MANDATORY, [LOG_GROUP], _retained,
        config={"minimumDays": {"type": "integer", "minimum": 0, "default": 365,
                                "description": "Fewest days a log group keeps its events (0: any)"}}),
]
