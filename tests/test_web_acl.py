"""components/web_acl.py: a CLOUDFRONT web ACL in us-east-1 with the managed rule sets and the
/api/* rate limit; logs with secrets redacted; cofounder:waf per stack."""

from __future__ import annotations

import json

import pytest

from components import ComponentArgsError
from components.web_acl import EdgeWebAcl, EdgeWebAclArgs
from infra.config import ConfigError

ACL = "aws:wafv2/webAcl:WebAcl"


def _acl(run_program, **overrides):
    return run_program(lambda: EdgeWebAcl("waf", EdgeWebAclArgs(name_prefix="cofounder-test", **overrides)),
                       region="eu-west-1")


def _rules(program) -> dict[str, dict]:
    return {r["name"]: r for r in program.one(ACL).inputs["rules"]}


def test_the_acl_is_global_in_us_east_1_whatever_the_stack_region(run_program):
    acl = _acl(run_program).one(ACL).inputs
    assert (acl["scope"], acl["region"]) == ("CLOUDFRONT", "us-east-1")
    assert acl["defaultAction"] == {"allow": {}}
    assert acl["visibilityConfig"]["sampledRequestsEnabled"] is True


def test_rules_in_order_rate_limit_first(run_program):
    rules = _acl(run_program).one(ACL).inputs["rules"]
    assert [(r["name"], r["priority"]) for r in rules] == [
        ("api-rate-limit", 0), ("aws-common", 10), ("aws-known-bad-inputs", 20)]
    for rule in rules:
        assert rule["visibilityConfig"] == {"cloudwatchMetricsEnabled": True,
                                            "metricName": f"cofounder-test-{rule['name']}",
                                            "sampledRequestsEnabled": True}


def test_the_rate_limit_is_per_ip_on_the_api_only(run_program):
    rule = _rules(_acl(run_program, api_rate_limit=500, rate_window_seconds=60))["api-rate-limit"]
    assert rule["action"] == {"block": {}}
    statement = rule["statement"]["rateBasedStatement"]
    assert (statement["aggregateKeyType"], statement["limit"], statement["evaluationWindowSec"]) == ("IP", 500, 60)
    match = statement["scopeDownStatement"]["byteMatchStatement"]
    assert (match["positionalConstraint"], match["searchString"], match["fieldToMatch"]) == (
        "STARTS_WITH", "/api/", {"uriPath": {}})


def test_managed_rule_sets_block_except_the_body_size_rule(run_program):
    rules = _rules(_acl(run_program))
    common = rules["aws-common"]
    assert common["overrideAction"] == {"none": {}}
    group = common["statement"]["managedRuleGroupStatement"]
    assert (group["name"], group["vendorName"]) == ("AWSManagedRulesCommonRuleSet", "AWS")
    # agent inputs exceed the rule set's fixed 8 KB body limit: that one rule only counts
    assert group["ruleActionOverrides"] == [{"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}]
    bad = rules["aws-known-bad-inputs"]["statement"]["managedRuleGroupStatement"]
    assert bad["name"] == "AWSManagedRulesKnownBadInputsRuleSet" and "ruleActionOverrides" not in bad
    blocked = _rules(_acl(run_program, count_only_rules=[]))["aws-common"]
    assert "ruleActionOverrides" not in blocked["statement"]["managedRuleGroupStatement"]


def test_logs_in_us_east_1_with_session_tokens_redacted(run_program):
    p = _acl(run_program, log_retention_days=30)
    group = p.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert group["name"] == "aws-waf-logs-cofounder-test"  # WAF requires the prefix
    assert (group["region"], group["retentionInDays"]) == ("us-east-1", 30)
    # a key is regional: the WAF's logs get their own key in us-east-1, though the stack is in eu-west-1
    key = p.one("aws:kms/key:Key", "waf-log-key")
    assert key.inputs["region"] == "us-east-1" and group["kmsKeyId"] == key.outputs["arn"]
    (logs,) = [s for s in json.loads(key.inputs["policy"])["Statement"] if "Service" in s["Principal"]]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    logging = p.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration").inputs
    assert logging["resourceArn"] == p.one(ACL).outputs["arn"]
    assert logging["redactedFields"] == [{"singleHeader": {"name": "authorization"}},
                                         {"singleHeader": {"name": "cookie"}}]


def test_no_full_logs_keeps_sampled_requests_only(run_program):
    p = _acl(run_program, log_retention_days=0)
    assert not p.of_type("aws:cloudwatch/logGroup:LogGroup") and not p.of_type("aws:kms/key:Key")
    assert p.one(ACL).inputs["visibilityConfig"]["sampledRequestsEnabled"] is True


@pytest.mark.parametrize("overrides, message", [
    ({"api_rate_limit": 5}, "api_rate_limit = 5 is not allowed: expected a value between 10 and 2000000000"),
    ({"rate_window_seconds": 90}, "rate_window_seconds = 90 is not allowed: expected one of 60, 120, 300, 600"),
])
def test_bad_arguments_are_refused(run_program, overrides, message):
    with pytest.raises(ComponentArgsError, match=message):
        _acl(run_program, **overrides)


def test_stacks_attach_it_where_required(stack_program):
    for stack in ("staging", "prod"):
        p = stack_program(stack)
        assert p.one("aws:cloudfront/distribution:Distribution").inputs["webAclId"] == p.one(ACL).outputs["arn"]
    dev = stack_program("dev")
    assert not dev.of_type(ACL) and "webAclId" not in dev.one("aws:cloudfront/distribution:Distribution").inputs


def test_bad_waf_config_fails_with_a_clear_message(run_stack_with):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:waf": {"logRetentionDays": 10}})
    assert str(err.value).startswith("stacks/Pulumi.dev.yaml: cofounder:waf.logRetentionDays = 10 is not allowed: "
                                     "expected one of 0, 1, 3, 5, 7, 14, 30")
