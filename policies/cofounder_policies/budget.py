"""Cost guard rails and their alert topics: a monthly AWS Budget per stack that warns before the bill
does, and SNS topics that are encrypted and that only the AWS services meant to publish can use.

The budget's amount is the program's own maximum-scale estimate plus a margin
(components/cost_budget.py); what the rules hold is that the budget exists, covers the stack's
resources (its cost-allocation tag) and tells someone twice: when the month's forecast passes the
early threshold and when actual spend passes the amount. An alert topic carries cost and health
alerts (budget, anomaly, CloudWatch alarm notifications): encrypted with a customer-managed key
whose policy admits exactly its publishers (the AWS-managed ``alias/aws/sns`` key admits no AWS
service), and its topic policy admits a service only when it acts for this account (the
confused-deputy conditions of the AWS Cost Management user guide, "Cross-service confused deputy
prevention").
"""

from __future__ import annotations

import json

from cofounder_policies.rules import MANDATORY, get, is_set, items, known, of_type, resource_rule, stack_rule

BUDGET = "aws:budgets/budget:Budget"
TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"
SOURCE_KEYS = ("aws:SourceAccount", "aws:SourceArn", "aws:SourceOwner")


def _budget_problems(props) -> list[str]:
    found = []
    if known(props, "budgetType") != "COST" or known(props, "timeUnit") != "MONTHLY":
        found.append("it is not a COST budget with a MONTHLY period")
    if known(props, "limitUnit") != "USD" or not is_set(props, "limitAmount"):
        found.append("it has no amount in USD")
    filters = [f for f in items(known(props, "costFilters")) if get(f, "name") == "TagKeyValue"]
    if not any(str(v).startswith("user:") for f in filters for v in items(get(f, "values"))):
        found.append("it filters on no cost-allocation tag (costFilters TagKeyValue user:<key>$<value>), so it "
                     "budgets the whole account")
    for kind in ("FORECASTED", "ACTUAL"):
        if not any(get(n, "notificationType") == kind and items(known(n, "subscriberSnsTopicArns"))
                   for n in items(known(props, "notifications"))):
            found.append(f"no {kind} notification goes to an SNS topic")
    return found


def _cost_budget(resources, settings):
    budgets = of_type(resources, BUDGET)
    problems = {b.urn: _budget_problems(b.props) for b in budgets}
    if any(not p for p in problems.values()):
        return
    if not budgets:
        yield ("the stack declares no AWS Budget, so nothing warns before the month's bill passes what its "
               "maximum scale should cost"), None
    for urn, found in problems.items():
        yield f"the budget does not guard the stack: {'; '.join(found)}", urn


def _topic_encrypted(props, settings):
    if not is_set(props, "kmsMasterKeyId"):
        yield "the SNS topic is not encrypted (no kmsMasterKeyId)"
    elif known(props, "kmsMasterKeyId") in (AWS_MANAGED_SNS_KEY, f"arn:aws:kms:::{AWS_MANAGED_SNS_KEY}"):
        yield (f"the SNS topic uses the AWS-managed {AWS_MANAGED_SNS_KEY} key, whose policy no AWS service "
               "publishing to the topic (Budgets, Cost Anomaly Detection, CloudWatch) can use")


def _service_publish_scoped(props, settings):
    text = known(props, "policy")
    if not text:
        return  # unknown during a preview, or absent (the provider refuses that)
    try:
        statements = json.loads(text).get("Statement") or []
    except (ValueError, AttributeError):
        yield "the topic policy is not a JSON policy document"
        return
    for i, s in enumerate(statements if isinstance(statements, list) else [statements]):
        principal = s.get("Principal") if isinstance(s, dict) else None
        if s.get("Effect") != "Allow" or not isinstance(principal, dict) or "Service" not in principal:
            continue
        conditions = s.get("Condition") or {}
        keys = {k for block in conditions.values() if isinstance(block, dict) for k in block}
        if not keys & set(SOURCE_KEYS):
            yield (f"statement {s.get('Sid') or i} lets {principal['Service']} publish for any account: add an "
                   "aws:SourceAccount (or aws:SourceArn) condition naming this account")


POLICIES = [
    stack_rule(
        "budgets-cost-budget-with-alerts",
        "Over-scaling is the seed's cost risk, and a bill is read a month late: every stack declares a "
        "monthly COST budget in USD, filtered on its cost-allocation tag, that notifies an SNS topic when "
        "the month's forecast passes its early threshold (FORECASTED) and when actual spend passes the "
        "amount (ACTUAL). Fix: keep cofounder:budget.enabled true (components/cost_budget.py derives the "
        "amount from the stack's maximum-scale cost estimate plus marginPercent).",
        MANDATORY, _cost_budget),
    resource_rule(
        "sns-topic-encrypted",
        "Alert topics carry what the platform says about its health and its bill: each SNS topic is "
        "encrypted with a customer-managed KMS key whose policy admits its publishers (AWS Budgets, Cost "
        "Anomaly Detection, CloudWatch); the AWS-managed alias/aws/sns key admits none of them. Same as "
        "AWS Config's sns-encrypted-kms and FSBP SNS.1. Fix: kmsMasterKeyId= a key built with "
        "components/key_policy.py's explicit_key_policy and a statement for the publishing services.",
        MANDATORY, [TOPIC], _topic_encrypted),
    resource_rule(
        "sns-topic-policy-source-account",
        "A topic policy that lets an AWS service publish without naming the account it acts for lets that "
        "service publish on behalf of any account (the confused deputy: AWS Cost Management user guide, "
        "\"Cross-service confused deputy prevention\"). Each Allow to a Service principal carries an "
        "aws:SourceAccount or aws:SourceArn condition. Fix: add the condition with this account's id, as "
        "components/cost_budget.py and components/cloudwatch_alarms.py do.",
        MANDATORY, [TOPIC_POLICY], _service_publish_scoped),
]
