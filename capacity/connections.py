"""The Postgres connection budget: from the RDS instance class down to every app pod's pool.

Three limits must hold at maximum scale (every HPA at its ``maxReplicas``):

1. RDS ``max_connections``. RDS for PostgreSQL sets it to
   ``LEAST({DBInstanceClassMemory/9531392}, 5000)``. ``DBInstanceClassMemory`` is the memory
   left to the database engine: AWS documents it as *less* than the class's nominal memory
   (the OS and the RDS agents keep some) without publishing the exact figure. We estimate it
   conservatively as ``nominal - max(10 % of nominal, 384 MiB)``; on a db.t4g.micro this gives
   70 connections where RDS reports about 80, on a 16 GiB class 1,622 where RDS reports about
   1,700. Under-estimating only costs a little headroom; over-estimating would let PgBouncer
   open connections RDS refuses. ``reserve`` connections stay free for administrators,
   migrations (the direct ``DATABASE_URL``) and RDS's own ``rdsadmin`` sessions.
2. PgBouncer's server side: each replica opens at most ``pool_size + reserve_pool_size``
   connections to RDS (PgBouncer's ``default_pool_size`` + ``reserve_pool_size``, enforced with
   ``max_db_connections``; there is one database/user pair). Replicas x that must fit in 1.
3. PgBouncer's client side: each replica accepts ``max_client_conn`` clients; replicas x that must
   cover every app at its HPA maximum x its per-pod pool size.

Pure Python, no Pulumi: the program (to refuse a stack that does not fit), the preview report
and the policy pack all call ``budget()`` and ``check()``.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable
from dataclasses import dataclass

from capacity import classes

GIB = 1024 ** 3
MIB = 1024 ** 2
#: RDS for PostgreSQL's divisor in ``LEAST({DBInstanceClassMemory/9531392}, 5000)``.
BYTES_PER_CONNECTION = 9531392
#: RDS for PostgreSQL's upper bound on the default ``max_connections``.
MAX_CONNECTIONS_CAP = 5000
#: Part of nominal memory assumed unavailable to the engine (OS, RDS agents): the larger of these.
OS_RESERVE_FRACTION = 0.10
OS_RESERVE_MIN_BYTES = 384 * MIB

#: Nominal memory (GiB) of the RDS instance classes a stack may choose: the RDS rows of
#: capacity/instance-classes.yaml (capacity/classes.py).
INSTANCE_MEMORY_GIB: dict[str, float] = {name: c.memory_gib for name, c in classes.of("rds").items()}


def instance_class_memory_bytes(instance_class: str) -> int:
    """Conservative estimate of RDS's ``DBInstanceClassMemory`` for an instance class."""
    if instance_class not in INSTANCE_MEMORY_GIB:
        raise ValueError(f"unknown RDS instance class {instance_class!r}")
    nominal = int(INSTANCE_MEMORY_GIB[instance_class] * GIB)
    return nominal - max(int(nominal * OS_RESERVE_FRACTION), OS_RESERVE_MIN_BYTES)


def rds_max_connections(instance_class: str) -> int:
    """RDS for PostgreSQL's default ``max_connections`` for the class (estimated, rounded down)."""
    return min(instance_class_memory_bytes(instance_class) // BYTES_PER_CONNECTION, MAX_CONNECTIONS_CAP)


@dataclass(frozen=True)
class Client:
    """One app that connects through PgBouncer: its HPA maximum and its per-pod pool."""

    name: str
    max_replicas: int
    pool_per_pod: int

    @property
    def demand(self) -> int:
        return self.max_replicas * self.pool_per_pod


@dataclass(frozen=True)
class Budget:
    """Every figure of the connection budget, derived by ``budget()``."""

    instance_class: str
    rds_max_connections: int
    reserve: int
    pgbouncer_replicas: int
    pool_size: int
    reserve_pool_size: int
    max_client_conn: int
    clients: tuple[Client, ...]

    @property
    def available(self) -> int:
        """RDS connections PgBouncer may use: max_connections minus the reserve."""
        return self.rds_max_connections - self.reserve

    @property
    def server_connections_per_replica(self) -> int:
        return self.pool_size + self.reserve_pool_size

    @property
    def server_connections(self) -> int:
        return self.pgbouncer_replicas * self.server_connections_per_replica

    @property
    def server_headroom(self) -> int:
        return self.available - self.server_connections

    @property
    def client_capacity(self) -> int:
        return self.pgbouncer_replicas * self.max_client_conn

    @property
    def client_demand(self) -> int:
        return sum(c.demand for c in self.clients)

    @property
    def client_headroom(self) -> int:
        return self.client_capacity - self.client_demand

    @property
    def ok(self) -> bool:
        return not check(self)

    def as_dict(self) -> dict:
        """The inputs and derived figures as plain data (for stack outputs and reports)."""
        return {
            "instanceClass": self.instance_class,
            "rdsMaxConnections": self.rds_max_connections,
            "reserve": self.reserve,
            "available": self.available,
            "pgbouncerReplicas": self.pgbouncer_replicas,
            "poolSize": self.pool_size,
            "reservePoolSize": self.reserve_pool_size,
            "serverConnections": self.server_connections,
            "serverHeadroom": self.server_headroom,
            "maxClientConn": self.max_client_conn,
            "clientCapacity": self.client_capacity,
            "clients": [{"name": c.name, "maxReplicas": c.max_replicas, "poolPerPod": c.pool_per_pod}
                        for c in self.clients],
            "clientDemand": self.client_demand,
            "clientHeadroom": self.client_headroom,
            "ok": self.ok,
        }


def budget(instance_class: str, reserve: int, pgbouncer_replicas: int, pool_size: int,
           reserve_pool_size: int, max_client_conn: int,
           clients: Iterable[tuple[str, int, int] | Client]) -> Budget:
    """The connection budget of a stack. ``clients``: (name, HPA max replicas, pool per pod)."""
    return Budget(
        instance_class=instance_class,
        rds_max_connections=rds_max_connections(instance_class),
        reserve=reserve,
        pgbouncer_replicas=pgbouncer_replicas,
        pool_size=pool_size,
        reserve_pool_size=reserve_pool_size,
        max_client_conn=max_client_conn,
        clients=tuple(c if isinstance(c, Client) else Client(*c) for c in clients),
    )


def check(b: Budget) -> list[str]:
    """The limits ``b`` violates, each as one sentence naming the figures; empty when it fits."""
    problems = []
    if b.server_connections > b.available:
        problems.append(
            f"PgBouncer server connections {b.pgbouncer_replicas} replicas x ({b.pool_size} pool + "
            f"{b.reserve_pool_size} reserve pool) = {b.server_connections} exceed RDS max_connections "
            f"{b.rds_max_connections} ({b.instance_class}) minus {b.reserve} reserved = {b.available}")
    if b.client_capacity < b.client_demand:
        demand = " + ".join(f"{c.name} {c.max_replicas} x {c.pool_per_pod}" for c in b.clients)
        problems.append(
            f"PgBouncer client capacity {b.pgbouncer_replicas} replicas x {b.max_client_conn} "
            f"max_client_conn = {b.client_capacity} is below the apps' demand at maximum scale "
            f"{demand} = {b.client_demand}")
    return problems


# --- the budget's inputs as the resources declare them (for the policy pack) -------------------

#: Pod-template annotation of an app Deployment: connections each pod's pool opens to PgBouncer
#: (``dbPoolSize``). Absent means the app holds no pool.
DB_POOL_SIZE_ANNOTATION = "cofounder.dev/db-pool-size"
#: PgBouncer's own defaults for settings a ``pgbouncer.ini`` leaves out.
PGBOUNCER_DEFAULTS = {"default_pool_size": 20, "reserve_pool_size": 0, "max_client_conn": 100}


def pool_per_pod(pod_template: dict) -> int:
    """The ``cofounder.dev/db-pool-size`` annotation of a pod template (0 when absent)."""
    annotations = (pod_template.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(DB_POOL_SIZE_ANNOTATION)
    return int(value) if value not in (None, "") else 0


@dataclass(frozen=True)
class PgBouncerSettings:
    """The budget's figures from one ``pgbouncer.ini`` (per replica)."""

    #: ``host=`` of the first ``[databases]`` entry (the RDS address), None if absent.
    db_host: str | None
    pool_size: int
    reserve_pool_size: int
    max_client_conn: int


def parse_pgbouncer_ini(text: str) -> PgBouncerSettings:
    """``default_pool_size``, ``reserve_pool_size``, ``max_client_conn`` and the database host.

    ``max_db_connections`` is not read: the budget counts pool + reserve per replica, which is the
    most a replica opens when ``max_db_connections`` is that sum or unset.
    """
    ini = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    ini.read_string(text)
    section = ini["pgbouncer"] if ini.has_section("pgbouncer") else {}
    figures = {k: int(section.get(k) or v) for k, v in PGBOUNCER_DEFAULTS.items()}
    host = None
    if ini.has_section("databases"):
        for entry in ini["databases"].values():
            params = dict(p.split("=", 1) for p in entry.split() if "=" in p)
            host = params.get("host")
            break
    return PgBouncerSettings(db_host=host, pool_size=figures["default_pool_size"],
                             reserve_pool_size=figures["reserve_pool_size"],
                             max_client_conn=figures["max_client_conn"])
