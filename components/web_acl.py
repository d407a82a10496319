"""EdgeWebAcl: the AWS WAF web ACL in front of the CloudFront distribution.

A web ACL for CloudFront has scope ``CLOUDFRONT`` and must live in us-east-1 whatever the
stack's region. pulumi-aws 7 lets a resource name its own ``region``, which this component uses
instead of a second provider: the web ACL and its log group are created in us-east-1 through
the stack's default provider, so they carry its default tags and credentials.

Rules, evaluated in priority order:
1. ``api-rate-limit``: a rate-based rule per client IP on paths starting with ``/api/``; over
   the limit within the window, WAF answers 403 until the rate drops. Pages and assets are
   served from the cache and are not limited.
2. ``aws-common``: the AWS managed core rule set (``AWSManagedRulesCommonRuleSet``). Its
   ``SizeRestrictions_BODY`` rule blocks request bodies over 8 KB, a fixed threshold; agent
   inputs and chat transcripts posted to ``/api/*`` exceed it routinely, so by default that
   one rule only counts (``countOnlyRules``). The body size the API accepts is the app's job.
3. ``aws-known-bad-inputs``: ``AWSManagedRulesKnownBadInputsRuleSet`` (Log4j, SSRF patterns...).

Every rule emits CloudWatch metrics and sampled requests. With ``logRetentionDays`` above 0
the full logs go to the log group ``aws-waf-logs-<name>`` (the prefix WAF requires), with the
``authorization`` and ``cookie`` headers redacted: they carry session tokens. The group is
encrypted with its own KMS key in us-east-1 (``components/log_encryption.py``): WAF delivers
through CloudWatch Logs, which does the encryption, and asks of the group only its name prefix
and that it is in the web ACL's account and region (AWS WAF developer guide, "Sending web ACL
traffic logs to an Amazon CloudWatch Logs log group",
https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_aws as aws

from components import Between, OneOf, require_valid
from components.log_encryption import log_key

#: Where CLOUDFRONT-scope web ACLs and their logs live (AWS WAF developer guide, "Amazon CloudFront").
WAF_REGION = "us-east-1"
API_PATH_PREFIX = "/api/"
#: The retentions CloudWatch Logs accepts (PutRetentionPolicy), plus 0 for "no full logs".
LOG_RETENTION_DAYS = (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)


@dataclass(frozen=True, kw_only=True)
class WebAclSettings:
    """``cofounder:waf``: the WAF web ACL on the distribution. On by default."""

    #: Attach a WAF web ACL to the distribution (managed rule sets and the /api/* rate limit).
    enabled: bool = True
    #: Requests per client IP to /api/* within rateWindowSeconds before WAF answers 403.
    api_rate_limit: Annotated[int, Between(10, 2_000_000_000)] = 3000
    #: The rate limit's evaluation window (WAF accepts 60, 120, 300 or 600).
    rate_window_seconds: Annotated[int, OneOf((60, 120, 300, 600))] = 300
    #: Rules of the managed core rule set that only count instead of blocking.
    count_only_rules: list[str] = field(default_factory=lambda: ["SizeRestrictions_BODY"])
    #: Days the full WAF logs are kept in us-east-1; 0 keeps sampled requests only.
    log_retention_days: Annotated[int, OneOf(LOG_RETENTION_DAYS)] = 90


@dataclass(frozen=True, kw_only=True)
class EdgeWebAclArgs(WebAclSettings):
    """Settings plus what the component needs from its caller."""

    #: Stack-unique prefix for the web ACL's name and metrics (``cofounder-<stack>``).
    name_prefix: str
    tags: dict[str, str] = field(default_factory=dict)


def _visibility(metric: str) -> dict:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def rules(args: EdgeWebAclArgs) -> list[dict]:
    """The web ACL's rules, in evaluation order."""
    prefix = args.name_prefix
    return [
        {
            "name": "api-rate-limit",
            "priority": 0,
            "action": {"block": {}},
            "statement": {"rate_based_statement": {
                "aggregate_key_type": "IP",
                "limit": args.api_rate_limit,
                "evaluation_window_sec": args.rate_window_seconds,
                "scope_down_statement": {"byte_match_statement": {
                    "positional_constraint": "STARTS_WITH",
                    "search_string": API_PATH_PREFIX,
                    "field_to_match": {"uri_path": {}},
                    "text_transformations": [{"priority": 0, "type": "NONE"}],
                }},
            }},
            "visibility_config": _visibility(f"{prefix}-api-rate-limit"),
        },
        _managed("aws-common", 10, "AWSManagedRulesCommonRuleSet", args.count_only_rules, prefix),
        _managed("aws-known-bad-inputs", 20, "AWSManagedRulesKnownBadInputsRuleSet", (), prefix),
    ]


def _managed(name: str, priority: int, group: str, count_only: Sequence[str], prefix: str) -> dict:
    statement: dict = {"name": group, "vendor_name": "AWS"}
    if count_only:
        statement["rule_action_overrides"] = [{"name": rule, "action_to_use": {"count": {}}}
                                              for rule in count_only]
    return {
        "name": name,
        "priority": priority,
        # The group's own actions apply (block), except for the overridden rules above.
        "override_action": {"none": {}},
        "statement": {"managed_rule_group_statement": statement},
        "visibility_config": _visibility(f"{prefix}-{name}"),
    }


class EdgeWebAcl(pulumi.ComponentResource):
    """A CLOUDFRONT-scope WAF web ACL in us-east-1, with optional full logs."""

    arn: pulumi.Output[str]
    name: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeWebAclArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:edge:EdgeWebAcl", name, None, opts)
        require_valid(f"EdgeWebAcl {name}", args)
        tags = {**args.tags, "component": "edge"}
        acl = aws.wafv2.WebAcl(
            f"{name}-acl",
            name=f"{args.name_prefix}-edge",
            description=f"{args.name_prefix}: managed rule sets and the /api/* rate limit",
            scope="CLOUDFRONT",
            region=WAF_REGION,
            default_action={"allow": {}},
            rules=rules(args),
            visibility_config=_visibility(f"{args.name_prefix}-edge"),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        if args.log_retention_days:
            self._logging(name, args, acl, tags)
        self.arn = acl.arn
        self.name = acl.name
        self.register_outputs({"arn": self.arn})

    def _logging(self, name: str, args: EdgeWebAclArgs, acl: aws.wafv2.WebAcl, tags: dict) -> None:
        # A key is regional: the log group is in us-east-1 whatever the stack's region, so is its key.
        key = log_key(name, self, f"{args.name_prefix}: WAF logs", tags, region=WAF_REGION)
        group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"aws-waf-logs-{args.name_prefix}",
            region=WAF_REGION,
            retention_in_days=args.log_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            f"{name}-logging",
            resource_arn=acl.arn,
            region=WAF_REGION,
            log_destination_configs=[group.arn],
            redacted_fields=[{"single_header": {"name": "authorization"}},
                             {"single_header": {"name": "cookie"}}],
            opts=pulumi.ResourceOptions(parent=self),
        )
