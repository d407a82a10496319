"""CostBudget: the stack's monthly AWS Budget, derived from its cost model, and its anomaly monitor.

The budget's amount is not typed into the stack file: it is the stack's maximum-scale monthly
estimate (``capacity/cost.py``, the very figure of the preview's cost report) times
``1 + marginPercent / 100``, computed by the program from what it declares
(``components/declared.py``), so a change of size (an RDS class, a maxReplicas, a node group's
maxSize) changes the budget in the same preview. An estimate with a line the price table lacks
fails the program, naming the price: a budget below the bill would be silently wrong.

Builds, in order:
- a customer-managed KMS key (rotated; explicit policy, components/key_policy.py) that AWS Budgets
  and Cost Anomaly Detection may use to publish to the encrypted topic (the AWS-managed
  ``alias/aws/sns`` key cannot admit them);
- the SNS topic, encrypted with it, and its policy: only AWS Budgets and Cost Anomaly Detection
  acting for this account may publish;
- an email subscription per ``subscriberEmails`` (none by default: the topic exists and alerts
  reach whoever subscribes, in the stack file or to the topic directly);
- then, from the declared resources so far (this key and topic included; what follows is free),
  the ``aws.budgets.Budget``: COST, MONTHLY, in USD, filtered on the stack's cost-allocation tag
  (``user:<costAllocationTag>$<its value in the provider's default tags>``), notifying the topic
  when the month's forecast passes ``forecastAlertPercent`` and when actual spend passes
  ``actualAlertPercent`` of the amount;
- when ``anomalyMonitor`` is true, Cost Anomaly Detection's AWS services monitor (DIMENSIONAL,
  SERVICE) and a subscription sending each anomaly whose total impact is at least
  ``anomalyThresholdUsd`` to the topic at once (an SNS subscriber requires IMMEDIATE). An account
  has one such monitor, and it watches the whole account: in an account several stacks share,
  exactly one of them sets it (docs/budgets.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_aws as aws

from capacity.cost import CostSettings, IncompleteEstimate, max_scale_monthly_usd
from capacity.fleet import Declared
from components import Between, ComponentArgsError, Matches, require_valid
from components.declared import Recorder
from components.key_policy import KeyContext, topic_key

#: The services that publish to the topic: AWS Budgets and Cost Anomaly Detection.
BUDGETS, COST_ALERTS = "budgets.amazonaws.com", "costalerts.amazonaws.com"
_EMAIL = Matches(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address")
_TAG_KEY = Matches(r"[A-Za-z0-9 _.:/=+\-@]{1,128}", "a tag key (letters, digits, spaces and _.:/=+-@)")


class BudgetEstimateError(pulumi.RunError):
    """The cost model cannot price everything the stack declares, so no budget can be derived."""


@dataclass(frozen=True, kw_only=True)
class BudgetSettings:
    """``cofounder:budget``: the stack's AWS Budget (amount derived from the cost model) and anomaly alerts."""

    #: The budget, its alerts' topic and the anomaly subscription.
    enabled: bool = True
    #: Budget above the maximum-scale estimate, in percent: the amount is estimate x (1 + this / 100).
    margin_percent: Annotated[float, Between(0, 100)] = 15.0
    #: Alert when the month's forecast passes this share of the budget (FORECASTED notification).
    forecast_alert_percent: Annotated[float, Between(1, 1000)] = 80.0
    #: Alert when the month's actual spend passes this share of the budget (ACTUAL notification).
    actual_alert_percent: Annotated[float, Between(1, 1000)] = 100.0
    #: Email addresses subscribed to the alert topic (each confirms by email); none: nobody is
    #: subscribed until set, the topic and its alerts exist regardless.
    subscriber_emails: list[Annotated[str, _EMAIL]] = field(default_factory=list)
    #: The cost-allocation tag the budget filters on; its value is the one the provider's default
    #: tags (aws:defaultTags) give every resource. Activate it once in the Billing console.
    cost_allocation_tag: Annotated[str, _TAG_KEY] = "stack"
    #: Declare the account's AWS services anomaly monitor (one per account: one stack per account sets it).
    anomaly_monitor: bool = True
    #: Anomalies whose total impact reaches this many USD are sent to the topic.
    anomaly_threshold_usd: Annotated[float, Between(1, None)] = 100.0


@dataclass(frozen=True, kw_only=True)
class CostBudgetArgs(BudgetSettings):
    """Settings plus what the estimate reads and what the budget filters on."""

    #: Prefix of the physical names (budget, topic, monitor), e.g. ``cofounder-prod``.
    name_prefix: str
    #: What the program declared so far (``components/declared.py``, recording from its first line).
    declared: Recorder
    #: The price table's region (``aws:region``).
    region: str
    #: The usage assumptions of the estimate (``cofounder:cost``).
    cost: CostSettings = field(default_factory=CostSettings)
    #: Share of a node's allocatable the declared pods may use (``cofounder:scaling.nodePodShare``).
    node_pod_share: float = 0.9
    #: The value of ``cost_allocation_tag`` on every resource of the stack (its default tags).
    cost_allocation_tag_value: str
    tags: dict[str, str] = field(default_factory=dict)


def budget_amount_usd(declared: list[Declared], args: CostBudgetArgs) -> float:
    """The budget: the maximum-scale estimate x (1 + margin), in cents; ``BudgetEstimateError``
    (one line naming what lacks a price) when the estimate is incomplete."""
    try:
        top = max_scale_monthly_usd(declared, args.region, args.cost, args.node_pod_share)
    except IncompleteEstimate as e:
        raise BudgetEstimateError(
            f"CostBudget: the budget is derived from the maximum-scale cost estimate, which is {e}; add the "
            f"price (capacity/prices/{args.region}.yaml, capacity/instance-classes.yaml) or the type "
            "(capacity/cost.py PRICERS or FREE_TYPES)") from None
    return round(top * (1 + args.margin_percent / 100), 2)


def _publishers_use_the_key(ctx: KeyContext) -> list[dict]:
    # An encrypted topic's publisher needs kms:GenerateDataKey* and kms:Decrypt on its key (Amazon SNS
    # developer guide, "Key management", "Configuring AWS KMS permissions" and its statement for AWS
    # services publishing to encrypted topics:
    # https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html), here only for this account.
    return [{"Sid": "BudgetsAndCostAlertsPublishEncrypted", "Effect": "Allow",
             "Principal": {"Service": [BUDGETS, COST_ALERTS]},
             "Action": ["kms:GenerateDataKey*", "kms:Decrypt"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:SourceAccount": ctx.account}}}]


def topic_policy(topic_arn: str, account: str, partition: str) -> str:
    """Only AWS Budgets and Cost Anomaly Detection, each acting for this account, may publish."""
    return json.dumps({"Version": "2012-10-17", "Statement": [
        # AWS Cost Management user guide, "Creating an Amazon SNS topic for budget notifications"
        # (https://docs.aws.amazon.com/cost-management/latest/userguide/budgets-sns-policy.html):
        # aws:SourceAccount and aws:SourceArn arn:aws:budgets::<account-id>:*.
        {"Sid": "BudgetsPublish", "Effect": "Allow", "Principal": {"Service": BUDGETS},
         "Action": "SNS:Publish", "Resource": topic_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": account},
                       "ArnLike": {"aws:SourceArn": f"arn:{partition}:budgets::{account}:*"}}},
        # AWS Cost Management user guide, "Creating an Amazon SNS topic for anomaly notifications"
        # (https://docs.aws.amazon.com/cost-management/latest/userguide/ad-SNS.html): the statement
        # "only on behalf of a certain account", aws:SourceAccount.
        {"Sid": "CostAnomalyDetectionPublish", "Effect": "Allow", "Principal": {"Service": COST_ALERTS},
         "Action": "SNS:Publish", "Resource": topic_arn,
         "Condition": {"StringEquals": {"aws:SourceAccount": account}}},
    ]})


class CostBudget(pulumi.ComponentResource):
    """The stack's budget from its cost model, the encrypted alert topic and the anomaly alerts."""

    budget_name: str
    topic_arn: pulumi.Output[str]
    limit_amount: pulumi.Output[str]

    def __init__(self, name: str, args: CostBudgetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:cost:CostBudget", name, None, opts)
        require_valid(f"CostBudget {name}", args)
        if not args.cost_allocation_tag_value:
            raise ComponentArgsError(f"CostBudget {name}: cost_allocation_tag_value is empty: the budget would "
                                     "filter on no resource")
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "cost"}
        topic, policy = self._topic(name, args, tags, child)
        # Budgets and Cost Anomaly Detection check that they may publish when a notification is set.
        after_policy = pulumi.ResourceOptions(parent=self, depends_on=[policy])

        # Everything declared so far, this component's key and topic included; the budget and the
        # anomaly resources below are free (capacity/cost.py FREE_TYPES).
        amount = args.declared.declared().apply(lambda found: f"{budget_amount_usd(found, args):.2f}")
        self.budget_name = f"{args.name_prefix}-monthly"
        alerts = [("FORECASTED", args.forecast_alert_percent), ("ACTUAL", args.actual_alert_percent)]
        aws.budgets.Budget(
            f"{name}-budget",
            name=self.budget_name,
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=amount,
            limit_unit="USD",
            cost_filters=[aws.budgets.BudgetCostFilterArgs(
                name="TagKeyValue", values=[f"user:{args.cost_allocation_tag}${args.cost_allocation_tag_value}"])],
            notifications=[aws.budgets.BudgetNotificationArgs(
                notification_type=kind, comparison_operator="GREATER_THAN", threshold=percent,
                threshold_type="PERCENTAGE", subscriber_sns_topic_arns=[topic.arn]) for kind, percent in alerts],
            tags=tags,
            opts=after_policy,
        )
        if args.anomaly_monitor:
            self._anomaly_alerts(name, args, topic, tags, child, after_policy)

        self.topic_arn = topic.arn
        self.limit_amount = amount
        self.register_outputs({"budget_name": self.budget_name, "topic_arn": self.topic_arn,
                               "limit_amount": self.limit_amount})

    def _topic(self, name: str, args: CostBudgetArgs, tags: dict,
               child: pulumi.ResourceOptions) -> tuple[aws.sns.Topic, aws.sns.TopicPolicy]:
        invoke = pulumi.InvokeOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        key = topic_key(name, self, f"{args.name_prefix} budget and cost anomaly alert topic encryption",
                        _publishers_use_the_key, tags)
        topic = aws.sns.Topic(f"{name}-topic", name=f"{args.name_prefix}-cost-alerts", kms_master_key_id=key.arn,
                              tags=tags, opts=child)
        policy = aws.sns.TopicPolicy(
            f"{name}-topic-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account, partition).apply(lambda v: topic_policy(v[0], v[1], v[2])),
            opts=child,
        )
        for i, email in enumerate(args.subscriber_emails):
            aws.sns.TopicSubscription(f"{name}-email-{i}", topic=topic.arn, protocol="email", endpoint=email,
                                      opts=child)
        return topic, policy

    def _anomaly_alerts(self, name: str, args: CostBudgetArgs, topic: aws.sns.Topic, tags: dict,
                        child: pulumi.ResourceOptions, after_policy: pulumi.ResourceOptions) -> None:
        monitor = aws.costexplorer.AnomalyMonitor(
            f"{name}-anomaly-monitor",
            name=f"{args.name_prefix}-services",
            monitor_type="DIMENSIONAL",
            monitor_dimension="SERVICE",
            tags=tags,
            opts=child,
        )
        aws.costexplorer.AnomalySubscription(
            f"{name}-anomaly-subscription",
            name=f"{args.name_prefix}-anomalies",
            frequency="IMMEDIATE",  # the only frequency an SNS subscriber accepts
            monitor_arn_lists=[monitor.arn],
            subscribers=[aws.costexplorer.AnomalySubscriptionSubscriberArgs(type="SNS", address=topic.arn)],
            threshold_expression=aws.costexplorer.AnomalySubscriptionThresholdExpressionArgs(
                dimension=aws.costexplorer.AnomalySubscriptionThresholdExpressionDimensionArgs(
                    key="ANOMALY_TOTAL_IMPACT_ABSOLUTE", match_options=["GREATER_THAN_OR_EQUAL"],
                    values=[f"{args.anomaly_threshold_usd:g}"])),
            tags=tags,
            opts=after_policy,
        )
