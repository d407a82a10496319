"""ElastiCache replication group rules."""

import pytest

from tests.policies.helpers import violations

GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
GOOD = {"transitEncryptionEnabled": True, "atRestEncryptionEnabled": True,
        "authToken": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "t"},
        "automaticFailoverEnabled": True, "multiAzEnabled": True}
RULES = ["elasticache-replication-group-transit-encryption", "elasticache-replication-group-at-rest-encryption",
         "elasticache-replication-group-auth-token", "elasticache-replication-group-automatic-failover"]


@pytest.mark.parametrize("policy", RULES)
def test_an_encrypted_authenticated_failover_group_passes(policy):
    assert violations(policy, GROUP, GOOD) == []


@pytest.mark.parametrize("policy, change", [
    ("elasticache-replication-group-transit-encryption", {"transitEncryptionEnabled": False}),
    ("elasticache-replication-group-transit-encryption", {"transitEncryptionMode": "preferred"}),
    ("elasticache-replication-group-at-rest-encryption", {"atRestEncryptionEnabled": None}),
    ("elasticache-replication-group-auth-token", {"authToken": None}),
    ("elasticache-replication-group-automatic-failover", {"automaticFailoverEnabled": False}),
    ("elasticache-replication-group-automatic-failover", {"multiAzEnabled": False}),
])
def test_each_unsafe_setting_is_a_violation(policy, change):
    assert violations(policy, GROUP, {**GOOD, **change})


def test_failover_is_only_required_where_the_stack_says_so():
    single = {**GOOD, "automaticFailoverEnabled": False, "multiAzEnabled": False}
    assert violations("elasticache-replication-group-automatic-failover", GROUP, single, {"required": False}) == []


def test_rbac_user_groups_count_as_auth():
    assert violations("elasticache-replication-group-auth-token", GROUP,
                      {**GOOD, "authToken": None, "userGroupIds": ["app"]}) == []


def test_a_burstable_node_type_is_refused_where_the_stack_is_production():
    found = violations("elasticache-node-type-not-burstable", GROUP, {**GOOD, "nodeType": "cache.t4g.medium"})
    assert found and found[0].startswith("nodeType cache.t4g.medium is burstable")
    assert violations("elasticache-node-type-not-burstable", GROUP, {**GOOD, "nodeType": "cache.r7g.large"}) == []
    assert violations("elasticache-node-type-not-burstable", GROUP, {**GOOD, "nodeType": "cache.t4g.small"},
                      {"allowBurstable": True}) == []
