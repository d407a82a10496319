"""ElastiCache (Valkey/Redis) replication groups, their RBAC users and user groups."""

from __future__ import annotations

from cofounder_policies.database import not_burstable
from cofounder_policies.rules import MANDATORY, get, items, of_type, plain, resource_rule, stack_rule

REPLICATION_GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
USER = "aws:elasticache/user:User"
USER_GROUP = "aws:elasticache/userGroup:UserGroup"
#: Access-string rules that grant everything of a kind (ElastiCache RBAC / Valkey ACL syntax).
_FULL_ACCESS = {"~*": "every key", "allkeys": "every key", "+@all": "every command", "allcommands": "every command",
                "&*": "every channel", "allchannels": "every channel"}
#: Categories that hold keyless commands (FLUSHALL, CONFIG, ...) no key pattern limits.
_BROAD_CATEGORIES = ("+@write", "+@keyspace", "+@admin", "+@dangerous")


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


_not_burstable = not_burstable("nodeType", BURSTABLE_PREFIXES, "node type")


def _rbac(props, settings):
    if not items(get(props, "userGroupIds")):
        yield "no userGroupIds: without RBAC users every client shares one token and full access"
    if get(props, "authToken") or get(props, "authTokenWo"):
        yield "authToken is set next to RBAC: a client with the token bypasses the users' access strings"


def access_problems(access: str) -> list[str]:
    """What makes an access string broader than one role's keys and commands."""
    rules = access.split()
    found = [f"{rule!r} grants {what}" for rule, what in _FULL_ACCESS.items() if rule in rules]
    found += [f"{rule!r} includes commands no key pattern limits" for rule in rules if rule in _BROAD_CATEGORIES]
    return found


def _user_least_privilege(props, settings):
    access = str(get(props, "accessString", ""))
    if get(props, "userName") == "default":
        if access.split()[:1] != ["off"] or any(r.startswith(("~", "&", "+")) for r in access.split()):
            yield f"the default user's access string {access!r} is not 'off' with no keys, channels or commands"
        return
    for problem in access_problems(access):
        yield f"access string {access!r}: {problem}"


def _default_user_off(resources, settings):
    users = {get(p, "userId"): p for p in (plain(r.props) for r in of_type(resources, USER))}
    groups = {get(p, "userGroupId"): p for p in (plain(r.props) for r in of_type(resources, USER_GROUP))}
    for r in of_type(resources, REPLICATION_GROUP):
        for group_id in items(get(plain(r.props), "userGroupIds")):
            group = groups.get(group_id)
            if group is None:
                yield f"user group {group_id!r} is not declared in this stack, so its users are unchecked", r.urn
                continue
            members = [users.get(u) for u in items(get(group, "userIds"))]
            defaults = [u for u in members if u is not None and get(u, "userName") == "default"]
            if not defaults:
                yield (f"user group {group_id!r} has no user named 'default' of this stack "
                       f"(ElastiCache adds its own default user, which has full access)"), r.urn
            elif any(str(get(u, "accessString", "")).split()[:1] != ["off"] for u in defaults):
                yield f"user group {group_id!r}: its default user is not 'off'", r.urn


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
    resource_rule(
        "elasticache-replication-group-rbac",
        "Each client role gets its own user and password, so a leaked session credential cannot read the LLM "
        "cache or flush the cluster. Fix: userGroupIds=[<user group>] with one aws.elasticache.User per role, "
        "and no authToken.",
        MANDATORY, [REPLICATION_GROUP], _rbac),
    resource_rule(
        "elasticache-user-least-privilege",
        "A Valkey user may touch only its role's keys and commands; the 'default' user (any client that "
        "does not AUTH) nothing. Fix: access strings 'on ~<prefix>* resetchannels -@all +<command> ...' "
        "(pub/sub: '&<channel pattern>' and no key), never ~*, allkeys, +@all or broad categories; the "
        "default user 'off -@all'.",
        MANDATORY, [USER], _user_least_privilege),
    stack_rule(
        "elasticache-user-group-default-user-off",
        "A user group must contain a user named 'default'; if it is not one of the stack's own, switched "
        "off, ElastiCache's built-in default user (full access, no password) is in it. Fix: add a user "
        "userName='default' with accessString 'off -@all' to the group.",
        MANDATORY, _default_user_off),
]
