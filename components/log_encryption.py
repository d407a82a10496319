"""What every component that writes CloudWatch Logs shares: the customer-managed KMS key its log
groups are encrypted with. A function, not a component: the key is a child of the calling
component, created before its log groups (they take its ARN as ``kms_key_id``).

CloudWatch Logs encrypts and decrypts log events itself, as the regional service principal
``logs.<region>.amazonaws.com``; whoever writes (VPC Flow Logs, EKS, RDS, WAF's log delivery)
only calls PutLogEvents. So the key policy needs two statements, as the CloudWatch Logs user
guide gives them ("Encrypt log data in CloudWatch Logs using AWS KMS", step 2, the statement
that "limits the use of the KMS key to the specified account, but it can be used for any log
group"; https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html,
also awsdocs/amazon-cloudwatch-logs-user-guide@f7d74a6:doc_source/encrypt-log-data-kms.md):

- the account root with ``kms:*``, which keeps the key manageable and lets IAM policies grant
  its use (the key policy is the only policy a KMS key obeys unless it delegates to IAM);
- the CloudWatch Logs principal of the key's own region, only for encryption contexts naming
  a log group of this account in that region (``kms:EncryptionContext:aws:logs:arn``, which
  CloudWatch Logs sets to the log group's ARN). The guide's example ends in ``:*``; this one
  ends in ``:log-group:*``, the same set of log groups.

A KMS key is regional and CloudWatch Logs accepts only a key in the log group's region, so a
log group in another region (the WAF's, always us-east-1) needs its own key there.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.key_policy import KeyContext, explicit_key_policy, key_policy


def logs_statement(ctx: KeyContext) -> dict:
    """CloudWatch Logs in the key's region uses the key for this account's log groups there only."""
    return {"Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups", "Effect": "Allow",
            "Principal": {"Service": ctx.endpoint("logs")},
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            "Resource": "*",
            "Condition": {"ArnLike": {
                "kms:EncryptionContext:aws:logs:arn":
                    f"arn:{ctx.partition}:logs:{ctx.region}:{ctx.account}:log-group:*"}}}


def log_key_policy(*, account: str, partition: str, region: str, dns_suffix: str) -> str:
    """The key policy: account root administers; CloudWatch Logs in ``region`` uses the key for
    this account's log groups there and nothing else."""
    ctx = KeyContext(account, partition, region, dns_suffix)
    return key_policy(ctx, logs_statement(ctx))


def log_key(name: str, parent: pulumi.Resource, description: str, tags: dict[str, str], *,
            region: str | None = None, protect: bool = False) -> aws.kms.Key:
    """``<name>-log-key``: a symmetric key (the only kind CloudWatch Logs accepts) with yearly
    rotation, for the log groups of ``parent`` in ``region`` (None: the provider's region).
    Deleting it (after its 30-day waiting period) makes the logs it encrypted unreadable."""
    return aws.kms.Key(
        f"{name}-log-key",
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=explicit_key_policy(parent, lambda ctx: [logs_statement(ctx)], region=region),
        region=region,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, protect=protect),
    )
