"""ElastiCache Redis replication groups."""

from __future__ import annotations

from cofounder_policies.rules import MANDATORY, get, items, resource_rule

REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"


def _transit(props, settings):
    if get(props, "transitEncryptionEnabled") is not True:
        yield "transitEncryptionEnabled is not true"
    elif get(props, "transitEncryptionMode") == "preferred":
        yield "transitEncryptionMode is 'preferred', which still accepts plaintext clients"


def _at_rest(props, settings):
    if get(props, "atRestEncryptionEnabled") is not True:
        yield "atRestEncryptionEnabled is not true"


def _auth(props, settings):
    if not (get(props, "authToken") or get(props, "authTokenWo") or items(get(props, "userGroupIds"))):
        yield "no authToken (or RBAC userGroupIds): any client in the security group can connect"


def _failover(props, settings):
    if not settings["required"]:
        return
    if get(props, "automaticFailoverEnabled") is not True:
        yield "automaticFailoverEnabled is not true and this stack requires failover"
    if settings["requireMultiAz"] and get(props, "multiAzEnabled") is not True:
        yield "multiAzEnabled is not true and this stack requires replicas in another AZ"


#: Burstable node types (T classes): the same CPU-credit model as RDS's db.t* (database.py).
BURSTABLE_PREFIXES = ("cache.t2.", "cache.t3.", "cache.t4g.")


def _not_burstable(props, settings):
    node = str(get(props, "nodeType", ""))
    if not settings["allowBurstable"] and node.startswith(BURSTABLE_PREFIXES):
        yield (f"nodeType {node} is burstable: under a sustained peak its CPU credits run out and it "
               "drops to its baseline; this stack requires a fixed-performance node type (m or r)")


POLICIES = [
    resource_rule(
        "elasticache-replication-group-transit-encryption",
        "Sessions and cached LLM answers must not cross the network in clear text. Fix: "
        "transitEncryptionEnabled=true (transitEncryptionMode 'required') and TLS in the clients.",
        MANDATORY, [REPLICATION_GROUP], _transit),
    resource_rule(
        "elasticache-replication-group-at-rest-encryption",
        "Cache data and its backups must be encrypted at rest. Fix: atRestEncryptionEnabled=true "
        "(optionally kmsKeyId); changing it replaces the group.",
        MANDATORY, [REPLICATION_GROUP], _at_rest),
    resource_rule(
        "elasticache-replication-group-auth-token",
        "Redis must require authentication. Fix: set authToken from a pulumi-random password "
        "(a Pulumi secret), or use RBAC userGroupIds.",
        MANDATORY, [REPLICATION_GROUP], _auth),
    resource_rule(
        "elasticache-replication-group-automatic-failover",
        "Where the stack requires it (staging, prod), a replica is promoted automatically when a "
        "primary fails. Fix: automaticFailoverEnabled=true and multiAzEnabled=true with at least "
        "one replica per shard.",
        MANDATORY, [REPLICATION_GROUP], _failover,
        config={"required": {"type": "boolean", "default": True,
                             "description": "Whether this stack requires automatic failover"},
                "requireMultiAz": {"type": "boolean", "default": True,
                                   "description": "Also require multiAzEnabled"}}),
    resource_rule(
        "elasticache-node-type-not-burstable",
        "In production a burstable (cache.t*) node runs out of CPU credits under a sustained 5x peak "
        "and falls to its baseline, which stalls every session and rate-limit lookup. Fix: a "
        "fixed-performance node type such as cache.m7g.large or cache.r7g.large "
        "(cofounder:redis.nodeType).",
        MANDATORY, [REPLICATION_GROUP], _not_burstable,
        config={"allowBurstable": {"type": "boolean", "default": False,
                                   "description": "Whether this stack may run burstable (T) node types "
                                                  "(true outside production)"}}),
]
