"""Valkey RBAC: one ElastiCache user per role of the data, in one user group. A function, not a
component: its resources are children of the calling ``Redis``.

Each role's access string (``ACCESS_STRINGS``) is ElastiCache's RBAC syntax, a subset of Valkey's
ACL rules (https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Clusters.RBAC.html, "Specifying
permissions using an access string"; https://valkey.io/topics/acl/): ``on`` (no ``on`` means the
user is off), ``~<pattern>`` the keys it may touch, ``&<pattern>`` the pub/sub channels,
``resetchannels`` no channel unless granted, ``-@all`` then ``+<command>`` the commands one by one.
Commands, not categories: a category such as ``+@write`` also grants FLUSHALL, which takes no key
and so escapes every key pattern. Every user may run what a cluster client needs to find the shards
(``CLIENT_COMMANDS``: PING, READONLY for replica reads, CLUSTER SLOTS and SHARDS); AUTH and HELLO
are always allowed.

A user group must contain a user named ``default`` (ElastiCache's ``DefaultUserRequired`` error,
https://docs.aws.amazon.com/botocore/latest/reference/services/elasticache/client/exceptions/DefaultUserRequired.html).
Here that user is ``off``, with no key, channel or command: a client that does not AUTH (and so
is ``default``) can do nothing. Its password is generated too and handed to nobody (a user group
of engine ``valkey`` admits only users with a password or IAM authentication, ElastiCache RBAC page).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.credentials import StoredPassword, random_password, store_password

ENGINE = "valkey"
CLIENT_COMMANDS = "+ping +readonly +cluster|slots +cluster|shards"
_KV = "+get +set +setex +getex +del +exists +expire +pexpire +ttl +pttl"
#: Role -> access string. The key prefixes and the channel pattern are the apps' contract
#: (docs/data-tier.md, "Valkey users"): sessions under ``sess:``, rate-limit windows under ``rl:``,
#: LLM responses under ``llm:``, agent results under ``result:`` (``setex result:<job id>``),
#: real-time updates on ``agent:*`` channels (sharded pub/sub, docs/agent-execution.md).
ACCESS_STRINGS: dict[str, str] = {
    "sessions": f"on ~sess:* resetchannels -@all {_KV} {CLIENT_COMMANDS}",
    "ratelimit": "on ~rl:* resetchannels -@all +get +incr +incrby +decr +expire +pexpire +ttl +pttl +del "
                 f"+eval +evalsha {CLIENT_COMMANDS}",
    "llmcache": f"on ~llm:* resetchannels -@all {_KV} {CLIENT_COMMANDS}",
    "results": f"on ~result:* resetchannels -@all {_KV} {CLIENT_COMMANDS}",
    # No ~pattern: no key at all, channels only.
    "pubsub": f"on resetchannels &agent:* -@all +spublish +ssubscribe +sunsubscribe +publish +subscribe "
              f"+unsubscribe {CLIENT_COMMANDS}",
}
ROLES = tuple(ACCESS_STRINGS)
DEFAULT_USER_ACCESS = "off resetchannels -@all"
#: ElastiCache: 16-128 characters; letters and digits need no escaping in a URL.
PASSWORD_LENGTH = 64


def _password_slots(name: str, parent: pulumi.Resource,
                    generation: int) -> tuple[random.RandomPassword, random.RandomPassword | None]:
    """Two passwords that take turns: ``<name>-password`` holds the odd generations and
    ``<name>-password-b`` the even ones. Generation N draws its slot anew and leaves the other
    holding N - 1's (a user holds at most two: ElastiCache API Reference, "Authentication",
    PasswordCount "The maximum is two"). Returns (current, previous); previous is None at
    generation 1, before any rotation."""
    odd = random_password(f"{name}-password", parent, generation=generation if generation % 2 else generation - 1,
                          length=PASSWORD_LENGTH, specials=None)
    if generation == 1:
        return odd, None
    even = random_password(f"{name}-password-b", parent,
                           generation=generation if generation % 2 == 0 else generation - 1,
                           length=PASSWORD_LENGTH, specials=None)
    return (odd, even) if generation % 2 else (even, odd)


def valkey_user_group(name: str, parent: pulumi.Resource, *, identifier: str, secrets_key_arn: pulumi.Input[str],
                      secret_name_prefix: str, generation: int,
                      tags: dict[str, str]) -> tuple[dict[str, StoredPassword], aws.elasticache.UserGroup]:
    """``<name>-user-<role>`` for each role, ``<name>-user-default`` (off) and ``<name>-users``, the
    group the replication group uses. User ids are ``<identifier>-<role>`` (unique per account and
    region); the user names, what clients AUTH with, are the roles."""
    child = pulumi.ResourceOptions(parent=parent)
    users: dict[str, StoredPassword] = {}
    members: list[aws.elasticache.User] = []
    for role in ("default", *ROLES):
        current, previous = _password_slots(f"{name}-user-{role}", parent, generation)
        stored = store_password(
            f"{name}-user-{role}", parent, username=role, password=current,
            secret_name=f"{secret_name_prefix}/valkey/{role}", kms_key_arn=secrets_key_arn,
            generation=generation, tags=tags)
        members.append(aws.elasticache.User(
            f"{name}-user-{role}",
            user_id=f"{identifier}-{role}",
            user_name=role,
            engine=ENGINE,
            access_string=ACCESS_STRINGS.get(role, DEFAULT_USER_ACCESS),
            # The previous generation's password stays valid until the next rotation, so a pod not
            # yet replaced (it holds the old Secret) still passes AUTH when its client reconnects.
            authentication_mode=aws.elasticache.UserAuthenticationModeArgs(
                type="password", passwords=[stored.password, *([previous.result] if previous else [])]),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["authenticationMode", "passwords"]),
        ))
        if role != "default":
            users[role] = stored
    group = aws.elasticache.UserGroup(
        f"{name}-users",
        user_group_id=f"{identifier}-users",
        engine=ENGINE,
        user_ids=[u.user_id for u in members],
        tags=tags,
        opts=child,
    )
    return users, group
