"""components/log_encryption.py: the key every log group is encrypted with, and, over whole
stacks, that every log group has one of its component's own, in its region, before it exists."""

from __future__ import annotations

import json

import pulumi
import pytest

from components.log_encryption import log_key, log_key_policy
from tests.conftest import STACKS
from toolkit.harness import ACCOUNT, Program, Resource

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY = "aws:kms/key:Key"


class _Owner(pulumi.ComponentResource):
    def __init__(self, name: str, region: str | None):
        super().__init__("cofounder:test:Owner", name, None, None)
        self.key = log_key(name, self, "test logs", {"component": "test"}, region=region)
        self.register_outputs({})


def _statements(key: Resource) -> dict[str, dict]:
    return {s["Sid"]: s for s in json.loads(key.inputs["policy"])["Statement"]}


def test_the_policy_is_the_documented_account_wide_statement_plus_the_root():
    policy = json.loads(log_key_policy(account="111122223333", partition="aws", region="eu-west-1",
                                       dns_suffix="amazonaws.com"))
    root, logs = policy["Statement"]
    assert (root["Principal"], root["Action"], root["Resource"]) == (
        {"AWS": "arn:aws:iam::111122223333:root"}, "kms:*", "*")
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Action"] == ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*",
                              "kms:Describe*"]
    # only this account's log groups in this region: CloudWatch Logs sets the context to the group's ARN
    assert logs["Condition"] == {"ArnLike": {
        "kms:EncryptionContext:aws:logs:arn": "arn:aws:logs:eu-west-1:111122223333:log-group:*"}}


@pytest.mark.parametrize("region, expected", [(None, "eu-central-1"), ("us-east-1", "us-east-1")])
def test_the_key_rotates_and_admits_logs_of_its_own_region(run_program, region, expected):
    p = run_program(lambda: _Owner("owner", region), region="eu-central-1")
    key = p.one(KEY, "owner-log-key")
    assert key.parent == p.one("cofounder:test:Owner").urn
    assert (key.inputs["enableKeyRotation"], key.inputs["deletionWindowInDays"]) == (True, 30)
    assert key.inputs.get("region") == region
    assert key.outputs["arn"].startswith(f"arn:aws:kms:{expected}:")
    logs = _statements(key)["CloudWatchLogsEncryptsThisAccountsLogGroups"]
    assert logs["Principal"] == {"Service": f"logs.{expected}.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == \
        f"arn:aws:logs:{expected}:{ACCOUNT}:log-group:*"
    assert _statements(key)["AccountAdministers"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}


# --- whole stacks ----------------------------------------------------------------------------


def _key_of(program: Program, group: Resource) -> Resource:
    return next(k for k in program.of_type(KEY) if k.outputs["arn"] == group.inputs.get("kmsKeyId"))


def _region(arn: str) -> str:
    return arn.split(":")[3]


@pytest.mark.parametrize("stack", STACKS)
def test_every_log_group_has_its_components_own_key_in_its_region(stack_program, stack):
    program = stack_program(stack)
    groups = program.of_type(LOG_GROUP)
    # flow logs, control plane, postgresql + upgrade, and the WAF's where it is on (not in dev)
    assert len(groups) == (4 if stack == "dev" else 5)
    keys = set()
    for group in groups:
        key = _key_of(program, group)  # the ARN as kmsKeyId: the dependency that creates the key first
        keys.add(key.urn)
        assert key.parent == group.parent and key.name.endswith("-log-key"), group.urn
        assert _region(key.outputs["arn"]) == _region(group.outputs["arn"]), group.urn
        logs = _statements(key)["CloudWatchLogsEncryptsThisAccountsLogGroups"]
        assert logs["Principal"] == {"Service": f"logs.{_region(group.outputs['arn'])}.amazonaws.com"}
    assert len(keys) == (3 if stack == "dev" else 4)  # one per component that writes logs


def test_the_waf_logs_key_is_in_us_east_1_whatever_the_stack_region(run_stack_with):
    # No price table for eu-west-1 (capacity/prices/): the budget, derived from the estimate, cannot be.
    program = run_stack_with("staging", {"aws:region": "eu-west-1", "cofounder:network": {
        "cidrBlock": "10.20.0.0/16", "availabilityZones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"]},
        "cofounder:budget": {"enabled": False}})
    regions = {g.inputs.get("name", g.name): _region(_key_of(program, g).outputs["arn"])
               for g in program.of_type(LOG_GROUP)}
    assert regions.pop("aws-waf-logs-cofounder-staging") == "us-east-1"
    assert set(regions.values()) == {"eu-west-1"}
