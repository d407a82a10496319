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
class AppScrapeConfig:
    """One application's ``/metrics`` endpoint (the scrape contract in the README)."""

    #: The app's ``app.kubernetes.io/name`` label (frontend, backend, worker).
    name: str = bounded(pattern=r"[a-z][a-z0-9-]{0,40}")
    #: ServiceMonitor (scrape through the app's Service) or PodMonitor (scrape pods directly).
    kind: Literal["ServiceMonitor", "PodMonitor"] = "ServiceMonitor"
    #: Named container/Service port that serves the metrics.
    port: str = bounded("http", pattern=r"[a-z][a-z0-9-]{0,14}")
    path: str = bounded("/metrics", pattern=r"/[A-Za-z0-9/_.-]*")


@dataclass(frozen=True, kw_only=True)
class AlertThresholdsConfig:
    """``cofounder:observability.alerts`` -- when the seed's targets count as missed."""

    #: p99 latency target per service (seed: under 200 ms).
    latency_p99_ms: int = bounded(200, minimum=10, maximum=10000)
    latency_for_minutes: int = bounded(5, minimum=1, maximum=60)
    #: How long an HPA may sit at maxReplicas before someone must raise the ceiling.
    hpa_at_max_minutes: int = bounded(10, minimum=1, maximum=120)
    #: App pods pending longer than this mean scale-up missed the seed's 60 s target.
    pod_pending_seconds: int = bounded(60, minimum=15, maximum=3600)
    #: Alert when more PgBouncer clients than this wait for a server connection...
    pgbouncer_waiting_clients: int = bounded(0, minimum=0, maximum=10000)
    #: ...for this long.
    pgbouncer_waiting_minutes: int = bounded(2, minimum=1, maximum=60)
    sqs_oldest_message_age_seconds: int = bounded(300, minimum=60, maximum=1209600)
    rds_cpu_percent: int = bounded(80, minimum=10, maximum=100)
    rds_freeable_memory_mib: int = bounded(256, minimum=16, maximum=1048576)
    rds_free_storage_gib: int = bounded(10, minimum=1, maximum=65536)
    #: Share of the instance's max_connections in use that raises the alarm.
    rds_connections_percent: int = bounded(80, minimum=10, maximum=100)
    redis_engine_cpu_percent: int = bounded(80, minimum=10, maximum=100)
    redis_memory_percent: int = bounded(80, minimum=10, maximum=100)
    #: Evicted keys per 5 minutes above which the cache is too small.
    redis_evictions: int = bounded(0, minimum=0, maximum=1000000)


def _default_apps() -> list[AppScrapeConfig]:
    return [AppScrapeConfig(name="frontend"), AppScrapeConfig(name="backend"),
            AppScrapeConfig(name="worker", kind="PodMonitor", port="metrics")]


@dataclass(frozen=True, kw_only=True)
class ObservabilityConfig:
    """``cofounder:observability`` -- Prometheus, Grafana, alerts and CloudWatch alarms."""

    enabled: bool = True
    #: kube-prometheus-stack chart version (pins every image it ships).
    chart_version: str = bounded("79.7.1", pattern=r"\d+\.\d+\.\d+")
    retention_days: int = bounded(15, minimum=1, maximum=365)
    #: Prometheus deletes old blocks beyond this size; keep it below ``storageGib``.
    retention_size_gib: int = bounded(45, minimum=1, maximum=16384)
    #: Size of Prometheus' persistent volume.
    storage_gib: int = bounded(50, minimum=10, maximum=16384)
    storage_class: str = bounded("gp3", pattern=r"[a-z0-9][a-z0-9.-]{0,62}")
    scrape_interval_seconds: int = bounded(30, minimum=5, maximum=300)
    grafana_enabled: bool = True
    #: Node labels the monitoring pods must run on (e.g. the system node group); empty = anywhere.
    node_selector: dict[str, str] = field(default_factory=dict)
    #: Email address subscribed to the alarm SNS topic (confirmation required); none = no subscription.
    alarm_email: Optional[str] = bounded(None, pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+")
    alerts: AlertThresholdsConfig = field(default_factory=AlertThresholdsConfig)
    #: What Prometheus scrapes from the app namespace.
    apps: list[AppScrapeConfig] = field(default_factory=_default_apps)

    def checks(self):
        if self.retention_size_gib > self.storage_gib * 0.9:
            yield ("retentionSizeGib", self.retention_size_gib,
                   f"at most 90% of storageGib ({int(self.storage_gib * 0.9)}) so Prometheus prunes before the disk fills")
        names = [a.name for a in self.apps]
        if len(set(names)) != len(names):
            yield "apps", names, "distinct app names"


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. Built by ``load()``."""

    stack: str
    stack_file: str
    environment: Literal["dev", "staging", "prod"]
    region: str
    network: NetworkConfig
    observability: ObservabilityConfig

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
    "observability": ObservabilityConfig,
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
        lo, hi = meta.get("minimum"), meta.get("maximum")
        if lo is not None and hi is not None:
            return f" between {lo:g} and {hi:g}"
        if lo is not None:
            return f" of at least {lo:g}"
        if hi is not None:
            return f" of at most {hi:g}"
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
