"""CostBudget: the stack's AWS Budget derived from its cost model, the encrypted alert topic, the anomaly alerts."""

from __future__ import annotations

import copy
import json

import pulumi
import pulumi_aws as aws
import pytest
import yaml

from capacity import cost
from components import ComponentArgsError
from components.cost_budget import (
    BUDGETS,
    COST_ALERTS,
    BudgetEstimateError,
    BudgetSettings,
    CostBudget,
    CostBudgetArgs,
)
from components.declared import record
from infra.config import ConfigError
from tests.conftest import STACKS
from toolkit.cost_reports import cost_report, stack_estimate
from toolkit.harness import ACCOUNT
from toolkit.stackfile import STACKS_DIR

BUDGET = "aws:budgets/budget:Budget"
TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
MONITOR = "aws:costexplorer/anomalyMonitor:AnomalyMonitor"
ANOMALIES = "aws:costexplorer/anomalySubscription:AnomalySubscription"
KMS_KEY_MONTH = cost.load_prices("us-east-1").prices["kms.key-month"].usd


def _budget(run_program, before=None, **settings):
    """A program of ``before()`` (optional), then the component with ``settings``."""
    def program():
        recorder = record()
        if before:
            before()
        CostBudget("budget", CostBudgetArgs(name_prefix="cofounder-test", declared=recorder, region="us-east-1",
                                            cost_allocation_tag_value="test", **settings))
    return run_program(program)


# --- the component, defaults ---------------------------------------------------------------------


def test_the_budget_is_the_estimate_plus_the_margin(run_program):
    program = _budget(run_program)
    b = program.one(BUDGET).inputs
    # The component's own key is the one billable resource declared before the budget.
    assert b["limitAmount"] == f"{KMS_KEY_MONTH * 1.15:.2f}"
    assert (b["budgetType"], b["timeUnit"], b["limitUnit"], b["name"]) == ("COST", "MONTHLY", "USD",
                                                                            "cofounder-test-monthly")
    assert b["costFilters"] == [{"name": "TagKeyValue", "values": ["user:stack$test"]}]


def test_it_alerts_the_topic_on_the_forecast_at_80_and_the_actual_at_100_percent(run_program):
    program = _budget(run_program)
    topic = program.one(TOPIC)
    notes = {n["notificationType"]: n for n in program.one(BUDGET).inputs["notifications"]}
    assert set(notes) == {"FORECASTED", "ACTUAL"}
    assert (notes["FORECASTED"]["threshold"], notes["ACTUAL"]["threshold"]) == (80, 100)
    for n in notes.values():
        assert n["thresholdType"] == "PERCENTAGE" and n["comparisonOperator"] == "GREATER_THAN"
        assert n["subscriberSnsTopicArns"] == [topic.outputs["arn"]] and "subscriberEmailAddresses" not in n


def test_the_topic_is_encrypted_with_a_key_budgets_and_cost_alerts_may_use_for_this_account(run_program):
    program = _budget(run_program)
    key, topic = program.one(KEY), program.one(TOPIC)
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"] and topic.inputs["name"] == "cofounder-test-cost-alerts"
    assert key.inputs["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}
    assert set(statements) == {"AccountAdministers", "BudgetsAndCostAlertsPublishEncrypted"}
    use = statements["BudgetsAndCostAlertsPublishEncrypted"]
    assert use["Principal"] == {"Service": [BUDGETS, COST_ALERTS]}
    assert use["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    assert use["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}


def test_only_budgets_and_cost_alerts_acting_for_this_account_may_publish(run_program):
    program = _budget(run_program)
    topic = program.one(TOPIC).outputs["arn"]
    policy = program.one("aws:sns/topicPolicy:TopicPolicy").inputs
    assert policy["arn"] == topic
    statements = {s["Sid"]: s for s in json.loads(policy["policy"])["Statement"]}
    assert statements["BudgetsPublish"] == {
        "Sid": "BudgetsPublish", "Effect": "Allow", "Principal": {"Service": BUDGETS}, "Action": "SNS:Publish",
        "Resource": topic, "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT},
                                         "ArnLike": {"aws:SourceArn": f"arn:aws:budgets::{ACCOUNT}:*"}}}
    assert statements["CostAnomalyDetectionPublish"]["Principal"] == {"Service": COST_ALERTS}
    assert statements["CostAnomalyDetectionPublish"]["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
    assert set(statements) == {"BudgetsPublish", "CostAnomalyDetectionPublish"}


def test_nobody_is_subscribed_by_default(run_program):
    assert _budget(run_program).of_type("aws:sns/topicSubscription:TopicSubscription") == []


def test_the_anomaly_monitor_watches_services_and_sends_each_anomaly_over_the_threshold_at_once(run_program):
    program = _budget(run_program)
    monitor = program.one(MONITOR)
    assert (monitor.inputs["monitorType"], monitor.inputs["monitorDimension"]) == ("DIMENSIONAL", "SERVICE")
    sub = program.one(ANOMALIES).inputs
    assert sub["frequency"] == "IMMEDIATE" and sub["monitorArnLists"] == [monitor.outputs["arn"]]
    assert sub["subscribers"] == [{"type": "SNS", "address": program.one(TOPIC).outputs["arn"]}]
    assert sub["thresholdExpression"] == {"dimension": {
        "key": "ANOMALY_TOTAL_IMPACT_ABSOLUTE", "matchOptions": ["GREATER_THAN_OR_EQUAL"], "values": ["100"]}}


def test_notifications_wait_for_the_topic_policy_and_every_child_is_the_components(run_program):
    program = _budget(run_program)
    component = program.one("cofounder:cost:CostBudget")
    policy = program.one("aws:sns/topicPolicy:TopicPolicy")
    for type_ in (BUDGET, ANOMALIES):
        assert program.one(type_).options["dependsOn"] == [policy.urn]
    assert all(r.parent == component.urn for r in program.resources if r.custom)


# --- the component, overrides --------------------------------------------------------------------


def test_settings_change_the_amount_the_alerts_and_the_subscribers(run_program):
    program = _budget(run_program, margin_percent=0, forecast_alert_percent=90, actual_alert_percent=110,
                      subscriber_emails=["a@example.com", "b@example.com"], anomaly_monitor=False,
                      cost_allocation_tag="environment")
    b = program.one(BUDGET).inputs
    assert b["limitAmount"] == f"{KMS_KEY_MONTH:.2f}"
    assert b["costFilters"][0]["values"] == ["user:environment$test"]
    assert sorted(n["threshold"] for n in b["notifications"]) == [90, 110]
    subs = program.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert sorted(s.inputs["endpoint"] for s in subs) == ["a@example.com", "b@example.com"]
    assert all(s.inputs["protocol"] == "email" for s in subs)
    assert program.of_type(MONITOR) == [] and program.of_type(ANOMALIES) == []


def test_what_is_declared_before_it_raises_the_budget(run_program):
    def a_cluster():
        aws.eks.Cluster("eks", role_arn="arn:aws:iam::123456789012:role/eks", vpc_config={"subnet_ids": ["s-1"]})
    program = _budget(run_program, a_cluster)
    eks = 0.10 * 730  # eks.cluster-hour x hoursPerMonth
    assert program.one(BUDGET).inputs["limitAmount"] == f"{(eks + KMS_KEY_MONTH) * 1.15:.2f}"


def test_values_unknown_during_a_preview_leave_the_amount_known(run_program):
    def unknown_inputs():
        loop_future = pulumi.Output.from_input(None).future()  # a resolved future on the program's loop
        unknown = pulumi.Output(set(), loop_future, pulumi.Output.from_input(False).future())
        aws.eks.Cluster("eks", role_arn=unknown, vpc_config={"subnet_ids": [unknown]})
    program = _budget(run_program, unknown_inputs)
    assert float(program.one(BUDGET).inputs["limitAmount"]) == round((0.10 * 730 + KMS_KEY_MONTH) * 1.15, 2)


def test_an_estimate_without_a_price_fails_with_one_line_naming_it(run_program):
    with pytest.raises(BudgetEstimateError) as err:
        run_program(lambda: CostBudget("budget", CostBudgetArgs(
            name_prefix="p", declared=record(), region="xx-test-1", cost_allocation_tag_value="test")))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("CostBudget: the budget is derived from the maximum-scale cost estimate, which is "
                              "incomplete: 1 line unpriced")
    assert "kms.key-month" in message and "there is no price table for xx-test-1" in message


@pytest.mark.parametrize("settings, key", [({"margin_percent": 101}, "margin_percent"),
                                           ({"subscriber_emails": ["not-an-address"]}, "subscriber_emails[0]"),
                                           ({"anomaly_threshold_usd": 0}, "anomaly_threshold_usd")])
def test_bad_settings_fail_as_one_line(run_program, settings, key):
    with pytest.raises(ComponentArgsError) as err:
        _budget(run_program, **settings)
    assert str(err.value).startswith(f"CostBudget budget: {key} = ")


def test_the_settings_are_production_safe_by_default():
    s = BudgetSettings()
    assert s.enabled and s.anomaly_monitor and s.subscriber_emails == []
    assert (s.margin_percent, s.forecast_alert_percent, s.actual_alert_percent) == (15, 80, 100)


# --- whole stacks --------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_each_stacks_budget_is_its_cost_reports_maximum_plus_the_margin(stack_program, stack):
    program = stack_program(stack)
    e = stack_estimate(program)
    assert e.complete
    b = program.one(BUDGET).inputs
    assert b["limitAmount"] == f"{round(e.monthly_max, 2) * 1.15:.2f}"
    assert program.outputs["budgetLimitUsd"] == b["limitAmount"]
    assert program.outputs["budgetName"] == f"cofounder-{stack}-monthly"
    assert program.outputs["costAlertTopicArn"] == program.one(TOPIC, "budget-topic").outputs["arn"]
    # filtered on the stack tag the provider puts on every resource
    assert b["costFilters"] == [{"name": "TagKeyValue", "values": [f"user:stack${stack}"]}]
    report = cost_report(program)
    assert report["data"]["budgetUsd"] == float(b["limitAmount"]) and report["ok"] is True
    assert any(n.startswith("Budget (the declared AWS Budget") for n in report["notes"])


def test_only_prod_declares_the_accounts_anomaly_monitor(stack_program):
    assert {s: len(stack_program(s).of_type(MONITOR)) for s in STACKS} == {"dev": 0, "staging": 0, "prod": 1}
    assert len(stack_program("prod").of_type(ANOMALIES)) == 1


def _with(stack: str, **changes):
    """Overrides for ``run_stack_with``: the stack's sections with ``section.key`` paths replaced."""
    config = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
    over: dict = {}
    for path, value in changes.items():
        section, *keys = path.split(".")
        block = over.setdefault(f"cofounder:{section}", copy.deepcopy(config.get(f"cofounder:{section}", {})))
        for k in keys[:-1]:
            block = block[k]
        block[keys[-1]] = value
    return over


@pytest.mark.parametrize("stack, change", [
    ("prod", {"postgres.instanceClass": "db.r7g.4xlarge"}),
    ("dev", {"apps.backend.maxReplicas": 10, "apps.worker.maxReplicas": 10,
             "cluster.nodeGroups.apps.maxSize": 10}),
])
def test_a_larger_stack_raises_its_budget_in_the_same_run(stack_program, run_stack_with, stack, change):
    before = float(stack_program(stack).one(BUDGET).inputs["limitAmount"])
    program = run_stack_with(stack, _with(stack, **change))
    after = float(program.one(BUDGET).inputs["limitAmount"])
    assert after > before
    assert after == round(round(stack_estimate(program).monthly_max, 2) * 1.15, 2)


def test_a_stack_whose_estimate_lacks_a_price_fails_instead_of_budgeting_low(run_stack_with, monkeypatch):
    full = cost.load_prices("us-east-1")
    holed = cost.PriceTable(full.region, full.currency, full.hours_per_month,
                            {k: v for k, v in full.prices.items() if k != "rds.backup-storage.gb-month"})
    monkeypatch.setattr(cost, "load_prices", lambda region: holed)
    with pytest.raises(BudgetEstimateError) as err:
        run_stack_with("dev")
    assert "\n" not in str(err.value) and "rds.backup-storage.gb-month" in str(err.value)


def test_the_budget_filters_on_a_default_tag(run_stack_with):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", _with("dev", **{"budget.costAllocationTag": "team"}))
    assert str(err.value) == (
        "stacks/Pulumi.dev.yaml: cofounder:budget.costAllocationTag = 'team' is not allowed: expected a key of "
        "aws:defaultTags.tags (environment, managed-by, project, stack): the budget filters on its value, which "
        "every resource of the stack must carry")


def test_a_stack_may_switch_the_budget_off(run_stack_with):
    program = run_stack_with("dev", _with("dev", **{"budget.enabled": False}))
    assert program.of_type(BUDGET) == [] and "budgetName" not in program.outputs


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_sees_every_resource_as_the_engine_receives_it(stack):
    """What the budget's estimate reads (components/declared.py, inside the program) is, resource by
    resource, what the mocks receive from the SDK: the cost report's input. Types the estimate does
    not read come by their type alone."""
    import runpy

    from pulumi.runtime.sync_await import _sync_await

    from toolkit import harness
    from toolkit.cost_reports import declared
    from toolkit.stackfile import REPO, load_stack_file

    stack_file, module = load_stack_file(stack), {}
    program = harness.run(lambda: module.update(runpy.run_path(str(REPO / "infra"), run_name="__main__")),
                          stack=stack, config=dict(stack_file.config), secret_keys=stack_file.secret_keys)
    recorder = module["recorder"]
    seen = {(d.type, d.key): d.props for d in _sync_await(recorder.declared().future())}
    received = {(d.type, d.key): d.props for d in declared(program)}
    from capacity.cost import PROPERTIES_READ
    assert len(seen) > 200 and seen.keys() == received.keys()
    read = [k for k in seen if k[0] in PROPERTIES_READ]
    assert len(read) > 50 and [k for k in read if seen[k] != received[k]] == []
    assert all(seen[k] == {} for k in seen if k[0] not in PROPERTIES_READ)
