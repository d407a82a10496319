"""The cost model (capacity/cost.py) on small hand-computed cases, and on the real stacks."""

from __future__ import annotations

import copy
import typing
from pathlib import Path

import pytest
import yaml

from capacity import classes
from capacity.cost import (
    CostSettings,
    IncompleteEstimate,
    Price,
    PriceTable,
    estimate,
    load_prices,
    max_scale_monthly_usd,
)
from capacity.fleet import Declared
from capacity.schema import OneOf, constraints, hints_of
from components.eks_cluster import NodeGroupSpec
from components.postgres import PostgresSettings
from components.redis import RedisSettings
from infra.config import ConfigError

HOURS = 730
TABLE = PriceTable("test-1", "USD", HOURS, {
    key: Price(key, usd, unit, "https://aws.amazon.com/pricing/", "test", "2026-12-02") for key, usd, unit in [
        ("ec2.instance-hour.m6i.large", 0.096, "hour"),
        ("ebs.gp3.gb-month", 0.08, "GB-month"),
        ("rds.postgres.instance-hour.db.r7g.xlarge", 0.478, "hour"),
        ("rds.postgres.instance-hour.db.m7g.large", 0.168, "hour"),
        ("rds.gp3.gb-month", 0.115, "GB-month"),
        ("rds.backup-storage.gb-month", 0.095, "GB-month"),
        ("rds.performance-insights.first-month-vcpu", 1.5, "vCPU-month"),
        ("rds.performance-insights.additional-month-vcpu", 0.1, "vCPU-month"),
        ("elasticache.backup-storage.gb-month", 0.085, "GB-month"),
        ("data-transfer.cross-az-gb", 0.01, "GB"),
        ("cloudfront.internet-out-gb", 0.085, "GB"),
        ("cloudfront.https-requests-10k", 0.01, "10k requests"),
        ("cloudwatch.alarm-metric-month", 0.10, "alarm metric-month"),
        ("cloudwatch.custom-metric-month", 0.30, "metric-month"),
    ]})


def node_group(min_size=1, max_size=4, itype="m6i.large"):
    return Declared("aws:eks/nodeGroup:NodeGroup", "apps", {
        "instanceTypes": [itype], "capacityType": "ON_DEMAND", "labels": {"node-pool": "apps"},
        "scalingConfig": {"minSize": min_size, "maxSize": max_size, "desiredSize": min_size},
        "launchTemplate": {"id": "lt-apps"}})


def launch_template(disk=50):
    return Declared("aws:ec2/launchTemplate:LaunchTemplate", "apps-lt", {
        "id": "lt-apps", "blockDeviceMappings": [{"ebs": {"volumeSize": disk}}]})


def app(name="backend", min_r=2, max_r=10, cpu="500m", mem="1Gi"):
    deployment = Declared("kubernetes:apps/v1:Deployment", f"{name}-deployment", {
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"template": {"spec": {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": mem}}}]}}}})
    hpa = Declared("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", f"{name}-hpa", {
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"scaleTargetRef": {"name": name}, "minReplicas": min_r, "maxReplicas": max_r}})
    return [deployment, hpa]


def rds(klass="db.r7g.xlarge", multi_az=True, storage=100, max_storage=None, **props):
    return Declared("aws:rds/instance:Instance", "db", {
        "engine": "postgres", "instanceClass": klass, "multiAz": multi_az, "storageType": "gp3",
        "allocatedStorage": storage, "maxAllocatedStorage": max_storage or storage, **props})


def line(e, item_start):
    return next(x for x in e.lines if x.item.startswith(item_start))


def test_a_node_group_costs_its_nodes_hours_and_root_volumes():
    # m6i.large: 2 vCPU -> 1930m allocatable (6% + 1% of the first two cores), x 0.9 = 1737m for pods.
    # At rest 2 pods of 500m fit one node; at maximum 10 pods, 3 to a node (1500m), need 4 nodes.
    e = estimate([node_group(), launch_template(), *app()], "test-1", CostSettings(), table=TABLE)
    nodes = line(e, "m6i.large nodes")
    assert (nodes.quantity_min, nodes.quantity_max) == (1 * HOURS, 4 * HOURS)
    assert nodes.monthly_min == pytest.approx(70.08)  # 730 h x $0.096
    disks = line(e, "gp3 root volumes")
    assert (disks.quantity_min, disks.quantity_max) == (50, 200)
    assert disks.monthly_min == pytest.approx(4.0)  # 50 GB x $0.08
    assert e.capped_groups == []


def test_the_node_group_max_size_caps_the_maximum_and_says_so():
    e = estimate([node_group(max_size=2), launch_template(), *app(max_r=20)], "test-1", CostSettings(), table=TABLE)
    assert line(e, "m6i.large nodes").quantity_max == 2 * HOURS
    assert e.capped_groups == ["apps"]


def test_an_rds_multi_az_instance_bills_primary_and_standby_and_storage_twice():
    e = estimate([rds(storage=100, max_storage=1000)], "test-1", CostSettings(), table=TABLE)
    instance = line(e, "RDS postgres db.r7g.xlarge")
    assert instance.quantity_min == 2 * HOURS
    assert instance.monthly_min == pytest.approx(697.88)  # 2 x 730 h x $0.478
    storage = line(e, "gp3 storage")
    assert (storage.quantity_min, storage.quantity_max) == (200, 2000)  # x2 copies; autoscaled at maximum
    assert storage.monthly_min == pytest.approx(23.0)


def test_doubling_max_replicas_raises_the_maximum_scale_cost_and_not_the_minimum():
    base = estimate([node_group(max_size=20), *app(max_r=10)], "test-1", CostSettings(), table=TABLE)
    double = estimate([node_group(max_size=20), *app(max_r=20)], "test-1", CostSettings(), table=TABLE)
    assert double.monthly_max > base.monthly_max
    assert double.monthly_min == base.monthly_min


def test_a_larger_rds_class_raises_both_scales():
    small = estimate([rds("db.m7g.large")], "test-1", CostSettings(), table=TABLE)
    large = estimate([rds("db.r7g.xlarge")], "test-1", CostSettings(), table=TABLE)
    assert large.monthly_min > small.monthly_min and large.monthly_max > small.monthly_max


def test_a_missing_price_is_named_never_a_silent_zero():
    e = estimate([node_group(itype="m7i.large"), *app()], "test-1", CostSettings(), table=TABLE)
    assert e.missing == {"ec2.instance-hour.m7i.large": "EC2 On-Demand Linux m7i.large, per hour"}
    assert line(e, "m7i.large nodes").monthly_min is None
    assert not e.complete
    assert e.incomplete == "incomplete: 1 line unpriced"
    assert e.as_dict()["incomplete"] == "incomplete: 1 line unpriced" and e.as_dict()["unpricedLines"] == 1


def test_the_max_scale_total_a_budget_derives_from_refuses_an_incomplete_estimate():
    with pytest.raises(IncompleteEstimate, match=r"^incomplete: 1 line unpriced: ec2.instance-hour.m8g.large$"):
        max_scale_monthly_usd([node_group(itype="m8g.large"), *app()], "us-east-1", CostSettings())
    complete = estimate([node_group(), *app()], "us-east-1", CostSettings())
    assert max_scale_monthly_usd([node_group(), *app()], "us-east-1", CostSettings()) == round(complete.monthly_max, 2)


def test_performance_insights_beyond_seven_days_bills_every_vcpu_of_primary_and_standby():
    e = estimate([rds(performanceInsightsEnabled=True, performanceInsightsRetentionPeriod=93)], "test-1",
                 CostSettings(), table=TABLE)
    first, more = line(e, "Performance Insights, 93 days"), line(e, "Performance Insights: 2 further months")
    assert first.quantity_min == 8  # db.r7g.xlarge: 4 vCPUs x 2 (Multi-AZ)
    assert more.quantity_min == 16 and more.monthly_max == pytest.approx(1.6)
    free = estimate([rds(performanceInsightsEnabled=True, performanceInsightsRetentionPeriod=7)], "test-1",
                    CostSettings(), table=TABLE)
    assert not [x for x in free.lines if "Performance Insights" in x.item]


def test_rds_backups_bill_each_days_changes_beyond_the_free_allowance():
    e = estimate([rds(backupRetentionPeriod=30)], "test-1", CostSettings(rds_backup_changed_gb_per_day=2),
                 table=TABLE)
    backups = line(e, "backup storage")
    assert (backups.quantity_min, backups.quantity_max) == (60, 300)  # 2 GB x 30 days; x5 at maximum
    assert backups.monthly_min == pytest.approx(5.7)


def test_cache_snapshots_keep_each_days_copy_of_the_shards_data():
    cache = Declared("aws:elasticache/replicationGroup:ReplicationGroup", "cache", {
        "engine": "valkey", "nodeType": "cache.r7g.large", "numNodeGroups": 3, "replicasPerNodeGroup": 2,
        "snapshotRetentionLimit": 14})
    e = estimate([cache], "test-1", CostSettings(cache_fill_fraction=0.5), table=TABLE)
    snapshots = line(e, "snapshots")
    assert snapshots.quantity_max == pytest.approx(13.07 * 3 * 14)  # full memory of 3 primaries, 14 copies
    assert snapshots.quantity_min == pytest.approx(13.07 * 3 * 14 * 0.5)


def subnet(zone):
    return Declared("aws:ec2/subnet:Subnet", f"subnet-{zone}", {"availabilityZone": zone})


def test_cross_az_transfer_is_billed_on_both_sides_only_across_zones():
    e = estimate([subnet("a"), subnet("b")], "test-1", CostSettings(cross_az_gb_per_month=300), table=TABLE)
    transfer = line(e, "cross-AZ transfer")
    assert (transfer.quantity_min, transfer.quantity_max) == (600, 3000)
    assert transfer.monthly_min == pytest.approx(6.0)
    assert not estimate([subnet("a"), subnet("a")], "test-1", CostSettings(), table=TABLE).lines


def test_cloudfront_deducts_the_free_terabyte_and_ten_million_requests_unless_told_not_to():
    cdn = [Declared("aws:cloudfront/distribution:Distribution", "cdn", {})]
    usage = dict(cdn_gb_per_month=500, requests_millions_per_month=30)
    free = estimate(cdn, "test-1", CostSettings(**usage), table=TABLE)
    assert line(free, "data transfer to viewers beyond the free 1 TB").quantity_min == 0
    assert line(free, "data transfer to viewers").quantity_max == 1500  # 2,500 GB at maximum - 1,000
    assert line(free, "HTTPS requests beyond the free 10 M").quantity_min == 2000  # 20 M, in 10k
    full = estimate(cdn, "test-1", CostSettings(**usage, cloudfront_free_tier=False), table=TABLE)
    assert full.monthly_min - free.monthly_min == pytest.approx(500 * 0.085 + 1000 * 0.01)


def test_custom_metrics_are_their_own_line_beside_the_alarms():
    alarm = Declared("aws:cloudwatch/metricAlarm:MetricAlarm", "alarm", {})
    e = estimate([alarm], "test-1", CostSettings(cloudwatch_custom_metrics=20), table=TABLE)
    assert line(e, "custom metrics").monthly_min == pytest.approx(6.0)


def _accepted(cls, field) -> OneOf:
    hint = hints_of(cls)[field]
    if typing.get_origin(constraints(hint)[0]) is list:
        hint = typing.get_args(constraints(hint)[0])[0]
    [rule] = [r for r in constraints(hint)[1] if isinstance(r, OneOf)]
    return rule


@pytest.mark.parametrize("kind, cls, field", [
    ("ec2", NodeGroupSpec, "instance_types"), ("rds", PostgresSettings, "instance_class"),
    ("elasticache", RedisSettings, "node_type")])
def test_every_class_the_settings_accept_has_a_price_vcpus_and_memory(kind, cls, field):
    table = load_prices("us-east-1")
    accepted = _accepted(cls, field).values
    assert accepted
    for name in accepted:
        c = classes.find(kind, name)
        assert c is not None and c.vcpus > 0 and c.memory_gib > 0, name
        assert kind != "ec2" or (c.max_pods or 0) > 0, name
        assert c.price_key in table.prices and table.prices[c.price_key].usd > 0, name
        assert c.hardware.source.startswith("https://") and c.hardware.read_from and c.hardware.read, name
        where = c.prices["us-east-1"]
        assert where.source.startswith("https://aws.amazon.com/") and where.read_from and where.read, name


STACKS = Path(__file__).resolve().parents[1] / "stacks"


def _with(stack: str, **changes):
    """Overrides for ``run_stack_with``: the stack's sections with ``section.key`` paths replaced."""
    config = yaml.safe_load((STACKS / f"Pulumi.{stack}.yaml").read_text())["config"]
    over = {}
    for path, value in changes.items():
        section, *keys = path.split(".")
        block = over.setdefault(f"cofounder:{section}", copy.deepcopy(config[f"cofounder:{section}"]))
        for k in keys[:-1]:
            block = block[k]
        block[keys[-1]] = value
    return over


def test_each_larger_class_raises_both_scales_and_keeps_prod_complete(run_stack_with):
    from toolkit.cost_reports import stack_estimate

    steps = [{}, {"postgres.instanceClass": "db.r7g.4xlarge"}, {"redis.nodeType": "cache.r7g.xlarge"},
             {"cluster.nodeGroups.apps.instanceTypes": ["m7i.4xlarge"]}]
    changes: dict = {}
    before = None
    for step in steps:
        changes.update(step)
        e = stack_estimate(run_stack_with("prod", _with("prod", **changes)))
        assert e.complete, (step, e.incomplete)
        if before is not None:
            assert e.monthly_min > before.monthly_min and e.monthly_max > before.monthly_max, step
        before = e


def test_a_class_without_a_row_is_refused_at_load_saying_where_to_add_it(run_stack_with):
    with pytest.raises(ConfigError) as err:
        run_stack_with("prod", _with("prod", **{"redis.nodeType": "cache.m7g.large"}))
    message = str(err.value)
    assert message.startswith("stacks/Pulumi.prod.yaml: cofounder:redis.nodeType = 'cache.m7g.large' is not allowed: "
                              "expected an ElastiCache node type of capacity/instance-classes.yaml (")
    assert message.endswith("to use another, add its row there with its vCPUs, memory, price, source and read date")
    assert "\n" not in message


def test_an_unknown_billable_type_is_named():
    e = estimate([Declared("aws:dynamodb/table:Table", "t", {})], "test-1", CostSettings(), table=TABLE)
    assert e.unclassified == ["aws:dynamodb/table:Table"]


def test_every_price_in_the_table_has_a_source_and_a_read_date():
    table = load_prices("us-east-1")
    assert table.prices and table.as_of
    for price in table.prices.values():
        assert price.usd > 0
        assert price.source.startswith("https://aws.amazon.com/"), price.key
        assert price.read_from and price.read, price.key


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_resource_type_of_every_stack_is_priced_or_known_to_be_free(stack, stack_program):
    from toolkit.cost_reports import stack_estimate

    e = stack_estimate(stack_program(stack))
    assert e.unclassified == []
    assert e.complete and e.incomplete is None, e.missing  # no stack's cost report is incomplete
    assert e.monthly_min < e.monthly_max


def test_cloudfront_functions_are_priced_per_request_on_a_distribution_that_runs_them():
    table = PriceTable("test-1", "USD", HOURS, {"cloudfront.function-invocations-1m": Price(
        "cloudfront.function-invocations-1m", 0.10, "1M invocations", "https://aws.amazon.com/pricing/", "test",
        "2026-12-07")})
    usage = CostSettings(requests_millions_per_month=40, cloudfront_free_tier=False)
    with_function = Declared("aws:cloudfront/distribution:Distribution", "edge", {
        "defaultCacheBehavior": {"functionAssociations": [{"eventType": "viewer-request", "functionArn": "a"}]}})
    e = estimate([with_function], "test-1", usage, table=table)
    assert line(e, "CloudFront Functions").quantity_min == 40  # at most one invocation per request
    # The always-free 2 M invocations come off both scales while the account's allowance is ours.
    free = estimate([with_function], "test-1", CostSettings(requests_millions_per_month=40), table=table)
    assert (line(free, "CloudFront Functions").quantity_min, line(free, "CloudFront Functions").quantity_max) \
        == (38, 40 * free.usage.max_scale_usage_multiplier - 2)
    plain = Declared("aws:cloudfront/distribution:Distribution", "edge", {"defaultCacheBehavior": {}})
    assert not [x for x in estimate([plain], "test-1", usage, table=table).lines if x.item.startswith("CloudFront Functions")]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stacks_viewer_host_function_is_in_its_cost(stack, stack_program):
    from toolkit.cost_reports import stack_estimate

    e = stack_estimate(stack_program(stack))
    assert line(e, "CloudFront Functions").price_key == "cloudfront.function-invocations-1m"
