"""budgets-cost-budget-with-alerts, sns-topic-encrypted, sns-topic-policy-source-account."""

from __future__ import annotations

import copy
import json

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import STACKS
from tests.policies.helpers import resource, stack_violations, violations

BUDGET = "aws:budgets/budget:Budget"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:cofounder-test-cost-alerts"
GOOD_BUDGET = {
    "budgetType": "COST", "timeUnit": "MONTHLY", "limitAmount": "1348.41", "limitUnit": "USD",
    "costFilters": [{"name": "TagKeyValue", "values": ["user:stack$test"]}],
    "notifications": [
        {"notificationType": "FORECASTED", "comparisonOperator": "GREATER_THAN", "threshold": 80,
         "thresholdType": "PERCENTAGE", "subscriberSnsTopicArns": [TOPIC_ARN]},
        {"notificationType": "ACTUAL", "comparisonOperator": "GREATER_THAN", "threshold": 100,
         "thresholdType": "PERCENTAGE", "subscriberSnsTopicArns": [TOPIC_ARN]}],
}


# --- budgets-cost-budget-with-alerts -------------------------------------------------------------


def _budget_rule(*budgets: dict):
    return stack_violations("budgets-cost-budget-with-alerts",
                            [resource(BUDGET, f"b{i}", b) for i, b in enumerate(budgets)])


def test_a_monthly_cost_budget_on_the_stack_tag_with_both_alerts_to_a_topic_passes():
    assert _budget_rule(GOOD_BUDGET) == []


def test_a_stack_without_a_budget_is_a_violation():
    [(message, urn)] = _budget_rule()
    assert message.startswith("the stack declares no AWS Budget") and urn is None


def _without(path: str, value=None) -> dict:
    bad = copy.deepcopy(GOOD_BUDGET)
    if path == "forecast":
        bad["notifications"] = [n for n in bad["notifications"] if n["notificationType"] != "FORECASTED"]
    elif path == "actual-email-only":
        bad["notifications"][1] = {**bad["notifications"][1], "subscriberSnsTopicArns": [],
                                   "subscriberEmailAddresses": ["a@example.com"]}
    else:
        bad[path] = value
    return bad


@pytest.mark.parametrize("bad, says", [
    (_without("forecast"), "no FORECASTED notification goes to an SNS topic"),
    (_without("actual-email-only"), "no ACTUAL notification goes to an SNS topic"),
    (_without("costFilters", []), "it filters on no cost-allocation tag"),
    (_without("timeUnit", "ANNUALLY"), "it is not a COST budget with a MONTHLY period"),
    (_without("limitAmount", None), "it has no amount in USD"),
])
def test_a_budget_that_does_not_guard_the_stack_is_a_violation(bad, says):
    [(message, urn)] = _budget_rule(bad)
    assert message.startswith("the budget does not guard the stack: ") and says in message
    assert urn.endswith("::b0")


def test_one_good_budget_is_enough():
    assert _budget_rule(_without("forecast"), GOOD_BUDGET) == []


def test_an_amount_unknown_during_a_preview_counts():
    props = unknown_checking_proxy({**GOOD_BUDGET, "limitAmount": UNKNOWN_STRING_VALUE})
    assert stack_violations("budgets-cost-budget-with-alerts", [resource(BUDGET, "b", props)]) == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_budget_rule_is_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == "budgets-cost-budget-with-alerts"] == []


# --- sns-topic-encrypted -------------------------------------------------------------------------


def test_a_topic_under_a_customer_key_passes():
    key = "arn:aws:kms:us-east-1:123456789012:key/0000"
    assert violations("sns-topic-encrypted", TOPIC, {"name": "t", "kmsMasterKeyId": key}) == []
    assert violations("sns-topic-encrypted", TOPIC, unknown_checking_proxy({"kmsMasterKeyId": UNKNOWN_STRING_VALUE})) \
        == []


def test_an_unencrypted_topic_is_a_violation():
    [message] = violations("sns-topic-encrypted", TOPIC, {"name": "t"})
    assert message == "the SNS topic is not encrypted (no kmsMasterKeyId)"


def test_the_aws_managed_key_is_a_violation():
    [message] = violations("sns-topic-encrypted", TOPIC, {"name": "t", "kmsMasterKeyId": "alias/aws/sns"})
    assert "AWS-managed alias/aws/sns key" in message


@pytest.mark.parametrize("stack", STACKS)
def test_the_topic_rule_is_quiet_on_every_stack_and_sees_both_topics(stack_policies, stack_program, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == "sns-topic-encrypted"] == []
    names = sorted(t.name for t in stack_program(stack).of_type(TOPIC))
    assert names == ["alarms-topic", "budget-topic"]


# --- sns-topic-policy-source-account -------------------------------------------------------------


def _policy(*statements: dict) -> dict:
    return {"arn": TOPIC_ARN, "policy": json.dumps({"Version": "2012-10-17", "Statement": list(statements)})}


def _publish(service: str, condition: dict | None = None) -> dict:
    s = {"Sid": "Publish", "Effect": "Allow", "Principal": {"Service": service}, "Action": "SNS:Publish",
         "Resource": TOPIC_ARN}
    return {**s, "Condition": condition} if condition is not None else s


def test_a_service_publishing_for_this_account_passes():
    scoped = _publish("budgets.amazonaws.com", {"StringEquals": {"aws:SourceAccount": "123456789012"}})
    by_arn = _publish("costalerts.amazonaws.com", {"ArnLike": {"aws:SourceArn": "arn:aws:budgets::123456789012:*"}})
    account = {"Sid": "Owner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
               "Action": "SNS:Subscribe", "Resource": TOPIC_ARN}
    assert violations("sns-topic-policy-source-account", TOPIC_POLICY, _policy(scoped, by_arn, account)) == []


def test_a_service_publishing_for_any_account_is_a_violation():
    [message] = violations("sns-topic-policy-source-account", TOPIC_POLICY,
                           _policy(_publish("costalerts.amazonaws.com")))
    assert message.startswith("statement Publish lets costalerts.amazonaws.com publish for any account")


def test_a_policy_unknown_during_a_preview_is_skipped():
    props = unknown_checking_proxy({"arn": TOPIC_ARN, "policy": UNKNOWN_STRING_VALUE})
    assert violations("sns-topic-policy-source-account", TOPIC_POLICY, props) == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_topic_policy_rule_is_quiet_on_every_stack(stack_policies, stack_program, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == "sns-topic-policy-source-account"] == []
    assert len(stack_program(stack).of_type(TOPIC_POLICY)) == 2
