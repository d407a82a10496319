"""cloudwatch-log-group-encrypted: every log group carries a customer key, including the ones EKS
and RDS would otherwise create themselves."""

import dataclasses

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import STACKS
from tests.policies.helpers import resource, stack_violations
from toolkit import policy_runner

RULE = "cloudwatch-log-group-encrypted"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
CLUSTER = "aws:eks/cluster:Cluster"
INSTANCE = "aws:rds/instance:Instance"
KEY = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def _group(name: str, **props):
    return resource(LOG_GROUP, name.strip("/").replace("/", "-"), {"name": name, "kmsKeyId": KEY, **props})


def _stack(**override):
    resources = {
        "cluster": resource(CLUSTER, "eks", {"name": "demo-eks", "enabledClusterLogTypes": ["api", "audit"]}),
        "db": resource(INSTANCE, "db", {"identifier": "demo-pg", "enabledCloudwatchLogsExports": ["postgresql"]}),
        "eks-logs": _group("/aws/eks/demo-eks/cluster"),
        "pg-logs": _group("/aws/rds/instance/demo-pg/postgresql"),
        "flow-logs": resource(LOG_GROUP, "flow-logs", {"kmsKeyId": KEY}),  # auto-named
    }
    resources.update(override)
    return [r for r in resources.values() if r is not None]


def test_a_stack_whose_log_groups_all_carry_a_key_passes():
    assert stack_violations(RULE, _stack()) == []


def test_a_log_group_without_a_key_is_a_violation():
    [(message, urn)] = stack_violations(RULE, _stack(**{"flow-logs": resource(LOG_GROUP, "flow-logs", {})}))
    assert urn.endswith("::flow-logs") and "no kmsKeyId" in message


@pytest.mark.parametrize("missing, writer, name", [
    ("eks-logs", "::eks", "/aws/eks/demo-eks/cluster"),
    ("pg-logs", "::db", "/aws/rds/instance/demo-pg/postgresql"),
])
def test_a_group_the_service_would_create_itself_is_a_violation_on_its_writer(missing, writer, name):
    [(message, urn)] = stack_violations(RULE, _stack(**{missing: None}))
    assert urn.endswith(writer) and name in message and "without a KMS key" in message


def test_a_misnamed_group_does_not_count_for_the_service():
    [(message, _)] = stack_violations(RULE, _stack(**{"eks-logs": _group("/aws/eks/other-eks/cluster")}))
    assert "/aws/eks/demo-eks/cluster" in message


def test_writers_that_log_nothing_need_no_group():
    quiet = _stack(cluster=resource(CLUSTER, "eks", {"name": "demo-eks", "enabledClusterLogTypes": []}),
                   db=resource(INSTANCE, "db", {"identifier": "demo-pg"}), **{"eks-logs": None, "pg-logs": None})
    assert stack_violations(RULE, quiet) == []


def test_a_key_created_in_the_same_preview_counts():
    """In a real preview the new key's ARN, hence kmsKeyId, is unknown: it is set all the same."""
    proxied = [resource(r.resource_type, r.name, unknown_checking_proxy(
        {**r.props, "kmsKeyId": UNKNOWN_STRING_VALUE} if r.resource_type == LOG_GROUP else r.props))
        for r in _stack()]
    assert stack_violations(RULE, proxied) == []


# --- the real stacks, through the pack --------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == RULE] == []


@pytest.mark.parametrize("stack, level", [("dev", "advisory"), ("staging", "mandatory"), ("prod", "mandatory")])
def test_an_unencrypted_group_advises_dev_and_blocks_staging_and_prod(stack_program, stack, level):
    program = stack_program(stack)
    flow = next(r for r in program.of_type(LOG_GROUP) if r.name == "network-flow-logs")
    plain = {k: v for k, v in flow.outputs.items() if k != "kmsKeyId"}
    weakened = dataclasses.replace(flow, inputs={k: v for k, v in flow.inputs.items() if k != "kmsKeyId"},
                                   outputs=plain)
    program = dataclasses.replace(program, resources=[weakened if r is flow else r for r in program.resources])
    found = [v for v in policy_runner.run_policies(stack, program) if v["policy"] == RULE]
    assert [(v["enforcement"], v["urn"]) for v in found] == [(level, flow.urn)]


# --- cloudwatch-log-group-retention ----------------------------------------------------------

RETENTION = "cloudwatch-log-group-retention"


@pytest.mark.parametrize("days, minimum, fires", [
    (365, 365, False), (3653, 365, False),
    (90, 365, True), (364, 365, True),
    (None, 365, False), (0, 365, False),   # unset or 0: never expires
    (14, 7, False), (30, 30, False),
])
def test_a_log_group_keeps_its_events_at_least_the_stacks_minimum(days, minimum, fires):
    from tests.policies.helpers import violations
    props = {"name": "aws-waf-logs-demo", "kmsKeyId": KEY, **({} if days is None else {"retentionInDays": days})}
    found = violations(RETENTION, LOG_GROUP, props, {"minimumDays": minimum})
    assert found == ([f"retentionInDays is {days}, below this stack's minimum of {minimum} days"] if fires else [])


@pytest.mark.parametrize("stack", STACKS)
def test_every_stacks_log_groups_meet_its_minimum(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == RETENTION] == []


def test_prods_waf_logs_are_kept_a_year_and_a_shorter_retention_blocks_prod(stack_program):
    program = stack_program("prod")
    waf = next(r for r in program.of_type(LOG_GROUP) if r.name == "edge-waf-logs")
    assert waf.inputs["retentionInDays"] == 365 and waf.inputs["name"] == "aws-waf-logs-cofounder-prod"
    shorter = dataclasses.replace(waf, inputs={**waf.inputs, "retentionInDays": 90},
                                  outputs={**waf.outputs, "retentionInDays": 90})
    program = dataclasses.replace(program, resources=[shorter if r is waf else r for r in program.resources])
    found = [v for v in policy_runner.run_policies("prod", program) if v["policy"] == RETENTION]
    assert [(v["enforcement"], v["urn"]) for v in found] == [("mandatory", waf.urn)]
