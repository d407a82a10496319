"""components/key_policy.py: explicit key policies, and the keys of the stacks that use them."""

import json

import pytest

from components.key_policy import KeyContext, key_policy, used_through
from tests.conftest import STACKS
from toolkit import harness

CTX = KeyContext("111122223333", "aws-cn", "cn-north-1", "amazonaws.com.cn")


def test_the_root_administers_first_then_the_given_statements():
    extra = {"Sid": "X", "Effect": "Allow", "Principal": {"AWS": "arn:aws-cn:iam::111122223333:role/r"},
             "Action": "kms:Decrypt", "Resource": "*"}
    policy = json.loads(key_policy(CTX, extra))
    assert policy["Statement"] == [
        {"Sid": "AccountAdministers", "Effect": "Allow", "Principal": {"AWS": "arn:aws-cn:iam::111122223333:root"},
         "Action": "kms:*", "Resource": "*"}, extra]


def test_use_through_a_service_is_limited_to_that_service_in_the_keys_region_and_this_account():
    statement = used_through(CTX, "rds", "UseThroughRds")
    assert statement["Principal"] == {"AWS": "arn:aws-cn:iam::111122223333:root"}
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": "rds.cn-north-1.amazonaws.com.cn",
                                                       "kms:CallerAccount": "111122223333"}}
    assert "kms:CreateGrant" in statement["Action"] and "kms:*" not in statement["Action"]


def _policy(program, name: str) -> dict:
    return json.loads(harness.reveal(program.one("aws:kms/key:Key", name).inputs["policy"]))


@pytest.mark.parametrize("stack", STACKS)
def test_the_data_keys_serve_their_store_through_its_service(stack_program, stack):
    program = stack_program(stack)
    region = program.one("aws:rds/instance:Instance").outputs["address"].split(".")[2]
    for key, service in (("postgres-kms", "rds"), ("redis-kms", "elasticache")):
        sids = {s["Sid"]: s for s in _policy(program, key)["Statement"]}
        assert set(sids) == {"AccountAdministers", f"UseThrough{service.capitalize()}"}
        condition = sids[f"UseThrough{service.capitalize()}"]["Condition"]["StringEquals"]
        assert condition["kms:ViaService"] == f"{service}.{region}.amazonaws.com"


@pytest.mark.parametrize("stack", STACKS)
def test_the_secrets_key_serves_the_cluster_role_and_the_cluster_creator_through_eks(stack_program, stack):
    program = stack_program(stack)
    sids = {s["Sid"]: s for s in _policy(program, "platform-secrets")["Statement"]}
    assert set(sids) == {"AccountAdministers", "UseThroughEks", "ClusterRoleEncryptsSecrets"}
    role = program.one("aws:iam/role:Role", "platform-cluster").outputs["arn"]
    assert sids["ClusterRoleEncryptsSecrets"]["Principal"] == {"AWS": role}
    assert sids["UseThroughEks"]["Action"] == ["kms:CreateGrant", "kms:DescribeKey"]
    assert sids["UseThroughEks"]["Condition"]["StringEquals"]["kms:ViaService"].startswith("eks.")
