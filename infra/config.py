"""Typed stack configuration: the only place in the project that reads ``pulumi.Config``.

Each stack file (``stacks/Pulumi.<stack>.yaml``) holds one structured block per component
under the ``cofounder:`` namespace, in camelCase. ``load()`` turns those blocks into the
frozen dataclasses below and validates them before any resource is declared. Every problem
(wrong type, unknown or misspelt key, value out of range, min above max) becomes one
``ConfigError`` naming the stack file, the key, the value and what is allowed. ``ConfigError``
subclasses ``pulumi.RunError``, so the CLI prints the message alone, without a traceback.

Adding a setting: add a field (snake_case; the YAML key is its camelCase form) with a default
and a ``doc``/bounds in ``field(metadata=...)``, document it in the README, test it.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pulumi

from capacity import connections

PROJECT = "cofounder"
ENVIRONMENTS = ("dev", "staging", "prod")


class ConfigError(pulumi.RunError):
    """A stack configuration value is missing or not allowed."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def bounded(default: Any = dataclasses.MISSING, *, minimum: float | None = None,
            maximum: float | None = None, pattern: str | None = None) -> Any:
    """A dataclass field whose value the loader checks against bounds or a regex."""
    meta = {"minimum": minimum, "maximum": maximum, "pattern": pattern}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------------------------
# Sections. Defaults are the production-safe choice; stacks override what differs.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    """``cofounder:network`` -- the VPC every other component lives in."""

    cidr_block: str = "10.0.0.0/16"
    #: Availability zones to span; three for production resilience, all in ``aws:region``.
    availability_zones: list[str]
    #: One NAT gateway for the whole VPC (cheaper, one AZ's failure cuts egress) instead of one per AZ.
    single_nat_gateway: bool = False
    flow_log_retention_days: int = bounded(90, minimum=1, maximum=3653)
    #: Which traffic the VPC flow logs record.
    flow_log_traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"
    #: Route S3 traffic through a free gateway endpoint instead of the NAT gateways.
    enable_s3_gateway_endpoint: bool = True

    def checks(self):
        try:
            net = ipaddress.IPv4Network(self.cidr_block)
        except ValueError:
            yield "cidrBlock", self.cidr_block, "an IPv4 CIDR block such as 10.0.0.0/16"
            return
        if not 16 <= net.prefixlen <= 20:
            yield "cidrBlock", self.cidr_block, "a prefix length between /16 and /20"
        if not 2 <= len(self.availability_zones) <= 6:
            yield "availabilityZones", self.availability_zones, "between 2 and 6 zones (3 recommended)"
        if len(set(self.availability_zones)) != len(self.availability_zones):
            yield "availabilityZones", self.availability_zones, "distinct zone names"


@dataclass(frozen=True, kw_only=True)
class PostgresConfig:
    """``cofounder:postgres`` -- the RDS for PostgreSQL instance behind PgBouncer."""

    #: RDS instance class; must be one ``capacity/connections.py`` knows the memory of.
    instance_class: str = "db.r7g.large"
    #: Pinned engine version (major.minor). With autoMinorVersionUpgrade, bump it when AWS upgrades.
    engine_version: str = bounded("17.6", pattern=r"17\.\d+")
    allocated_storage_gib: int = bounded(50, minimum=20, maximum=65536)
    #: Storage autoscaling ceiling; RDS grows gp3 storage up to this without downtime.
    max_allocated_storage_gib: int = bounded(500, minimum=20, maximum=65536)
    #: A synchronous standby in a second availability zone.
    multi_az: bool = True
    backup_retention_days: int = bounded(14, minimum=1, maximum=35)
    deletion_protection: bool = True
    #: Skip the snapshot RDS takes when the instance is deleted (only for throwaway stacks).
    skip_final_snapshot: bool = False
    #: Pulumi ``protect``: `pulumi destroy` and replacements fail until it is lifted.
    protect: bool = True
    #: Statements slower than this are logged; -1 disables slow-query logging.
    log_min_duration_statement_ms: int = bounded(500, minimum=-1, maximum=3600000)
    performance_insights_retention_days: int = bounded(7, minimum=7, maximum=731)
    #: Enhanced monitoring granularity; 0 turns it off.
    monitoring_interval_seconds: Literal[0, 1, 5, 10, 15, 30, 60] = 60
    auto_minor_version_upgrade: bool = True
    iam_database_authentication: bool = False
    #: Connections kept free of PgBouncer for administrators, migrations and rdsadmin.
    reserved_connections: int = bounded(10, minimum=5, maximum=1000)

    def checks(self):
        if self.instance_class not in connections.INSTANCE_MEMORY_GIB:
            yield ("instanceClass", self.instance_class,
                   "an RDS instance class listed in capacity/connections.py (e.g. db.t4g.medium, db.r7g.large)")
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            yield ("maxAllocatedStorageGib", self.max_allocated_storage_gib,
                   f"at least allocatedStorageGib ({self.allocated_storage_gib})")
        if self.performance_insights_retention_days != 7 and self.performance_insights_retention_days % 31:
            yield ("performanceInsightsRetentionDays", self.performance_insights_retention_days,
                   "7 or a multiple of 31 (months) up to 731")


@dataclass(frozen=True, kw_only=True)
class PgBouncerConfig:
    """``cofounder:pgbouncer`` -- the in-cluster connection pooler in front of RDS."""

    replicas: int = bounded(2, minimum=2, maximum=50)
    #: Server connections per replica for the app database (PgBouncer default_pool_size).
    default_pool_size: int = bounded(20, minimum=1, maximum=5000)
    #: Extra server connections per replica for bursts (reserve_pool_size).
    reserve_pool_size: int = bounded(5, minimum=0, maximum=1000)
    #: Client connections each replica accepts (max_client_conn).
    max_client_conn: int = bounded(1000, minimum=10, maximum=100000)
    #: Prepared statements tracked per server connection in transaction mode; must be > 0.
    max_prepared_statements: int = bounded(200, minimum=1, maximum=10000)


@dataclass(frozen=True, kw_only=True)
class RedisConfig:
    """``cofounder:redis`` -- the ElastiCache (Valkey) replication group in cluster mode."""

    node_type: str = bounded("cache.r7g.large", pattern=r"cache\.[a-z0-9]+\.[a-z0-9]+")
    #: Pinned Valkey version; the parameter group family follows the major (valkey8).
    engine_version: str = bounded("8.1", pattern=r"8\.\d+")
    #: Shards (num_node_groups).
    shards: int = bounded(2, minimum=1, maximum=500)
    #: Replicas per shard. At least 1: cluster mode requires automatic failover, which needs one.
    replicas_per_shard: int = bounded(1, minimum=1, maximum=5)
    #: Place primaries and replicas in different availability zones.
    multi_az: bool = True
    #: Days of automatic snapshots; 0 turns them off.
    snapshot_retention_days: int = bounded(7, minimum=0, maximum=35)
    protect: bool = True


@dataclass(frozen=True, kw_only=True)
class QueuesConfig:
    """``cofounder:queues`` -- the SQS agent-execution queue and its dead-letter queue."""

    #: The longest an agent run may take; the visibility timeout is this plus the margin.
    max_agent_run_seconds: int = bounded(900, minimum=1, maximum=43200)
    visibility_margin_seconds: int = bounded(60, minimum=0, maximum=3600)
    #: Deliveries before a message moves to the DLQ; the seed's BullMQ `attempts: 2`.
    max_receive_count: int = bounded(2, minimum=1, maximum=1000)
    message_retention_seconds: int = bounded(345600, minimum=60, maximum=1209600)
    dlq_message_retention_seconds: int = bounded(1209600, minimum=60, maximum=1209600)
    protect: bool = True

    @property
    def visibility_timeout_seconds(self) -> int:
        return self.max_agent_run_seconds + self.visibility_margin_seconds

    def checks(self):
        if self.visibility_timeout_seconds > 43200:
            yield ("visibilityMarginSeconds", self.visibility_margin_seconds,
                   f"maxAgentRunSeconds + visibilityMarginSeconds at most 43200 (SQS's 12 h limit), "
                   f"got {self.visibility_timeout_seconds}")
        if self.dlq_message_retention_seconds < self.message_retention_seconds:
            yield ("dlqMessageRetentionSeconds", self.dlq_message_retention_seconds,
                   f"at least messageRetentionSeconds ({self.message_retention_seconds}): a message's "
                   f"age carries over into the DLQ")
_YEAR_SECONDS = 31_536_000
_HOSTNAME = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
_ACM_US_EAST_1 = r"arn:aws:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}"


@dataclass(frozen=True, kw_only=True)
class CacheTierConfig:
    """One cache tier of ``cofounder:edge``: edge TTLs (cache policy) and the browser's Cache-Control."""

    min_ttl_seconds: int = bounded(0, minimum=0)
    default_ttl_seconds: int = bounded(60, minimum=0)
    max_ttl_seconds: int = bounded(60, minimum=0)
    #: ``max-age`` sent to the browser.
    browser_max_age_seconds: int = bounded(0, minimum=0)
    #: ``s-maxage`` for shared caches downstream of CloudFront; omitted when not set.
    shared_max_age_seconds: Optional[int] = bounded(None, minimum=0)
    #: ``stale-while-revalidate``; 0 omits it.
    stale_while_revalidate_seconds: int = bounded(0, minimum=0)
    #: ``immutable`` (content-hashed file names only).
    immutable: bool = False

    def checks(self):
        # The year cap is checked here: bounded()'s message would print it as 3.1536e+07.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_seconds") and value is not None and value > _YEAR_SECONDS:
                yield _camel(f.name), value, f"at most {_YEAR_SECONDS} (one year)"
        if self.min_ttl_seconds > self.max_ttl_seconds:
            yield ("minTtlSeconds", self.min_ttl_seconds,
                   f"at most maxTtlSeconds ({self.max_ttl_seconds})")
        elif not self.min_ttl_seconds <= self.default_ttl_seconds <= self.max_ttl_seconds:
            yield ("defaultTtlSeconds", self.default_ttl_seconds,
                   f"between minTtlSeconds ({self.min_ttl_seconds}) and maxTtlSeconds ({self.max_ttl_seconds})")


@dataclass(frozen=True, kw_only=True)
class StaticAssetsCacheConfig(CacheTierConfig):
    """``_next/static/*``: content-hashed, immutable for a year."""

    min_ttl_seconds: int = bounded(86_400, minimum=0)
    default_ttl_seconds: int = bounded(_YEAR_SECONDS, minimum=0)
    max_ttl_seconds: int = bounded(_YEAR_SECONDS, minimum=0)
    browser_max_age_seconds: int = bounded(_YEAR_SECONDS, minimum=0)
    immutable: bool = True


@dataclass(frozen=True, kw_only=True)
class PublicAssetsCacheConfig(CacheTierConfig):
    """``public/*``: stable names, one day, then served stale while the browser revalidates."""

    default_ttl_seconds: int = bounded(86_400, minimum=0)
    max_ttl_seconds: int = bounded(86_400, minimum=0)
    browser_max_age_seconds: int = bounded(86_400, minimum=0)
    stale_while_revalidate_seconds: int = bounded(604_800, minimum=0)


@dataclass(frozen=True, kw_only=True)
class HtmlCacheConfig(CacheTierConfig):
    """Everything else (HTML): 60 s at the edge, browsers revalidate every time."""

    shared_max_age_seconds: Optional[int] = bounded(60, minimum=0)


@dataclass(frozen=True, kw_only=True)
class EdgeConfig:
    """``cofounder:edge`` -- CloudFront over the private static-assets bucket."""

    #: Build the edge at all.
    enabled: bool = True
    #: Edge locations paid for: PriceClass_100 (North America, Europe), _200 (+ most of Asia) or _All.
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_All"
    #: Custom domain names of the distribution; empty uses the *.cloudfront.net name only.
    aliases: list[str] = field(default_factory=list)
    #: ACM certificate for ``aliases``; CloudFront only uses certificates from us-east-1.
    acm_certificate_arn: Optional[str] = None
    #: Host name of the app serving ``/api/*`` (HTTPS, never cached); unset: no API behavior.
    api_origin_domain: Optional[str] = None
    #: Days an overwritten or deleted asset version is kept (the rollback window).
    noncurrent_version_expiration_days: int = bounded(30, minimum=1, maximum=3650)
    log_retention_days: int = bounded(90, minimum=1, maximum=3653)
    #: Pulumi ``protect`` on the buckets.
    protect: bool = True
    #: Let ``pulumi destroy`` delete non-empty buckets.
    force_destroy: bool = False
    static_assets: StaticAssetsCacheConfig = field(default_factory=StaticAssetsCacheConfig)
    public_assets: PublicAssetsCacheConfig = field(default_factory=PublicAssetsCacheConfig)
    html: HtmlCacheConfig = field(default_factory=HtmlCacheConfig)

    def checks(self):
        arn = self.acm_certificate_arn
        if arn is not None and not re.fullmatch(_ACM_US_EAST_1, arn):
            yield ("acmCertificateArn", arn, "an ACM certificate ARN in us-east-1 (CloudFront only uses "
                   "certificates from us-east-1), such as arn:aws:acm:us-east-1:123456789012:certificate/<uuid>")
        for i, alias in enumerate(self.aliases):
            if not re.fullmatch(r"(\*\.)?" + _HOSTNAME, alias):
                yield f"aliases[{i}]", alias, "a domain name such as www.example.com or *.example.com"
        if self.api_origin_domain is not None and not re.fullmatch(_HOSTNAME, self.api_origin_domain):
            yield ("apiOriginDomain", self.api_origin_domain,
                   "a host name without scheme, port or path, such as app.example.com")
        if len(set(self.aliases)) != len(self.aliases):
            yield "aliases", self.aliases, "distinct domain names"
        if self.aliases and arn is None:
            yield ("acmCertificateArn", arn, "an ACM certificate ARN in us-east-1 covering the aliases "
                   "(a custom domain needs its own certificate)")
        if arn is not None and not self.aliases:
            yield "aliases", self.aliases, "the domain names the certificate is for (acmCertificateArn is set)"


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. Built by ``load()``."""

    stack: str
    stack_file: str
    environment: Literal["dev", "staging", "prod"]
    region: str
    network: NetworkConfig
    postgres: PostgresConfig
    pgbouncer: PgBouncerConfig
    redis: RedisConfig
    queues: QueuesConfig
    edge: EdgeConfig

    @property
    def name_prefix(self) -> str:
        """Prefix of physical names, unique per stack: ``cofounder-<stack>``."""
        return f"{PROJECT}-{self.stack}"

    @property
    def cluster_name(self) -> str:
        return f"{self.name_prefix}-eks"


#: The structured ``cofounder:<key>`` blocks and the dataclass each is read into.
SECTIONS: dict[str, type] = {
    "network": NetworkConfig,
    "postgres": PostgresConfig,
    "pgbouncer": PgBouncerConfig,
    "redis": RedisConfig,
    "queues": QueuesConfig,
    "edge": EdgeConfig,
}
#: Scalar ``cofounder:<key>`` values.
SCALARS: dict[str, Any] = {
    "environment": Literal["dev", "staging", "prod"],
}

_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


# --------------------------------------------------------------------------------------------
# The loader.
# --------------------------------------------------------------------------------------------


class _Reader:
    def __init__(self, stack_file: str):
        self.stack_file = stack_file

    def fail(self, key: str, value: Any, allowed: str) -> typing.NoReturn:
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ConfigError(f"{self.stack_file}: {key} = {shown} is not allowed: expected {allowed}")

    def missing(self, key: str, allowed: str) -> typing.NoReturn:
        raise ConfigError(f"{self.stack_file}: {key} is missing: expected {allowed}")

    def unknown(self, key: str, name: str, known: list[str]) -> typing.NoReturn:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{self.stack_file}: {key} is not a known setting: {hint}"
                          f"allowed keys are {', '.join(sorted(known))}")

    def value(self, key: str, raw: Any, hint: Any, meta: dict | None = None) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            if raw is None:
                return None
            return self.value(key, raw, inner[0], meta)
        if origin is Literal:
            if raw not in args:
                self.fail(key, raw, "one of " + ", ".join(map(str, args)))
            return raw
        if dataclasses.is_dataclass(hint):
            return self.section(key, raw, hint)
        if origin is list:
            if not isinstance(raw, list):
                self.fail(key, raw, "a list")
            return [self.value(f"{key}[{i}]", item, args[0]) for i, item in enumerate(raw)]
        if origin is dict:
            if not isinstance(raw, dict):
                self.fail(key, raw, "a mapping")
            return {str(k): self.value(f"{key}.{k}", v, args[1]) for k, v in raw.items()}
        if hint is bool:
            if not isinstance(raw, bool):
                self.fail(key, raw, "true or false")
            return raw
        if hint is int:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or int(raw) != raw:
                self.fail(key, raw, "a whole number" + self._range(meta))
            raw = int(raw)
        elif hint is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.fail(key, raw, "a number" + self._range(meta))
            raw = float(raw)
        elif hint is str:
            if not isinstance(raw, str):
                self.fail(key, raw, "a string")
        if meta:
            lo, hi, pattern = meta.get("minimum"), meta.get("maximum"), meta.get("pattern")
            if (lo is not None and raw < lo) or (hi is not None and raw > hi):
                self.fail(key, raw, "a value" + self._range(meta))
            if pattern is not None and not re.fullmatch(pattern, raw):
                self.fail(key, raw, f"a value matching {pattern}")
        return raw

    @staticmethod
    def _range(meta: dict | None) -> str:
        if not meta:
            return ""
        lo, hi = (_num(meta.get("minimum")), _num(meta.get("maximum")))
        if lo is not None and hi is not None:
            return f" between {lo} and {hi}"
        if lo is not None:
            return f" of at least {lo}"
        if hi is not None:
            return f" of at most {hi}"
        return ""

    def section(self, key: str, raw: Any, cls: type) -> Any:
        if not isinstance(raw, dict):
            self.fail(key, raw, f"a mapping of settings ({cls.__name__})")
        hints = typing.get_type_hints(cls)
        fields = {_camel(f.name): f for f in dataclasses.fields(cls) if f.init}
        for name in raw:
            if name not in fields:
                self.unknown(f"{key}.{name}", name, list(fields))
        values = {}
        for camel, f in fields.items():
            sub = f"{key}.{camel}"
            if camel in raw:
                values[f.name] = self.value(sub, raw[camel], hints[f.name], dict(f.metadata))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.missing(sub, _describe(hints[f.name]))
        obj = cls(**values)
        for sub, value, allowed in getattr(obj, "checks", lambda: ())():
            self.fail(f"{key}.{sub}", value, allowed)
        return obj


def _num(value: float | None) -> str | None:
    """A bound as a reader writes it: 31536000, not 3.1536e+07; 0.5 stays 0.5."""
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else str(value)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if dataclasses.is_dataclass(hint):
        return f"a mapping of settings ({hint.__name__})"
    return getattr(hint, "__name__", str(hint)).replace("list", "a list")


def _config_keys() -> set[str]:
    """Every config key the engine handed the program (``<namespace>:<key>``)."""
    keys = set(pulumi.runtime.config.CONFIG.get())
    keys.update(pulumi.runtime.config.get_config_env())
    return keys


def load() -> StackConfig:
    """Read and validate the current stack's configuration, or raise ``ConfigError``."""
    stack = pulumi.get_stack()
    reader = _Reader(f"stacks/Pulumi.{stack}.yaml")
    cfg = pulumi.Config(PROJECT)

    known = list(SECTIONS) + list(SCALARS)
    for full in sorted(_config_keys()):
        namespace, _, name = full.partition(":")
        if namespace == PROJECT and name not in known:
            reader.unknown(full, name, known)

    region = pulumi.Config("aws").get("region")
    if region is None:
        reader.missing("aws:region", "an AWS region such as us-east-1")
    if not _REGION.match(region):
        reader.fail("aws:region", region, "an AWS region name such as us-east-1")

    values: dict[str, Any] = {}
    for name, hint in SCALARS.items():
        raw = cfg.get(name)
        if raw is None:
            reader.missing(f"{PROJECT}:{name}", _describe(hint))
        values[name] = reader.value(f"{PROJECT}:{name}", raw, hint)
    for name, cls in SECTIONS.items():
        try:
            raw = cfg.get_object(name)
        except Exception:  # the engine hands objects as JSON; a bad one is a user error
            reader.fail(f"{PROJECT}:{name}", cfg.get(name), "a YAML mapping")
        if raw is None:
            raw = {}
        values[name] = reader.section(f"{PROJECT}:{name}", raw, cls)

    for i, zone in enumerate(values["network"].availability_zones):
        if not zone.startswith(region) or len(zone) != len(region) + 1:
            reader.fail(f"{PROJECT}:network.availabilityZones[{i}]", zone,
                        f"a zone of aws:region {region}, such as {region}a")

    return StackConfig(stack=stack, stack_file=reader.stack_file, region=region, **values)


def connection_budget(cfg: StackConfig, clients: list[tuple[str, int, int]]) -> connections.Budget:
    """The stack's Postgres connection budget, or ``ConfigError`` naming every limit it breaks.

    ``clients``: (app name, HPA maxReplicas, per-pod pool size) for every app that connects
    through PgBouncer. Call it before declaring resources.
    """
    budget = connections.budget(
        instance_class=cfg.postgres.instance_class,
        reserve=cfg.postgres.reserved_connections,
        pgbouncer_replicas=cfg.pgbouncer.replicas,
        pool_size=cfg.pgbouncer.default_pool_size,
        reserve_pool_size=cfg.pgbouncer.reserve_pool_size,
        max_client_conn=cfg.pgbouncer.max_client_conn,
        clients=clients,
    )
    problems = connections.check(budget)
    if problems:
        raise ConfigError(f"{cfg.stack_file}: the connection budget does not fit: {'; '.join(problems)}: "
                          f"change cofounder:pgbouncer (replicas, defaultPoolSize, reservePoolSize, "
                          f"maxClientConn) or cofounder:postgres (instanceClass, reservedConnections)")
    return budget
