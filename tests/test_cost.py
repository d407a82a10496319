"""The cost model (capacity/cost.py) on small hand-computed cases, and on the real stacks."""

from __future__ import annotations

import pytest

from capacity.cost import CostSettings, Price, PriceTable, estimate, load_prices
from capacity.fleet import Declared

HOURS = 730
TABLE = PriceTable("test-1", "USD", HOURS, {
    key: Price(key, usd, unit, "https://aws.amazon.com/pricing/", "test", "2026-12-02") for key, usd, unit in [
        ("ec2.instance-hour.m6i.large", 0.096, "hour"),
        ("ebs.gp3.gb-month", 0.08, "GB-month"),
        ("rds.postgres.instance-hour.db.r7g.xlarge", 0.478, "hour"),
        ("rds.postgres.instance-hour.db.m7g.large", 0.168, "hour"),
        ("rds.gp3.gb-month", 0.115, "GB-month"),
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


def rds(klass="db.r7g.xlarge", multi_az=True, storage=100, max_storage=None):
    return Declared("aws:rds/instance:Instance", "db", {
        "engine": "postgres", "instanceClass": klass, "multiAz": multi_az, "storageType": "gp3",
        "allocatedStorage": storage, "maxAllocatedStorage": max_storage or storage})


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
    assert e.monthly_min < e.monthly_max


def test_cloudfront_functions_are_priced_per_request_on_a_distribution_that_runs_them():
    table = PriceTable("test-1", "USD", HOURS, {"cloudfront.function-invocations-1m": Price(
        "cloudfront.function-invocations-1m", 0.10, "1M invocations", "https://aws.amazon.com/pricing/", "test",
        "2026-12-07")})
    usage = CostSettings(requests_millions_per_month=40)
    with_function = Declared("aws:cloudfront/distribution:Distribution", "edge", {
        "defaultCacheBehavior": {"functionAssociations": [{"eventType": "viewer-request", "functionArn": "a"}]}})
    e = estimate([with_function], "test-1", usage, table=table)
    assert line(e, "CloudFront Functions").quantity_min == 40  # at most one invocation per request
    plain = Declared("aws:cloudfront/distribution:Distribution", "edge", {"defaultCacheBehavior": {}})
    assert not [x for x in estimate([plain], "test-1", usage, table=table).lines if x.item.startswith("CloudFront Functions")]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stacks_viewer_host_function_is_in_its_cost(stack, stack_program):
    from toolkit.cost_reports import stack_estimate

    e = stack_estimate(stack_program(stack))
    assert line(e, "CloudFront Functions").price_key == "cloudfront.function-invocations-1m"
