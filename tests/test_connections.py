"""capacity/connections.py and its use: the Postgres connection budget, checked by hand."""

from __future__ import annotations

import pytest

from capacity import connections
from capacity.connections import budget, check, instance_class_memory_bytes, rds_max_connections
from infra.config import ConfigError

CLIENTS = [("backend", 20, 20), ("worker", 20, 5)]  # 400 + 100 = 500 client connections


@pytest.mark.parametrize("instance_class, memory_bytes, max_connections", [
    # 1 GiB - 384 MiB (the floor beats 10 %) = 671088640; / 9531392 = 70.4
    ("db.t4g.micro", 671_088_640, 70),
    # 4 GiB - 10 % = 4294967296 - 429496729 = 3865470567; / 9531392 = 405.6
    ("db.t4g.medium", 3_865_470_567, 405),
    # 16 GiB - 10 % = 15461882266; / 9531392 = 1622.2
    ("db.r6g.large", 15_461_882_266, 1622),
    # 32 GiB - 10 % = 30923764532; / 9531392 = 3244.4
    ("db.r7g.xlarge", 30_923_764_532, 3244),
    # 512 GiB would allow 51,909: RDS caps the default at 5,000
    ("db.r7g.16xlarge", 494_780_232_500, 5000),
])
def test_rds_max_connections_from_instance_memory(instance_class, memory_bytes, max_connections):
    assert instance_class_memory_bytes(instance_class) == memory_bytes
    assert rds_max_connections(instance_class) == max_connections


def test_the_estimate_stays_below_nominal_memory_for_every_class():
    for cls, gib in connections.INSTANCE_MEMORY_GIB.items():
        assert instance_class_memory_bytes(cls) < gib * connections.GIB


def test_unknown_instance_class_is_refused():
    with pytest.raises(ValueError, match="unknown RDS instance class 'db.x1.huge'"):
        rds_max_connections("db.x1.huge")


def test_a_budget_that_fits():
    b = budget("db.t4g.medium", reserve=10, pgbouncer_replicas=2, pool_size=20, reserve_pool_size=5,
               max_client_conn=500, clients=CLIENTS)
    assert (b.rds_max_connections, b.available) == (405, 395)
    assert b.server_connections == 2 * (20 + 5) == 50
    assert b.server_headroom == 345
    assert (b.client_capacity, b.client_demand, b.client_headroom) == (1000, 500, 500)
    assert check(b) == [] and b.ok


def test_server_side_over_rds_max_connections():
    b = budget("db.t4g.medium", reserve=10, pgbouncer_replicas=2, pool_size=200, reserve_pool_size=5,
               max_client_conn=500, clients=CLIENTS)
    assert check(b) == [
        "PgBouncer server connections 2 replicas x (200 pool + 5 reserve pool) = 410 exceed RDS "
        "max_connections 405 (db.t4g.medium) minus 10 reserved = 395"]
    assert not b.ok


def test_exactly_at_the_limit_fits():
    # 395 available: 5 replicas x (74 + 5) = 395
    b = budget("db.t4g.medium", reserve=10, pgbouncer_replicas=5, pool_size=74, reserve_pool_size=5,
               max_client_conn=100, clients=CLIENTS)
    assert b.server_headroom == 0 and b.client_headroom == 0 and b.ok


def test_client_side_below_demand():
    b = budget("db.r7g.xlarge", reserve=20, pgbouncer_replicas=2, pool_size=100, reserve_pool_size=20,
               max_client_conn=200, clients=CLIENTS)
    assert check(b) == [
        "PgBouncer client capacity 2 replicas x 200 max_client_conn = 400 is below the apps' demand at "
        "maximum scale backend 20 x 20 + worker 20 x 5 = 500"]


def test_both_limits_broken_are_both_named():
    b = budget("db.t4g.micro", reserve=10, pgbouncer_replicas=3, pool_size=20, reserve_pool_size=5,
               max_client_conn=100, clients=CLIENTS)
    problems = check(b)
    assert len(problems) == 2
    assert "= 75 exceed RDS max_connections 70 (db.t4g.micro) minus 10 reserved = 60" in problems[0]
    assert "= 300 is below the apps' demand" in problems[1]


def test_as_dict_carries_inputs_and_results():
    d = budget("db.t4g.medium", 10, 2, 20, 5, 500, CLIENTS).as_dict()
    assert d["rdsMaxConnections"] == 405 and d["serverConnections"] == 50 and d["clientDemand"] == 500
    assert d["clients"][0] == {"name": "backend", "maxReplicas": 20, "poolPerPod": 20}
    assert d["ok"] is True


# --- the program refuses a stack that does not fit ------------------------------------------

DEV_PGBOUNCER = {"replicas": 2, "defaultPoolSize": 20, "reservePoolSize": 5, "maxClientConn": 500}
REMEDY = ("change cofounder:pgbouncer (replicas, defaultPoolSize, reservePoolSize, maxClientConn) "
          "or cofounder:postgres (instanceClass, reservedConnections)")


def test_stack_with_too_many_server_connections_fails_before_any_resource(run_stack_with):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:pgbouncer": {**DEV_PGBOUNCER, "defaultPoolSize": 200}})
    assert str(err.value) == (
        "stacks/Pulumi.dev.yaml: the connection budget does not fit: PgBouncer server connections "
        "2 replicas x (200 pool + 5 reserve pool) = 410 exceed RDS max_connections 405 (db.t4g.medium) "
        f"minus 10 reserved = 395: {REMEDY}")


def test_stack_with_too_few_client_slots_fails(run_stack_with):
    # the demand comes from cofounder:apps: dev's backend and worker at maxReplicas 5 x dbPoolSize 20
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:pgbouncer": {**DEV_PGBOUNCER, "maxClientConn": 50}})
    assert str(err.value) == (
        "stacks/Pulumi.dev.yaml: the connection budget does not fit: PgBouncer client capacity 2 replicas "
        "x 50 max_client_conn = 100 is below the apps' demand at maximum scale backend 5 x 20 + worker "
        f"5 x 20 = 200: {REMEDY}")


def test_a_smaller_instance_class_breaks_the_budget(run_stack_with):
    # dev's PgBouncer needs 50; a db.t4g.micro has 70 - 30 reserved = 40
    with pytest.raises(ConfigError, match=r"= 50 exceed RDS max_connections 70 \(db.t4g.micro\) minus 30 reserved = 40"):
        run_stack_with("dev", {"cofounder:postgres": {"instanceClass": "db.t4g.micro", "reservedConnections": 30,
                                                      "multiAz": False}})


@pytest.mark.parametrize("stack, expected", [
    ("dev", {"rdsMaxConnections": 405, "available": 395, "serverConnections": 50, "clientCapacity": 1000}),
    ("staging", {"rdsMaxConnections": 811, "available": 801, "serverConnections": 100, "clientCapacity": 2000}),
    ("prod", {"rdsMaxConnections": 3244, "available": 3224, "serverConnections": 360, "clientCapacity": 3000}),
])
def test_every_stack_fits_and_exports_its_budget(stack_program, stack, expected):
    exported = stack_program(stack).outputs["connectionBudget"]
    assert {k: exported[k] for k in expected} == expected
    # every app with a database pool, at its HPA maximum (the frontend has dbPoolSize 0)
    max_replicas = {"dev": 5, "staging": 10, "prod": 40}[stack]
    assert exported["clients"] == [{"name": "backend", "maxReplicas": max_replicas, "poolPerPod": 20},
                                   {"name": "worker", "maxReplicas": max_replicas, "poolPerPod": 20}]
    assert exported["clientDemand"] == 2 * max_replicas * 20
    assert exported["ok"] is True


def test_the_preview_report_shows_the_budget(stack_program):
    from toolkit.reports import build_reports
    rep = build_reports(stack_program("prod"))["connections"]
    assert rep["ok"] is True
    rows = {row["figure"]: row["value"] for row in rep["rows"]}
    assert rows["RDS max_connections"] == 3244
    assert rows["reserved (admin, migrations)"] == 20
    assert rows["PgBouncer server connections"] == 360
    assert rows["server headroom"] == 3224 - 360
    assert rows["PgBouncer client capacity"] == 3000
    assert rows["app demand at max scale"] == 1600  # backend 40 x 20 + worker 40 x 20
    assert rows["client headroom"] == 1400
    assert rows["ok"] == "yes"


def test_the_report_flags_a_budget_that_does_not_match_the_declared_instance(stack_program):
    import copy

    from toolkit.reports import build_reports
    program = copy.deepcopy(stack_program("prod"))
    program.one("aws:rds/instance:Instance").inputs["instanceClass"] = "db.t4g.micro"
    rep = build_reports(program)["connections"]
    assert rep["ok"] is False
    assert any("MISMATCH: the RDS instance declares db.t4g.micro" in n for n in rep["notes"])


def test_the_report_flags_pgbouncer_replicas_other_than_budgeted(stack_program):
    import copy

    from toolkit.reports import build_reports
    program = copy.deepcopy(stack_program("prod"))
    bouncer = next(r for r in program.of_type("kubernetes:apps/v1:Deployment")
                   if r.inputs["metadata"]["name"] == "pgbouncer")
    assert bouncer.inputs["spec"]["replicas"] == 3
    bouncer.inputs["spec"]["replicas"] = 5
    rep = build_reports(program)["connections"]
    assert rep["ok"] is False
    assert "MISMATCH: PgBouncer declares 5 replicas, the budget assumes 3" in rep["notes"]


def test_demand_follows_the_apps_config(run_stack_with):
    # raising the worker's HPA maximum in cofounder:apps is enough to break dev's client side
    import json

    from toolkit.stackfile import load_stack_file
    config = load_stack_file("dev").config
    apps = json.loads(config["cofounder:apps"])
    apps["worker"]["maxReplicas"] = 46
    # above dev's replica cap too: raise that, so the connection budget is what refuses it
    scaling = {**json.loads(config["cofounder:scaling"]), "maxReplicasPerApp": 50}
    with pytest.raises(ConfigError, match=r"= 1000 is below the apps' demand at maximum scale backend 5 x 20 \+ "
                                          r"worker 46 x 20 = 1020"):
        run_stack_with("dev", {"cofounder:apps": apps, "cofounder:scaling": scaling})


def test_an_app_cannot_name_another_queue(run_stack_with, stack_program):
    """The queues' names are derived (cofounder-<stack>-agent-execution-<tier>); an app only says it consumes them."""
    import json

    from toolkit.stackfile import load_stack_file
    apps = json.loads(load_stack_file("dev").config["cofounder:apps"])
    apps["worker"]["queueName"] = "some-other-queue"
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:apps": apps})
    assert str(err.value).startswith("stacks/Pulumi.dev.yaml: cofounder:apps.worker.queueName is not a known "
                                     "setting: allowed keys are ")
    assert "consumesAgentQueue" in str(err.value)
    triggers = stack_program("dev").one("kubernetes:keda.sh/v1alpha1:ScaledObject").inputs["spec"]["triggers"]
    urls = [t["metadata"]["queueURL"] for t in triggers if t["type"] == "aws-sqs-queue"]
    assert [u.rsplit("/", 1)[1] for u in urls] == [f"cofounder-dev-agent-execution-{t}" for t in ("high", "normal", "low")]
