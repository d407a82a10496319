"""kms-key-explicit-policy: every KMS key declares its key policy."""

import json

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy

from tests.conftest import STACKS
from tests.policies.helpers import violations

RULE = "kms-key-explicit-policy"
KEY = "aws:kms/key:Key"
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
     "Action": "kms:*", "Resource": "*"}]})


def test_a_key_with_a_policy_passes():
    assert violations(RULE, KEY, {"enableKeyRotation": True, "policy": POLICY}) == []


@pytest.mark.parametrize("props", [{"enableKeyRotation": True}, {"policy": ""}, {"policy": None}])
def test_a_key_on_the_default_policy_is_a_violation(props):
    [message] = violations(RULE, KEY, props)
    assert "declares no policy" in message


def test_a_policy_unknown_during_a_preview_counts():
    assert violations(RULE, KEY, unknown_checking_proxy({"policy": UNKNOWN_STRING_VALUE})) == []


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == RULE] == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_has_keys_for_the_rule_to_see(stack_program, stack):
    keys = stack_program(stack).of_type(KEY)
    assert len(keys) >= 5 and all(k.inputs.get("policy") for k in keys)
