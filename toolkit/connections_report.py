"""The ``connections`` report: the Postgres connection budget of a stack, limit by limit.

Recomputed with ``capacity/connections.py`` from the budget inputs the program exports
(``connectionBudget``), and cross-checked against what the program declares: the RDS instance's
class and, once PgBouncer is wired, its Deployment's replicas.
"""

from __future__ import annotations

from capacity import connections
from toolkit.harness import Program


def _declared_instance_class(program: Program) -> str | None:
    instances = program.of_type("aws:rds/instance:Instance")
    return instances[0].inputs.get("instanceClass") if instances else None


def connection_budget(program: Program) -> dict | None:
    exported = program.outputs.get("connectionBudget")
    if not isinstance(exported, dict):
        return None
    b = connections.budget(
        instance_class=exported["instanceClass"],
        reserve=exported["reserve"],
        pgbouncer_replicas=exported["pgbouncerReplicas"],
        pool_size=exported["poolSize"],
        reserve_pool_size=exported["reservePoolSize"],
        max_client_conn=exported["maxClientConn"],
        clients=[(c["name"], c["maxReplicas"], c["poolPerPod"]) for c in exported["clients"]],
    )
    demand = " + ".join(f"{c.name} {c.max_replicas}x{c.pool_per_pod}" for c in b.clients)
    rows = [
        {"figure": "RDS max_connections", "value": b.rds_max_connections,
         "worked from": f"LEAST(DBInstanceClassMemory/9531392, 5000), {b.instance_class} "
                 f"(~{connections.instance_class_memory_bytes(b.instance_class) / connections.GIB:.1f} GiB)"},
        {"figure": "reserved (admin, migrations)", "value": b.reserve,
         "worked from": "cofounder:postgres.reservedConnections"},
        {"figure": "available to PgBouncer", "value": b.available, "worked from": "max_connections - reserved"},
        {"figure": "PgBouncer server connections", "value": b.server_connections,
         "worked from": f"{b.pgbouncer_replicas} replicas x ({b.pool_size} pool + {b.reserve_pool_size} reserve)"},
        {"figure": "server headroom", "value": b.server_headroom, "worked from": "available - server connections"},
        {"figure": "PgBouncer client capacity", "value": b.client_capacity,
         "worked from": f"{b.pgbouncer_replicas} replicas x {b.max_client_conn} max_client_conn"},
        {"figure": "app demand at max scale", "value": b.client_demand, "worked from": demand or "no clients"},
        {"figure": "client headroom", "value": b.client_headroom, "worked from": "capacity - demand"},
    ]
    problems = connections.check(b)
    notes = [f"VIOLATED: {p}" for p in problems]
    declared_class = _declared_instance_class(program)
    if declared_class is not None and declared_class != b.instance_class:
        problems.append("class")
        notes.append(f"MISMATCH: the RDS instance declares {declared_class}, the budget assumes {b.instance_class}")
    bouncers = [r for r in program.of_type("kubernetes:apps/v1:Deployment")
                if r.inputs.get("metadata", {}).get("name") == "pgbouncer"]
    declared_replicas = bouncers[0].inputs["spec"]["replicas"] if bouncers else None
    if declared_replicas is not None and declared_replicas != b.pgbouncer_replicas:
        problems.append("replicas")
        notes.append(f"MISMATCH: PgBouncer declares {declared_replicas} replicas, the budget assumes "
                     f"{b.pgbouncer_replicas}")
    notes.append("DBInstanceClassMemory is estimated as nominal memory minus max(10 %, 384 MiB): conservative.")
    notes.append("Client demand: per app of cofounder:apps, maxReplicas x dbPoolSize.")
    rows.append({"figure": "ok", "value": "yes" if not problems else "NO", "worked from": "every limit holds"})
    return {"title": "Postgres connection budget (at maximum scale)", "key": ["figure"], "rows": rows, "notes": notes,
            "ok": not problems}
