"""Redis: an ElastiCache for Valkey replication group in cluster mode, TLS and RBAC users required.

Valkey is the Redis-compatible engine ElastiCache now develops (same protocol, ioredis and
BullMQ work unchanged, lower price than Redis OSS). Builds a KMS key for encryption at rest, one
ElastiCache user per role of the data (``components/valkey_users.py``: sessions, rate limits, LLM
cache, agent results, pub/sub) in a user group whose ``default`` user is switched off, each
password generated and kept in Secrets Manager, a subnet group in the private
subnets, a security group admitting only the given security groups on 6379, a parameter group
with ``cluster-enabled yes`` and the replication group: shards x (1 primary + replicas), TLS
required in transit, automatic failover (AWS requires it in cluster mode, and it needs at least
one replica per shard), optional Multi-AZ placement, daily snapshots and a final snapshot.

Apps get one ``rediss://<user>:<password>@<configuration endpoint>:6379`` per role they use
(``REDIS_URL_<ROLE>``, components/app_data_settings.py) and use a cluster client
(``new Redis.Cluster([url], { redisOptions: { tls: {} } })`` in ioredis).

One cluster holds the seed's four roles (sessions, rate-limit counters, the LLM response cache,
agent results) plus pub/sub for real-time updates, and the parameter group declares how it
behaves when memory runs out (``EVICTION_POLICY``, reasons beside it). Pub/sub: in cluster mode
a classic PUBLISH goes to every node over the cluster bus, so it does not scale with shards
(https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/BestPractices.PubSub.html); the app
should use sharded pub/sub (SSUBSCRIBE / SPUBLISH, Valkey and Redis 7+, one channel served by
the shard that owns its hash slot), which the engine this component pins (Valkey 8) and cluster
mode provide with no further setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_aws as aws

from capacity import classes
from components import Between, Matches, require_valid
from components.credentials import StoredPassword, secrets_kms_key
from components.data_access import final_snapshot_identifier, kms_key, private_subnet_group, security_group_for
from components.valkey_users import valkey_user_group

PORT = 6379

#: What the engine does when a node reaches maxmemory. ElastiCache's default is volatile-lru
#: (https://docs.aws.amazon.com/whitepapers/latest/database-caching-strategies-using-redis/evictions.html);
#: it is declared here so the choice is visible and reviewed. volatile-lfu, because:
#: - every key the app writes carries a TTL (sessions their idle timeout, rate-limit windows their
#:   window, LLM cache entries and agent results their SETEX time), so every key may be evicted,
#:   and a key deliberately written without a TTL is never; once only such keys are left,
#:   "volatile-*" behaves like noeviction and writes fail (https://valkey.io/topics/lru-cache/);
#: - LFU rather than LRU: the bulk of memory is the LLM response cache, whose entries are mostly
#:   written once and read rarely; LRU ranks such a fresh one-hit entry above a session read on
#:   every request of a user who paused for a few minutes, LFU keeps what is read often (active
#:   sessions, live rate-limit windows, hot cache entries) and drops one-hit entries first;
#: - not noeviction: a full cache would turn into write errors on the session and rate-limit path;
#: - not a second, allkeys-lru cluster for the cache: it doubles the cost, and an eviction is an
#:   incident either way (the Evictions alarm fires at the first one, components/cloudwatch_alarms.py),
#:   so the policy only decides what goes first while the cluster is too small.
#: Pub/sub holds no keys; a slow subscriber's output buffer counts as used memory until the
#: engine's client-output-buffer-limit for pubsub disconnects it.
EVICTION_POLICY = "volatile-lfu"


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    """``cofounder:redis``: the ElastiCache (Valkey) replication group in cluster mode."""

    #: ElastiCache node type of every primary and replica: one of capacity/instance-classes.yaml
    #: (its memory and price).
    node_type: Annotated[str, classes.listed("elasticache")] = "cache.r7g.large"
    #: Pinned Valkey major.minor (from 7 on the provider wants both, e.g. "8.1"); the parameter group
    #: family follows the major. Unlike RDS this does not drift: auto minor version upgrades only patch
    #: within 8.1 and the provider reads the running 8.1.x back as "8.1".
    engine_version: Annotated[str, Matches(r"8\.\d+", "a value matching 8\\.\\d+")] = "8.1"
    #: Shards (num_node_groups).
    shards: Annotated[int, Between(1, 500)] = 2
    #: Replicas per shard. At least 1: cluster mode requires automatic failover, which needs one.
    replicas_per_shard: Annotated[int, Between(1, 5)] = 1
    #: Place primaries and replicas in different availability zones.
    multi_az: bool = True
    #: Days of automatic snapshots; 0 turns them off.
    snapshot_retention_days: Annotated[int, Between(0, 35)] = 7
    #: Pulumi ``protect`` on the replication group and its KMS key.
    protect: bool = True
    #: Raise by one to rotate every Valkey user's password at the next deploy (docs/data-tier.md, Rotation).
    credentials_generation: Annotated[int, Between(1, 1000000)] = 1
    #: Days between scheduled rotations of the Valkey users' passwords: the first deploy of each
    #: new period rotates them; null: only credentialsGeneration rotates.
    credentials_rotation_days: Annotated[int | None, Between(1, 365)] = 30


@dataclass(frozen=True, kw_only=True)
class RedisArgs(RedisSettings):
    """Settings plus the wiring."""

    #: Replication group id: lowercase, at most 40 characters, unique per account and region.
    identifier: Annotated[str, Matches(r"[a-z][a-z0-9-]{0,39}", "a lowercase id of at most 40 characters")]
    vpc_id: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[str]]
    #: Security groups admitted on 6379 (the EKS cluster security group). Empty admits nobody.
    allowed_security_group_ids: Sequence[pulumi.Input[str]] = ()
    #: Prefix of the users' Secrets Manager secret names (``<prefix>/valkey/<role>``).
    secret_name_prefix: str = "cofounder"
    tags: dict[str, str] = field(default_factory=dict)


def parameter_group_family(engine_version: str) -> str:
    return f"valkey{engine_version.split('.')[0]}"


class Redis(pulumi.ComponentResource):
    """A Valkey cluster (cluster mode enabled) reachable only from the allowed security groups."""

    replication_group_id: pulumi.Output[str]
    #: The parameter group's maxmemory-policy (``EVICTION_POLICY``).
    eviction_policy: str
    configuration_endpoint: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    #: One user per role (``valkey_users.ROLES``), its password in Secrets Manager.
    users: dict[str, StoredPassword]
    #: The key of the users' secrets.
    secrets_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:data:Redis", name, None, opts)
        require_valid(f"Redis {name}", args)
        tags = {**args.tags, "component": "data"}

        key = kms_key(name, self, f"{args.identifier}: ElastiCache encryption at rest", tags,
                      service="elasticache", protect=args.protect)
        secrets_key = secrets_kms_key(name, self, f"{args.identifier}: Valkey user passwords in Secrets Manager",
                                      tags, protect=args.protect)
        users, user_group = valkey_user_group(
            name, self, identifier=args.identifier, secrets_key_arn=secrets_key.arn,
            secret_name_prefix=args.secret_name_prefix, generation=args.credentials_generation, tags=tags)
        subnets = self._subnet_group(name, args, tags)
        sg = security_group_for(
            name, self, vpc_id=args.vpc_id, port=PORT, sources=args.allowed_security_group_ids,
            description=f"{args.identifier}: Valkey {PORT} from the cluster only",
            rule_description="Valkey from the cluster (nodes and pods)",
            tags={**tags, "Name": f"{args.identifier}-redis"},
        )
        params = self._parameter_group(name, args, tags)
        group = self._replication_group(name, args, tags, key=key, subnets=subnets, sg=sg, params=params,
                                        user_group=user_group)

        self.replication_group_id = group.replication_group_id
        self.eviction_policy = EVICTION_POLICY
        self.configuration_endpoint = group.configuration_endpoint_address
        self.security_group_id = sg.id
        self.users = users
        self.secrets_key_arn = secrets_key.arn
        self.register_outputs({
            "configuration_endpoint": self.configuration_endpoint,
            "security_group_id": self.security_group_id,
            "user_secret_arns": {role: user.secret_arn for role, user in users.items()},
        })

    def _subnet_group(self, name: str, args: RedisArgs, tags: dict) -> aws.elasticache.SubnetGroup:
        """The cache subnet group over the private subnets."""
        return private_subnet_group(aws.elasticache.SubnetGroup, name, self, identifier=args.identifier,
                                    subnet_ids=args.subnet_ids, tags=tags)

    def _parameter_group(self, name: str, args: RedisArgs, tags: dict) -> aws.elasticache.ParameterGroup:
        """The parameter group: cluster mode, and the eviction policy."""
        family = parameter_group_family(args.engine_version)
        return aws.elasticache.ParameterGroup(
            f"{name}-params",
            name=f"{args.identifier}-{family}-cluster",
            family=family,
            # The description stays as it is: changing it replaces the group (ForceNew), which its
            # fixed name and the cluster using it do not allow; parameters change in place
            # (terraform-provider-aws internal/service/elasticache/parameter_group.go).
            description=f"{args.identifier}: cluster mode",
            parameters=[aws.elasticache.ParameterGroupParameterArgs(name="cluster-enabled", value="yes"),
                        aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy",
                                                                    value=EVICTION_POLICY)],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _replication_group(self, name: str, args: RedisArgs, tags: dict, *, key: aws.kms.Key,
                           subnets: aws.elasticache.SubnetGroup, sg: aws.ec2.SecurityGroup,
                           params: aws.elasticache.ParameterGroup,
                           user_group: aws.elasticache.UserGroup) -> aws.elasticache.ReplicationGroup:
        """The Valkey replication group: cluster mode, Multi-AZ failover, TLS, RBAC, encrypted."""
        return aws.elasticache.ReplicationGroup(
            f"{name}-cluster",
            replication_group_id=args.identifier,
            description=f"{args.identifier}: sessions, rate limits, LLM cache, pub/sub",
            engine="valkey",
            engine_version=args.engine_version,
            node_type=args.node_type,
            port=PORT,
            parameter_group_name=params.name,
            subnet_group_name=subnets.name,
            security_group_ids=[sg.id],
            cluster_mode="enabled",
            num_node_groups=args.shards,
            replicas_per_node_group=args.replicas_per_shard,
            automatic_failover_enabled=True,
            multi_az_enabled=args.multi_az,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            # RBAC instead of one AUTH token: each client authenticates as the user of its role.
            user_group_ids=[user_group.user_group_id],
            at_rest_encryption_enabled=True,
            kms_key_id=key.arn,
            snapshot_retention_limit=args.snapshot_retention_days,
            snapshot_window="03:00-04:00",
            maintenance_window="sun:04:30-sun:05:30",
            final_snapshot_identifier=final_snapshot_identifier(name, self, args.identifier),
            auto_minor_version_upgrade=True,
            tags={**tags, "Name": args.identifier},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
