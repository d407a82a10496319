"""What a stack costs per month at minimum and at maximum scale, line by line, from what it declares.

Pure arithmetic over ``Declared`` resources (``capacity/fleet.py``), a price table
(``capacity/prices/<region>.yaml``: on-demand list prices, each with its source and the date it
was read) and the stack's usage assumptions (``CostSettings``, ``cofounder:cost``). The preview's
``cost`` report and the pack's ``capacity-cost-within-budget`` rule call ``estimate`` on the same
declared resources.

- **Minimum scale**: every autoscaler at its minimum, fixed Deployments at their replicas, the
  headroom placeholders, packed on the node groups (at least their minSize): the cluster at rest.
  Usage-driven items at the monthly volumes of ``CostSettings``.
- **Maximum scale**: every autoscaler at its maximum, packed the same way and capped by each node
  group's maxSize (the report says when the cap bites); RDS storage at its autoscaling maximum;
  usage-driven volumes x ``maxScaleUsageMultiplier``.
- The nodes the headroom placeholders add (the packing with and without them) are their own
  lines. SPOT groups are priced at on-demand, an upper bound (spot prices move; the table holds
  list prices only).
- A price the table lacks is never a silent zero: the line keeps its quantity, has no amount, and
  ``missing`` names the key to add. A resource type the model does not know is named too
  (``unclassified``), so a new billable resource cannot slip past the report.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml

from capacity import classes
from capacity.fleet import (
    DEPLOYMENT,
    HELM_RELEASE,
    HPA,
    LAUNCH_TEMPLATE,
    NODE_GROUP,
    PRIORITY_CLASS,
    SCALED_OBJECT,
    Declared,
    NodeGroup,
    Workload,
    expand,
    node_groups,
    pack,
    value_at,
    workloads,
)
from capacity.headroom import memory_mib
from capacity.numbers import plain
from capacity.schema import Between, CamelCase

PRICES_DIR = Path(__file__).resolve().parent / "prices"


@dataclass(frozen=True, kw_only=True)
class CostSettings(CamelCase):
    """``cofounder:cost``: the usage the stack's usage-driven prices apply to.

    The volumes are assumptions at today's traffic, printed beside the figures they drive; replace
    them with measured values (AWS Cost Explorer, CloudWatch) when there are some. The stack's
    budget is not set here: it is derived from this estimate (``cofounder:budget``,
    components/cost_budget.py)."""

    #: Viewer requests per month through CloudFront and the WAF, in millions.
    requests_millions_per_month: Annotated[float, Between(0, None)] = 30.0
    #: GB per month CloudFront delivers to viewers.
    cdn_gb_per_month: Annotated[float, Between(0, None)] = 500.0
    #: GB per month the ALB processes (one LCU-hour per GB: the dimension that dominates here).
    origin_gb_per_month: Annotated[float, Between(0, None)] = 100.0
    #: GB per month through the NAT gateways (LLM API calls, image pulls), also billed as internet egress.
    nat_gb_per_month: Annotated[float, Between(0, None)] = 200.0
    #: Agent-queue messages per month, in millions (each: send, receive and delete, three requests).
    queue_messages_millions_per_month: Annotated[float, Between(0, None)] = 1.0
    #: GB ingested per month by a CloudWatch log group, by its resource name (others: the default).
    log_gb_per_month: dict[str, Annotated[float, Between(0, None)]] = field(default_factory=dict)
    #: GB ingested per month by a log group not listed in logGbPerMonth.
    default_log_gb_per_month: Annotated[float, Between(0, None)] = 5.0
    #: GB stored in S3 across the stack's buckets (assets, CloudFront and ALB access logs).
    s3_storage_gb: Annotated[float, Between(0, None)] = 50.0
    #: Objects written to S3 per month, in thousands (deploys, access-log files).
    s3_puts_thousands_per_month: Annotated[float, Between(0, None)] = 100.0
    #: GB per month the apps, PgBouncer, RDS and Valkey exchange across availability zones (pods spread
    #: over the zones reach a database or cache node in another), billed on both sides.
    cross_az_gb_per_month: Annotated[float, Between(0, None)] = 300.0
    #: CloudWatch custom metrics the apps publish (PutMetricData, embedded metric format). The program
    #: publishes none itself: its alarms watch AWS-vended metrics, which are free.
    cloudwatch_custom_metrics: Annotated[int, Between(0, None)] = 0
    #: GB the database changes per day; RDS keeps them for each day of backup retention, beyond the
    #: free allowance (backup storage up to the provisioned storage).
    rds_backup_changed_gb_per_day: Annotated[float, Between(0, None)] = 2.0
    #: Share of the cache's memory holding data, the size of each daily snapshot (all of it at maximum scale).
    cache_fill_fraction: Annotated[float, Between(0, 1)] = 0.5
    #: CloudFront's always-free allowance (1 TB out and 10 M requests a month, per account) goes to this
    #: stack; false when another distribution in the account uses it up.
    cloudfront_free_tier: bool = True
    #: Usage-driven volumes at maximum scale, as a multiple of the volumes above (the seed's 5x peak
    #: sustained for a whole month: an upper bound).
    max_scale_usage_multiplier: Annotated[float, Between(1, 100)] = 5.0



# --- the price table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Price:
    key: str
    usd: float
    unit: str
    source: str
    read_from: str
    read: str


@dataclass(frozen=True)
class PriceTable:
    region: str
    currency: str
    hours_per_month: float
    prices: dict[str, Price]
    #: Why the table is empty (no file for the region), or None.
    problem: str | None = None

    @property
    def as_of(self) -> str | None:
        """The oldest read date: every price is at least this fresh."""
        return min((p.read for p in self.prices.values()), default=None)

    @property
    def path(self) -> str:
        return f"capacity/prices/{self.region}.yaml"


@lru_cache(maxsize=8)
def load_prices(region: str, directory: Path = PRICES_DIR) -> PriceTable:
    """The price table of ``region`` (``capacity/prices/<region>.yaml`` and the region's column of
    ``capacity/instance-classes.yaml``); an empty table (every price missing) when there is no file."""
    path = directory / f"{region}.yaml"
    if not path.is_file():
        return PriceTable(region, "USD", 730, {},
                          f"there is no price table for {region} (capacity/prices/{region}.yaml)")
    doc = yaml.safe_load(path.read_text()) or {}
    prices = {}
    for rows in classes.load().values():
        for c in rows.values():
            if region in c.usd_per_hour:
                where = c.prices[region]
                prices[c.price_key] = Price(c.price_key, c.usd_per_hour[region], "hour", where.source,
                                            where.read_from, where.read)
    for key, entry in (doc.get("prices") or {}).items():
        read = entry["read"]
        prices[key] = Price(key, float(entry["usd"]), str(entry["unit"]), str(entry["source"]),
                            str(entry.get("readFrom", entry["source"])),
                            read.isoformat() if isinstance(read, datetime.date) else str(read))
    return PriceTable(str(doc.get("region", region)), str(doc.get("currency", "USD")),
                      float(doc.get("hoursPerMonth", 730)), prices)


# --- lines ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    resource: str
    item: str
    unit: str
    price_key: str
    quantity_min: float
    quantity_max: float
    unit_price: float | None

    @property
    def monthly_min(self) -> float | None:
        return None if self.unit_price is None else self.quantity_min * self.unit_price

    @property
    def monthly_max(self) -> float | None:
        return None if self.unit_price is None else self.quantity_max * self.unit_price

    def as_dict(self) -> dict:
        return {"resource": self.resource, "item": self.item, "quantity": _round(self.quantity_min, 3),
                "quantityMaxScale": _round(self.quantity_max, 3), "unit": self.unit, "unitPrice": self.unit_price,
                "priceKey": self.price_key,
                "monthlyMinScale": None if self.monthly_min is None else _round(self.monthly_min, 2),
                "monthlyMaxScale": None if self.monthly_max is None else _round(self.monthly_max, 2)}


def _round(value: float, digits: int) -> float | int:
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() else rounded


@dataclass
class Estimate:
    region: str
    currency: str
    prices_as_of: str | None
    lines: list[Line]
    #: ``price key -> what it is``, for every price the table lacks.
    missing: dict[str, str]
    #: Declared resource types the model neither prices nor knows to be free.
    unclassified: list[str]
    #: Node groups whose maxSize stops the maximum scale (pods left without a node).
    capped_groups: list[str]
    usage: CostSettings
    budget_usd: float | None
    problems: list[str] = field(default_factory=list)

    @property
    def monthly_min(self) -> float:
        """The priced lines' total at minimum scale (all of the bill only when ``complete``)."""
        return sum(line.monthly_min or 0.0 for line in self.lines)

    @property
    def monthly_max(self) -> float:
        """The priced lines' total at maximum scale (all of the bill only when ``complete``)."""
        return sum(line.monthly_max or 0.0 for line in self.lines)

    @property
    def unpriced_lines(self) -> list[Line]:
        return [line for line in self.lines if line.unit_price is None]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unclassified and not self.problems

    @property
    def incomplete(self) -> str | None:
        """``incomplete: N lines unpriced`` (and the types and problems no line stands for), or None.
        Every report leads with it, before any total: a hole must never read as a cheaper stack."""
        if self.complete:
            return None
        n, types = len(self.unpriced_lines), len(self.unclassified)
        parts = [f"{n} line{'s' if n != 1 else ''} unpriced"]
        if types:
            parts.append(f"{types} resource type{'s' if types != 1 else ''} unpriced")
        if self.problems:
            parts.append("; ".join(self.problems))
        return "incomplete: " + ", ".join(parts)

    @property
    def within_budget(self) -> bool | None:
        return None if self.budget_usd is None else self.monthly_max <= self.budget_usd

    def as_dict(self) -> dict:
        """``build/preview/<stack>.cost.json`` (docs/cost-and-burst.md)."""
        return {"currency": self.currency, "pricesAsOf": self.prices_as_of, "region": self.region,
                "monthly": {"minScale": round(self.monthly_min, 2), "maxScale": round(self.monthly_max, 2)},
                "budgetUsd": self.budget_usd, "complete": self.complete, "incomplete": self.incomplete,
                "unpricedLines": len(self.unpriced_lines),
                "missingPrices": [{"key": k, "what": v} for k, v in sorted(self.missing.items())],
                "unclassifiedTypes": self.unclassified, "cappedNodeGroups": self.capped_groups,
                "usage": self.usage.as_camel(), "lines": [line.as_dict() for line in self.lines]}


# Resource types that carry no charge of their own: configuration, identity, networking plumbing,
# and everything inside the cluster (its cost is the nodes'; a CloudFront Function's invocations are
# priced on the distribution that runs it). A CloudFront VPC origin has "no
# additional charge" (CloudFront developer guide, "Restrict access with VPC origins"); a gateway
# VPC endpoint for S3 has no hourly or data processing charge (AWS PrivateLink pricing page).
FREE_TYPES = frozenset({
    "aws:autoscaling/tag:Tag", "aws:cloudfront/cachePolicy:CachePolicy",
    "aws:cloudfront/originAccessControl:OriginAccessControl",
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy", "aws:cloudfront/vpcOrigin:VpcOrigin",
    "aws:cloudfront/function:Function", "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
    "aws:ec2/flowLog:FlowLog", "aws:ec2/internetGateway:InternetGateway", "aws:ec2/launchTemplate:LaunchTemplate",
    "aws:ec2/routeTable:RouteTable", "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/securityGroup:SecurityGroup", "aws:ec2/vpc:Vpc",
    "aws:eks/accessEntry:AccessEntry", "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "aws:eks/addon:Addon", "aws:elasticache/parameterGroup:ParameterGroup",
    "aws:elasticache/subnetGroup:SubnetGroup", "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:kms/alias:Alias", "aws:lb/listener:Listener", "aws:lb/listenerRule:ListenerRule",
    "aws:lb/targetGroup:TargetGroup", "aws:rds/parameterGroup:ParameterGroup", "aws:rds/subnetGroup:SubnetGroup",
    "aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning", "aws:sns/topicPolicy:TopicPolicy",
    "aws:sqs/queuePolicy:QueuePolicy", "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
    # ElastiCache RBAC users and groups have no charge; a secret's versions and its rotation schedule
    # are part of the secret's monthly price (Secrets Manager pricing page).
    "aws:elasticache/user:User", "aws:elasticache/userGroup:UserGroup",
    "aws:secretsmanager/secretVersion:SecretVersion", "aws:secretsmanager/secretRotation:SecretRotation",
    # SNS: the alarm topic's publishes and email deliveries stay in the always-free million.
    "aws:sns/topic:Topic", "aws:sns/topicSubscription:TopicSubscription",
    # AWS Budgets: a budget without actions has no charge (https://aws.amazon.com/aws-cost-management/aws-budgets/pricing/;
    # an older user-guide note, docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/budgets-managing-costs.html,
    # read 2026-12-07, gave "first two active budgets are free ... $0.02 per day" after: three stacks in one
    # account would add $0.61 a month, not counted). Cost Anomaly Detection's monitors and subscriptions
    # have no charge (https://aws.amazon.com/aws-cost-management/aws-cost-anomaly-detection/pricing/).
    "aws:budgets/budget:Budget", "aws:costexplorer/anomalyMonitor:AnomalyMonitor",
    "aws:costexplorer/anomalySubscription:AnomalySubscription",
    # ECR: policies are configuration. A repository is billed per GB of images stored, which
    # depends on what is pushed, not on the declaration; not estimated here (NOT free: the
    # lifecycle policy's keepImages bounds it). Basic scan on push has no charge; enhanced
    # scanning (not declared by any stack) is billed per image by Amazon Inspector.
    "aws:ecr/lifecyclePolicy:LifecyclePolicy", "aws:ecr/repositoryPolicy:RepositoryPolicy",
    "aws:ecr/repository:Repository",
})
#: Kubernetes objects (their cost is the nodes'), generated values, providers, and this project's
#: own component types (containers of the resources above).
FREE_PREFIXES = ("kubernetes:", "random:", "pulumi:", "cofounder:")
#: The pod annotation on which the collector's release records the apps' sampling ratio (what the
#: cost model prices X-Ray by; the apps' otel-<app> ConfigMaps carry the same value to the SDKs).
SAMPLING_ANNOTATION = "cofounder.dev/trace-sampling-ratio"
#: Days of Performance Insights history that are free; the paid tier keeps months of 31 days.
PI_FREE_DAYS = 7
PI_MONTH_DAYS = 31
#: CloudFront's always-free allowance per account and month (stored AWS pricing page, "Included in
#: Always Free Tier": 1 TB of data transfer out, 10,000,000 HTTP or HTTPS requests, 2,000,000
#: CloudFront Function invocations); 1 TB counted as 1,000 GB, the smaller reading.
CLOUDFRONT_FREE_GB = 1000.0
CLOUDFRONT_FREE_REQUESTS_MILLIONS = 10.0
CLOUDFRONT_FREE_FUNCTION_MILLIONS = 2.0


class _Lines:
    """Collects lines, looking each price up; a missing price keeps the line, without an amount."""

    def __init__(self, table: PriceTable):
        self.table = table
        self.lines: list[Line] = []
        self.missing: dict[str, str] = {}

    def add(self, resource: str, item: str, key: str, what: str, qmin: float, qmax: float, unit: str) -> None:
        price = self.table.prices.get(key)
        if price is None:
            self.missing[key] = what
        self.lines.append(Line(resource, item, price.unit if price else unit, key, qmin, qmax,
                               price.usd if price else None))

    def hourly(self, resource: str, item: str, key: str, what: str, nmin: float, nmax: float) -> None:
        h = self.table.hours_per_month
        self.add(resource, item, key, what, nmin * h, nmax * h, "hour")


def _name(key: Any) -> str:
    return str(key).rsplit("::", 1)[-1]


def estimate(declared: Iterable[Declared], region: str, usage: CostSettings, node_pod_share: float = 0.9,
             table: PriceTable | None = None, apps: list[Workload] | None = None,
             budget_usd: float | None = None) -> Estimate:
    """The monthly cost of the declared resources at minimum and maximum scale (module docstring).

    ``apps`` replaces the workloads read from the Deployments (to price a what-if, such as more
    headroom); ``budget_usd`` is the stack's declared budget, compared with the maximum."""
    items = list(declared)
    table = table or load_prices(region)
    out = _Lines(table)
    mult = usage.max_scale_usage_multiplier
    groups = node_groups(items)
    pods = apps if apps is not None else workloads(items)
    capped = _node_lines(out, groups, pods, node_pod_share)
    by_type: dict[str, list[Declared]] = {}
    for r in items:
        by_type.setdefault(r.type, []).append(r)
    unclassified = sorted(t for t in by_type if t not in PRICERS and t != "aws:eks/nodeGroup:NodeGroup"
                          and t not in FREE_TYPES and not t.startswith(FREE_PREFIXES))
    for type_, pricer in PRICERS.items():
        if by_type.get(type_):
            pricer(out, by_type[type_], usage, mult)
    problems = [table.problem] if table.problem else []
    return Estimate(region=table.region, currency=table.currency, prices_as_of=table.as_of, lines=out.lines,
                    missing=out.missing, unclassified=unclassified, capped_groups=[g.name for g in capped],
                    usage=usage, budget_usd=budget_usd, problems=problems)


class IncompleteEstimate(ValueError):
    """The declared resources have lines without a price: no total stands for the whole bill."""


def max_scale_monthly_usd(declared: Iterable[Declared], region: str, usage: CostSettings,
                          node_pod_share: float = 0.9) -> float:
    """What the stack costs per month at maximum scale, from its declared resources: the figure a
    budget is derived from. Raises ``IncompleteEstimate`` (naming what lacks a price) rather than
    return the priced lines' total, which would understate the bill."""
    e = estimate(declared, region, usage, node_pod_share)
    if not e.complete:
        raise IncompleteEstimate(f"{e.incomplete}: " + ", ".join(sorted(e.missing) + e.unclassified + e.problems))
    return round(e.monthly_max, 2)


def _node_lines(out: _Lines, groups: list[NodeGroup], pods: list[Workload], share: float) -> list[NodeGroup]:
    def place(max_scale: bool, with_headroom: bool):
        chosen = []
        for w in pods:
            if w.placeholder and not with_headroom:
                continue
            replicas = int(w.autoscaled.hpa_spec["maxReplicas"]) if (max_scale and w.autoscaled) else None
            chosen += expand(w, replicas)
        return pack(groups, chosen, share)

    at_min, at_max = place(False, True), place(True, True)
    base_min, base_max = place(False, False), place(True, False)
    for g in groups:
        spot = g.capacity_type == "SPOT"
        kind = f"{g.instance_type} nodes" + (" (SPOT, priced at on-demand: an upper bound)" if spot else "")
        key, what = f"ec2.instance-hour.{g.instance_type}", f"EC2 On-Demand Linux {g.instance_type}, per hour"
        nmin, nmax = at_min.count(g), at_max.count(g)
        bmin, bmax = min(base_min.count(g), nmin), min(base_max.count(g), nmax)
        out.hourly(g.name, kind, key, what, bmin, bmax)
        if (nmin - bmin) or (nmax - bmax):
            out.hourly(g.name, f"headroom placeholders: the {g.instance_type} nodes they add", key, what,
                       nmin - bmin, nmax - bmax)
        if g.disk_gib:
            out.add(g.name, f"gp3 root volumes ({g.disk_gib} GiB per node)", "ebs.gp3.gb-month",
                    "EBS gp3 storage, per GB-month", nmin * g.disk_gib, nmax * g.disk_gib, "GB-month")
    return at_max.capped(groups)


def _eks(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        out.hourly(_name(r.key), "EKS control plane", "eks.cluster-hour", "EKS cluster, per hour", 1, 1)


def _nat(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        out.hourly(_name(r.key), "NAT gateway", "vpc.nat-gateway-hour", "NAT gateway, per hour", 1, 1)
    gb = usage.nat_gb_per_month
    where = f"{len(rs)} NAT gateway" + ("s" if len(rs) != 1 else "")
    out.add(where, "NAT data processed (natGbPerMonth)", "vpc.nat-gateway-gb", "NAT gateway data processed, per GB",
            gb, gb * mult, "GB")
    out.add(where, "internet egress through NAT (natGbPerMonth)", "data-transfer.internet-out-gb",
            "EC2 data transfer out to the internet, per GB", gb, gb * mult, "GB")


def _eip(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        out.hourly(_name(r.key), "public IPv4 address", "vpc.public-ipv4-hour", "public IPv4 address, per hour", 1, 1)


def _rds(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        p, name = r.props, _name(r.key)
        engine = str(p.get("engine") or "postgres").replace("aurora-", "")
        klass = str(p.get("instanceClass"))
        copies = 2 if p.get("multiAz") else 1
        az = "Multi-AZ: primary and standby" if copies == 2 else "Single-AZ"
        out.hourly(name, f"RDS {engine} {klass} ({az})", f"rds.{engine}.instance-hour.{klass}",
                   f"RDS for {engine} {klass} On-Demand Single-AZ, per hour", copies, copies)
        storage = str(p.get("storageType") or "gp3")
        low = float(p.get("allocatedStorage") or 0)
        high = float(p.get("maxAllocatedStorage") or low)
        out.add(name, f"{storage} storage ({low:g} GiB, autoscaling to {high:g} GiB at maximum scale"
                f"{'; x2 Multi-AZ' if copies == 2 else ''})", f"rds.{storage}.gb-month",
                f"RDS {storage} storage, per GB-month", low * copies, high * copies, "GB-month")
        _rds_backups(out, name, p, usage, mult)
        days = int(p.get("performanceInsightsRetentionPeriod") or 0)
        if p.get("performanceInsightsEnabled") and days > PI_FREE_DAYS:
            # Billed per vCPU of every instance that keeps the history (a Multi-AZ standby too), per
            # month of retention: the first month at one rate, each further month at a lower one.
            found = classes.find("rds", klass)
            if found is None:
                out.missing[f"vCPUs of {klass}"] = f"{klass} is not in capacity/instance-classes.yaml"
            vcpus = (found.vcpus if found else 0) * copies
            months = math.ceil(days / PI_MONTH_DAYS)
            out.add(name, f"Performance Insights, {days} days of history (beyond the free {PI_FREE_DAYS}): "
                    f"first month, {vcpus} vCPUs", "rds.performance-insights.first-month-vcpu",
                    "RDS Performance Insights paid retention, first month, per vCPU-month", vcpus, vcpus,
                    "vCPU-month")
            if months > 1:
                more = vcpus * (months - 1)
                out.add(name, f"Performance Insights: {months - 1} further months of history",
                        "rds.performance-insights.additional-month-vcpu",
                        "RDS Performance Insights paid retention, each further month, per vCPU-month", more, more,
                        "vCPU-month")


def _rds_backups(out: _Lines, name: str, p: dict, usage: CostSettings, mult: float) -> None:
    """Automated backups beyond the free allowance (backup storage up to the provisioned storage).

    Backups are incremental: one full copy plus each day's changes, kept backupRetentionPeriod
    days. The database is taken to fill its storage, so the allowance covers the full copy and every
    day's changes are billed (an upper bound); one copy however many standbys."""
    days = int(p.get("backupRetentionPeriod") or 0)
    if not days:
        return
    gb = usage.rds_backup_changed_gb_per_day * days
    out.add(name, f"backup storage beyond the free allowance ({days} days x rdsBackupChangedGbPerDay)",
            "rds.backup-storage.gb-month", "RDS backup storage beyond the provisioned storage, per GB-month",
            gb, gb * mult, "GB-month")


def _elasticache(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        p = r.props
        engine, node_type = str(p.get("engine") or "redis"), str(p.get("nodeType"))
        shards = int(p.get("numNodeGroups") or 1)
        nodes = shards * (1 + int(p.get("replicasPerNodeGroup") or 0))
        out.hourly(_name(r.key), f"ElastiCache {engine} {node_type} x {nodes} ({shards} shards)",
                   f"elasticache.{engine}.node-hour.{node_type}",
                   f"ElastiCache ({engine}) {node_type} On-Demand node, per hour", nodes, nodes)
        days = int(p.get("snapshotRetentionLimit") or 0)
        if days:
            # One full snapshot a day of every shard's data (a primary's), each kept `days` days. The
            # stored sources disagree on a free snapshot per cluster; none is deducted (an upper bound).
            found = classes.find("elasticache", node_type)
            if found is None:
                out.missing[f"memory of {node_type}"] = f"{node_type} is not in capacity/instance-classes.yaml"
            data = (found.memory_gib if found else 0) * shards
            out.add(_name(r.key), f"snapshots: {days} days of the {shards} shards' data (cacheFillFraction at rest, "
                    "full at maximum scale)", "elasticache.backup-storage.gb-month",
                    "ElastiCache backup storage, per GB-month", data * usage.cache_fill_fraction * days, data * days,
                    "GB-month")


def _alb(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    albs = [r for r in rs if (r.props.get("loadBalancerType") or "application") == "application"]
    for r in albs:
        out.hourly(_name(r.key), "Application Load Balancer", "elb.alb-hour", "Application Load Balancer, per hour",
                   1, 1)
    if albs:
        gb = usage.origin_gb_per_month
        out.add(_name(albs[0].key), "LCU-hours: one per GB processed (originGbPerMonth)", "elb.alb-lcu-hour",
                "ALB load balancer capacity unit, per LCU-hour", gb, gb * mult, "LCU-hour")
    for r in rs:
        if r not in albs:
            kind = r.props.get("loadBalancerType")
            out.missing[f"elb.{kind}-hour"] = f"{kind} load balancer, per hour (not priced by capacity/cost.py yet)"


def _cloudfront(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    name = _name(rs[0].key)
    gb, req = usage.cdn_gb_per_month, usage.requests_millions_per_month
    free = usage.cloudfront_free_tier
    free_gb, free_req = (CLOUDFRONT_FREE_GB, CLOUDFRONT_FREE_REQUESTS_MILLIONS) if free else (0.0, 0.0)
    beyond = " beyond the free 1 TB" if free_gb else ""
    out.add(name, f"data transfer to viewers{beyond}, North America tier (cdnGbPerMonth)",
            "cloudfront.internet-out-gb",
            "CloudFront regional data transfer out to the internet (United States), per GB",
            max(0.0, gb - free_gb), max(0.0, gb * mult - free_gb), "GB")
    beyond = " beyond the free 10 M" if free_req else ""
    out.add(name, f"HTTPS requests{beyond} (requestsMillionsPerMonth)", "cloudfront.https-requests-10k",
            "CloudFront HTTPS requests (United States), per 10,000",
            max(0.0, req - free_req) * 100, max(0.0, req * mult - free_req) * 100, "10k requests")
    # A behaviour runs at most one viewer-request function per request (the pages and API
    # behaviours' viewer-host function, the static export's rewrite): every request, as an upper bound.
    behaviors = [rs[0].props.get("defaultCacheBehavior") or {}, *(rs[0].props.get("orderedCacheBehaviors") or [])]
    if any(b.get("functionAssociations") for b in behaviors):
        free_fn = CLOUDFRONT_FREE_FUNCTION_MILLIONS if free else 0.0
        beyond = " beyond the free 2 M" if free_fn else ""
        out.add(name, f"CloudFront Functions{beyond}, at most one per request (requestsMillionsPerMonth)",
                "cloudfront.function-invocations-1m", "CloudFront Functions invocations, per million",
                max(0.0, req - free_fn), max(0.0, req * mult - free_fn), "1M invocations")


def _waf(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        name = _name(r.key)
        rules = len(r.props.get("rules") or [])
        out.add(name, "web ACL", "waf.web-acl-month", "WAF web ACL, per month", 1, 1, "ACL-month")
        out.add(name, f"{rules} rules (a managed rule group counts as one)", "waf.rule-month", "WAF rule, per month",
                rules, rules, "rule-month")
        req = usage.requests_millions_per_month
        out.add(name, "requests inspected (requestsMillionsPerMonth)", "waf.requests-1m",
                "WAF requests inspected, per million", req, req * mult, "1M requests")


def _sqs(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    if any(r.props.get("fifoQueue") for r in rs):
        out.missing["sqs.fifo-requests-1m"] = "SQS FIFO requests, per million (not priced by capacity/cost.py yet)"
    requests = usage.queue_messages_millions_per_month * 3
    out.add(f"{len(rs)} SQS queues", "requests: send, receive, delete per message (queueMessagesMillionsPerMonth)",
            "sqs.standard-requests-1m", "SQS standard queue requests, per million", requests, requests * mult,
            "1M requests")


def _kms(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    out.add(f"{len(rs)} KMS keys", "customer managed keys", "kms.key-month", "KMS customer managed key, per month",
            len(rs), len(rs), "key-month")


def _secrets(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    out.add(f"{len(rs)} Secrets Manager secrets", "database roles and Valkey users", "secretsmanager.secret-month",
            "Secrets Manager secret, per month", len(rs), len(rs), "secret-month")


def _log_groups(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        name = _name(r.key)
        gb = usage.log_gb_per_month.get(name, usage.default_log_gb_per_month)
        days = int(r.props.get("retentionInDays") or 0)
        months = days / (365 / 12) if days else None
        out.add(name, "log ingestion (logGbPerMonth)", "cloudwatch.logs-ingest-gb",
                "CloudWatch Logs standard ingestion, per GB", gb, gb * mult, "GB")
        if months is None:
            out.missing["retentionInDays"] = f"{name} keeps logs forever: its storage grows without bound"
            continue
        out.add(name, f"log storage at steady state ({days} days kept)", "cloudwatch.logs-storage-gb-month",
                "CloudWatch Logs archived storage, per GB-month", gb * months, gb * months * mult, "GB-month")


def _alarms(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    metrics = sum(max(1, sum(1 for q in r.props.get("metricQueries") or [] if q.get("metric")))
                  for r in rs)
    out.add(f"{len(rs)} CloudWatch alarms", "standard-resolution alarm metrics", "cloudwatch.alarm-metric-month",
            "CloudWatch standard-resolution alarm metric, per month", metrics, metrics, "alarm metric-month")
    custom = usage.cloudwatch_custom_metrics
    out.add("CloudWatch", "custom metrics the apps publish (cloudwatchCustomMetrics; the alarms' AWS metrics are free)",
            "cloudwatch.custom-metric-month", "CloudWatch custom metric, first 10,000, per metric-month",
            custom, custom, "metric-month")


def _cross_az(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    """Traffic between zones: $0.01/GB out of one zone and $0.01/GB into the other (both sides of
    every GB). RDS's Multi-AZ replication is free and not counted; nor is ElastiCache's replication
    between its own nodes (the stored sources do not say how it is billed)."""
    zones = sorted({str(r.props.get("availabilityZone")) for r in rs if r.props.get("availabilityZone")})
    if len(zones) < 2:
        return
    gb = usage.cross_az_gb_per_month * 2
    out.add(f"{len(zones)} availability zones", "cross-AZ transfer, both directions (crossAzGbPerMonth x 2)",
            "data-transfer.cross-az-gb", "EC2 data transfer between availability zones, per GB each direction",
            gb, gb * mult, "GB")


def _buckets(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    where = f"{len(rs)} S3 buckets"
    gb, puts = usage.s3_storage_gb, usage.s3_puts_thousands_per_month
    out.add(where, "Standard storage (s3StorageGb)", "s3.standard-gb-month", "S3 Standard storage, per GB-month",
            gb, gb * mult, "GB-month")
    out.add(where, "PUT requests (s3PutsThousandsPerMonth)", "s3.put-requests-1k",
            "S3 Standard PUT/COPY/POST requests, per 1,000", puts, puts * mult, "1k requests")


def _vpc_endpoints(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        if (r.props.get("vpcEndpointType") or "Gateway") != "Gateway":
            subnets = len(r.props.get("subnetIds") or []) or 1
            out.hourly(_name(r.key), f"interface endpoint in {subnets} AZs", "vpc.interface-endpoint-az-hour",
                       "VPC interface endpoint, per AZ-hour", subnets, subnets)


def _helm_releases(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    _helm_volumes(out, rs, usage, mult)
    _xray_traces(out, rs, usage, mult)


def _xray_traces(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    """An OpenTelemetry Collector exporting to X-Ray (components/otel_collector.py): one recorded
    trace per sampled request. Every viewer request is counted (static assets included: an upper
    bound) at the sampling ratio the collector's release records."""
    for r in rs:
        values = r.props.get("values") or {}
        exporters = value_at(values, "alternateConfig.exporters") or {}
        if r.props.get("chart") != "opentelemetry-collector" or "awsxray" not in exporters:
            continue
        ratio = float(value_at(values, "podAnnotations", {}).get(SAMPLING_ANNOTATION, 1.0))
        traces = usage.requests_millions_per_month * ratio
        out.add(_name(r.key), f"X-Ray traces recorded: {plain(ratio)} of the viewer requests "
                "(requestsMillionsPerMonth)",
                "xray.traces-recorded-1m", "X-Ray traces recorded, per million", traces, traces * mult, "1M traces")


def _helm_volumes(out: _Lines, rs: list[Declared], usage: CostSettings, mult: float) -> None:
    for r in rs:
        gib = sum(_storage_gib(v) for v in _claim_templates(r.props.get("values") or {}))
        if gib:
            out.add(_name(r.key), "gp3 persistent volumes the chart claims", "ebs.gp3.gb-month",
                    "EBS gp3 storage, per GB-month", gib, gib, "GB-month")


def _claim_templates(value: Any) -> Iterable[dict]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "volumeClaimTemplate" and isinstance(v, dict):
                yield v
            else:
                yield from _claim_templates(v)
    elif isinstance(value, list):
        for v in value:
            yield from _claim_templates(v)


def _storage_gib(template: dict) -> float:
    quantity = value_at(template, "spec.resources.requests.storage")
    return math.ceil(memory_mib(quantity) / 1024) if quantity else 0


PRICERS = {
    "aws:eks/cluster:Cluster": _eks,
    "aws:ec2/natGateway:NatGateway": _nat,
    "aws:ec2/eip:Eip": _eip,
    "aws:ec2/vpcEndpoint:VpcEndpoint": _vpc_endpoints,
    "aws:rds/instance:Instance": _rds,
    "aws:elasticache/replicationGroup:ReplicationGroup": _elasticache,
    "aws:lb/loadBalancer:LoadBalancer": _alb,
    "aws:cloudfront/distribution:Distribution": _cloudfront,
    "aws:wafv2/webAcl:WebAcl": _waf,
    "aws:sqs/queue:Queue": _sqs,
    "aws:kms/key:Key": _kms,
    "aws:secretsmanager/secret:Secret": _secrets,
    "aws:cloudwatch/logGroup:LogGroup": _log_groups,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _alarms,
    "aws:s3/bucket:Bucket": _buckets,
    "aws:ec2/subnet:Subnet": _cross_az,
    "kubernetes:helm.sh/v3:Release": _helm_releases,
}

#: The types whose properties ``estimate`` reads (the pricers' and what ``capacity.fleet`` packs);
#: every other type counts by its token alone (free, or named as unclassified). What the program
#: serializes for its budget (components/declared.py) is only these.
PROPERTIES_READ = frozenset({*PRICERS, NODE_GROUP, LAUNCH_TEMPLATE, DEPLOYMENT, PRIORITY_CLASS, HPA,
                             SCALED_OBJECT, HELM_RELEASE})
