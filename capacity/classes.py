"""The instance classes a stack may choose, read from ``capacity/instance-classes.yaml``.

One table holds every EC2 node type, RDS class and ElastiCache node type the settings accept,
each with its vCPUs, memory (EC2: its pod slots) and its on-demand price per region, and each
family with the sources of its figures. Why the settings refuse a class outside the table rather
than the table trying to cover every class AWS sells: a figure that is not in the table cannot be
priced, so a stack that chose such a class would get an estimate with a hole in it (and a class
whose price is missing reads as a cheaper class: its line counts nothing). Refusing it at load,
with a one-line error that says where to add it, keeps every estimate complete by construction
and keeps the table to classes someone has sourced; a test (tests/test_cost.py) walks every row
for its price and figures.

``capacity/nodes.py`` (allocatable), ``capacity/connections.py`` (RDS memory ->
max_connections) and ``capacity/cost.py`` (prices, vCPUs for Performance Insights, memory for
cache snapshots) read their figures from here.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from capacity.schema import OneOf

TABLE = Path(__file__).resolve().parent / "instance-classes.yaml"
#: The table's sections: which settings draw from each, and the cost model's price key of a class.
KINDS = {
    "ec2": ("EC2 instance type", "ec2.instance-hour.{}"),
    "rds": ("RDS instance class", "rds.postgres.instance-hour.{}"),
    "elasticache": ("ElastiCache node type", "elasticache.valkey.node-hour.{}"),
}


@dataclass(frozen=True)
class Source:
    source: str
    read_from: str
    read: str
    note: str = ""


@dataclass(frozen=True)
class InstanceClass:
    kind: str
    name: str
    family: str
    vcpus: int
    memory_gib: float
    #: Pods a node of this type holds (the VPC CNI's ENI limit); None outside EC2.
    max_pods: int | None
    #: USD per hour by region.
    usd_per_hour: dict[str, float]
    hardware: Source
    #: Where each region's price was read.
    prices: dict[str, Source]

    @property
    def price_key(self) -> str:
        return KINDS[self.kind][1].format(self.name)


def _date(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


def _source(entry: dict) -> Source:
    return Source(str(entry["source"]), str(entry["readFrom"]), _date(entry["read"]), str(entry.get("note", "")))


@lru_cache(maxsize=1)
def load(path: Path = TABLE) -> dict[str, dict[str, InstanceClass]]:
    """``kind -> name -> InstanceClass`` for every row of the table."""
    doc = yaml.safe_load(path.read_text()) or {}
    out: dict[str, dict[str, InstanceClass]] = {kind: {} for kind in KINDS}
    for kind in KINDS:
        for block in doc.get(kind) or []:
            hardware = _source(block["hardware"])
            prices = {region: _source(p) for region, p in (block.get("prices") or {}).items()}
            for name, row in (block.get("classes") or {}).items():
                out[kind][name] = InstanceClass(
                    kind=kind, name=name, family=str(block["family"]), vcpus=int(row["vcpus"]),
                    memory_gib=float(row["memoryGib"]),
                    max_pods=int(row["maxPods"]) if row.get("maxPods") is not None else None,
                    usd_per_hour={str(r): float(v) for r, v in (row.get("usdPerHour") or {}).items()},
                    hardware=hardware, prices=prices)
    return out


def of(kind: str) -> dict[str, InstanceClass]:
    return load()[kind]


def find(kind: str, name: str) -> InstanceClass | None:
    return load()[kind].get(name)


def _families(names: list[str]) -> str:
    """``db.r7g.{large,xlarge}, db.t4g.{micro}``: the names grouped by family, in table order."""
    groups: dict[str, list[str]] = {}
    for name in names:
        family, size = name.rsplit(".", 1)
        groups.setdefault(family, []).append(size)
    return ", ".join(f"{family}.{{{','.join(sizes)}}}" for family, sizes in groups.items())


@dataclass(frozen=True)
class Listed(OneOf):
    """One of the table's rows; ``expected`` alone is the error's "what is allowed" (it names the
    rows by family and says how to add one)."""

    def describe(self) -> str:
        return self.expected


def listed(kind: str) -> Listed:
    """The bound of a setting that names a class of ``kind``."""
    names = list(of(kind))
    what = KINDS[kind][0]
    return Listed(tuple(names), f"an {what} of capacity/instance-classes.yaml ({_families(names)}); to use another, "
                                "add its row there with its vCPUs, memory, price, source and read date")
