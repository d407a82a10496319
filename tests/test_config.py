"""infra/config.py: good stacks load; every kind of bad value fails with one clear message."""

from __future__ import annotations

import subprocess
import sys

import pulumi
import pytest

from infra.config import ConfigError
from toolkit.stackfile import REPO, load_stack_file

GOOD_NETWORK = {"cidrBlock": "10.10.0.0/16", "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"]}


def test_config_error_is_a_run_error():
    # The CLI prints a RunError as its message alone, without a traceback.
    assert issubclass(ConfigError, pulumi.RunError)


@pytest.mark.parametrize("overrides, expected", [
    ({"cofounder:network": {**GOOD_NETWORK, "singleNatGateway": "yes"}},
     "stacks/Pulumi.dev.yaml: cofounder:network.singleNatGateway = 'yes' is not allowed: expected true or false"),
    ({"cofounder:network": {**GOOD_NETWORK, "flowLogRetentionDays": -1}},
     "cofounder:network.flowLogRetentionDays = -1 is not allowed: expected a value between 1 and 3653"),
    ({"cofounder:network": {**GOOD_NETWORK, "flowLogRetentionDays": 7.5}},
     "cofounder:network.flowLogRetentionDays = 7.5 is not allowed: expected a whole number"),
    ({"cofounder:network": {**GOOD_NETWORK, "singleNatGatway": True}},
     "cofounder:network.singleNatGatway is not a known setting: did you mean 'singleNatGateway'?"),
    ({"cofounder:network": {"cidrBlock": "10.10.0.0/16"}},
     "cofounder:network.availabilityZones is missing"),
    ({"cofounder:network": {**GOOD_NETWORK, "cidrBlock": "10.10.0.0/24"}},
     "cofounder:network.cidrBlock = '10.10.0.0/24' is not allowed: expected a prefix length between /16 and /20"),
    ({"cofounder:network": {**GOOD_NETWORK, "cidrBlock": "ten"}},
     "expected an IPv4 CIDR block"),
    ({"cofounder:network": {**GOOD_NETWORK, "availabilityZones": ["eu-west-1a", "us-east-1b", "us-east-1c"]}},
     "cofounder:network.availabilityZones[0] = 'eu-west-1a' is not allowed: expected a zone of aws:region us-east-1"),
    ({"cofounder:network": {**GOOD_NETWORK, "flowLogTrafficType": "SOME"}},
     "expected one of ALL, ACCEPT, REJECT"),
    ({"cofounder:environment": "production"},
     "cofounder:environment = 'production' is not allowed: expected one of dev, staging, prod"),
    ({"cofounder:environment": None}, "cofounder:environment is missing"),
    ({"cofounder:netwrok": {}}, "cofounder:netwrok is not a known setting: did you mean 'network'?"),
    ({"aws:region": "mars-north-1a"}, "aws:region = 'mars-north-1a' is not allowed"),
    ({"cofounder:network": ["a"]}, "cofounder:network = [\"a\"] is not allowed: expected a mapping"),
    ({"cofounder:cost": {"logGbPerMonth": {"network-flow-logs": -2.5}}},
     "cofounder:cost.logGbPerMonth.network-flow-logs = -2.5 is not allowed: expected a value of at least 0"),
    ({"cofounder:scaling": {"baselineReplicas": {"backend": 0}}},
     "cofounder:scaling.baselineReplicas.backend = 0 is not allowed: expected a value of at least 1"),
])
def test_bad_config_fails_with_a_clear_message(run_stack_with, overrides, expected):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", overrides)
    message = str(err.value)
    assert expected in message
    assert message.startswith("stacks/Pulumi.dev.yaml: ")
    assert "\n" not in message


def test_bad_config_declares_no_resources(run_program):
    """Validation happens before the first resource: a failed load leaves nothing half-declared."""
    import runpy

    from toolkit.stackfile import _encode
    config = dict(load_stack_file("dev").config)
    config["cofounder:environment"], _ = _encode("qa")
    declared = []

    def program():
        try:
            runpy.run_path(str(REPO / "infra"), run_name="__main__")
        except ConfigError:
            declared.append("failed")

    result = run_program(program, stack="dev", config=config)
    assert declared == ["failed"]
    assert result.resources == []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_file_loads(stack_program, stack):
    program = stack_program(stack)
    assert program.outputs["environment"] == stack


def test_preview_reports_bad_config_without_traceback(tmp_path):
    text = (REPO / "stacks" / "Pulumi.dev.yaml").read_text()
    (tmp_path / "Pulumi.dev.yaml").write_text(text.replace("singleNatGateway: true", "singleNatGateway: 3"))
    proc = subprocess.run(
        [sys.executable, "-m", "toolkit.preview", "--stack", "dev", "--stacks-dir", str(tmp_path),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: stacks/Pulumi.dev.yaml: cofounder:network.singleNatGateway = 3 "
                                   "is not allowed: expected true or false")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_unknown_stack_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "toolkit.preview", "--stack", "qa", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "stacks/Pulumi.qa.yaml does not exist: known stacks are dev, prod, staging" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_large_bounds_are_written_out_in_full():
    from components import Between
    from infra.config import Reader
    reader = Reader("stacks/Pulumi.dev.yaml")
    with pytest.raises(ConfigError) as err:
        reader.value("cofounder:x.ttlSeconds", "31536001", int, Between(0, 31536000))
    assert str(err.value).endswith("expected a whole number between 0 and 31536000")
    assert Between(0, 31536000).describe() == "a value between 0 and 31536000"
# --- cofounder:cluster ------------------------------------------------------------------------


def _dev_cluster(**changes) -> dict:
    """The dev stack's cluster block with ``changes`` applied (``a.b`` paths into nested mappings)."""
    import copy

    import yaml
    block = copy.deepcopy(yaml.safe_load((REPO / "stacks" / "Pulumi.dev.yaml").read_text())["config"][
        "cofounder:cluster"])
    for path, value in changes.items():
        *parents, last = path.split(".")
        target = block
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return block


@pytest.mark.parametrize("changes, expected", [
    ({"nodeGroups.apps.minSize": 5, "nodeGroups.apps.maxSize": 4},
     "cofounder:cluster.nodeGroups.apps.minSize = 5 is not allowed: expected below maxSize (4)"),
    ({"nodeGroups.apps.desiredSize": 9},
     "cofounder:cluster.nodeGroups.apps.desiredSize = 9 is not allowed: expected between minSize (0) and maxSize (5)"),
    ({"nodeGroups.system.instanceTypes": []},
     "cofounder:cluster.nodeGroups.system.instanceTypes = [] is not allowed: "
     "expected at least one EC2 instance type such as m6i.large"),
    ({"nodeGroups.system.instanceTypes": ["large"]},
     "cofounder:cluster.nodeGroups.system.instanceTypes[0] = 'large' is not allowed: "
     "expected an EC2 instance type of capacity/instance-classes.yaml (t3.{medium,large,xlarge}, "),
    ({"nodeGroups.system.instanceTypes": ["m8g.large"]},
     "cofounder:cluster.nodeGroups.system.instanceTypes[0] = 'm8g.large' is not allowed: expected an EC2 instance "
     "type of capacity/instance-classes.yaml ("),
    ({"nodeGroups.apps.instanceTypes": ["t3.large"]},
     "cofounder:cluster.nodeGroups.apps.instanceTypes = [\"t3.large\"] is not allowed: "
     "expected at least two instance types for SPOT capacity (diversified pools)"),
    ({"nodeGroups.apps.capacityType": "RESERVED"},
     "cofounder:cluster.nodeGroups.apps.capacityType = 'RESERVED' is not allowed: expected one of ON_DEMAND, SPOT"),
    ({"nodeGroups.system.taints": [{"key": "CriticalAddonsOnly", "effect": "NoRun"}]},
     "cofounder:cluster.nodeGroups.system.taints[0].effect = 'NoRun' is not allowed: "
     "expected one of NoSchedule, NoExecute, PreferNoSchedule"),
    ({"nodeGroups.apps.maxUnavailable": 0},
     "cofounder:cluster.nodeGroups.apps.maxUnavailable = 0 is not allowed: expected a value between 1 and 100"),
    ({"nodeGroups": {"system": {"instanceTypes": ["m6i.large"], "maxSize": 2}}},
     "cofounder:cluster.nodeGroups = [\"system\"] is not allowed: "
     "expected node groups named system and apps (missing: apps)"),
    ({"endpointPrivateAccessCidrs": ["203.0.113.0/24"]},
     "cofounder:cluster.endpointPrivateAccessCidrs[0] = '203.0.113.0/24' is not allowed: "
     "expected a private IPv4 CIDR block (RFC 1918) such as 10.30.0.0/16"),
    ({"endpointPublicAccessCidrs": ["0.0.0.0/0"]},
     "cofounder:cluster.endpointPublicAccessCidrs[0] = '0.0.0.0/0' is not allowed: "
     "expected a restricted CIDR block; the API endpoint must never be open to 0.0.0.0/0"),
    ({"endpointPublicAccessCidrs": []},
     "cofounder:cluster.endpointPublicAccessCidrs = [] is not allowed: "
     "expected at least one CIDR while endpointPublicAccess is true (EKS would default to 0.0.0.0/0)"),
    ({"endpointPublicAccessCidrs": ["office"]},
     "cofounder:cluster.endpointPublicAccessCidrs[0] = 'office' is not allowed: expected an IPv4 CIDR block"),
    ({"kubernetesVersion": "1.34.2"},
     "cofounder:cluster.kubernetesVersion = '1.34.2' is not allowed: expected a Kubernetes minor version such as 1.34"),
    ({"kubernetesVersion": "1.35"},
     "cofounder:cluster.addonVersions.kubeProxy = 'v1.34.0-eksbuild.2' is not allowed: "
     "expected a kube-proxy build for Kubernetes 1.35 (v1.35.x-eksbuild.N)"),
    ({"addonVersions.coredns": "latest"},
     "cofounder:cluster.addonVersions.coredns = 'latest' is not allowed: "
     "expected an EKS add-on version such as v1.20.4-eksbuild.2"),
    ({"adminRoleArns": []},
     "cofounder:cluster.adminRoleArns = [] is not allowed: expected at least one IAM role ARN"),
    ({"adminRoleArns": ["arn:aws:iam::123456789012:user/alice"]},
     "cofounder:cluster.adminRoleArns[0] = 'arn:aws:iam::123456789012:user/alice' is not allowed: "
     "expected an IAM role ARN"),
    ({"enabledLogTypes": ["api", "everything"]},
     "cofounder:cluster.enabledLogTypes[1] = 'everything' is not allowed: "
     "expected one of api, audit, authenticator, controllerManager, scheduler"),
    ({"autoscaler.scanInterval": "10 seconds"},
     "cofounder:cluster.autoscaler.scanInterval = '10 seconds' is not allowed: expected a duration such as 10s, 5m or 1h"),
    ({"autoscaler.expander": "cheapest"},
     "cofounder:cluster.autoscaler.expander = 'cheapest' is not allowed: "
     "expected one of least-waste, priority, most-pods, random"),
    ({"headroom.replicas": -1},
     "cofounder:cluster.headroom.replicas = -1 is not allowed: expected a value between 0 and 200"),
    ({"appNamespace": "CoFounder"},
     "cofounder:cluster.appNamespace = 'CoFounder' is not allowed: expected a namespace name"),
    ({"nodeGroup": {}},
     "cofounder:cluster.nodeGroup is not a known setting: did you mean 'nodeGroups'?"),
])
def test_bad_cluster_config_fails_with_a_clear_message(run_stack_with, changes, expected):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:cluster": _dev_cluster(**changes)})
    assert str(err.value).startswith("stacks/Pulumi.dev.yaml: " + expected)
    assert "\n" not in str(err.value)


def test_cluster_section_is_required(run_stack_with):
    with pytest.raises(ConfigError, match="cofounder:cluster.adminRoleArns is missing"):
        run_stack_with("dev", {"cofounder:cluster": None})


def test_cluster_defaults_apply_where_the_stack_is_silent(run_stack_with):
    block = _dev_cluster()
    for key in ("autoscaler", "headroom", "metricsServer", "logRetentionDays"):
        block.pop(key)
    program = run_stack_with("dev", {"cofounder:cluster": block})
    from toolkit.harness import reveal
    cluster = program.one("aws:eks/cluster:Cluster").inputs
    assert cluster["enabledClusterLogTypes"] == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    extra = reveal(program.one("kubernetes:helm.sh/v3:Release", "cluster-autoscaler-release").inputs["values"])[
        "extraArgs"]
    assert (extra["expander"], extra["scale-down-unneeded-time"], extra["scan-interval"]) == ("least-waste", "10m", "10s")
    assert program.outputs["headroom"]["replicas"] == 1
@pytest.mark.parametrize("section, block, expected", [
    ("monitoring", {"retentionDays": 0},
     "cofounder:monitoring.retentionDays = 0 is not allowed: expected a value between 1 and 365"),
    ("monitoring", {"storageGib": 50, "retentionSizeGib": 50},
     "cofounder:monitoring.retentionSizeGib = 50 is not allowed: expected at most 90% of storageGib (45)"),
    ("monitoring", {"chartVersion": "latest"},
     "cofounder:monitoring.chartVersion = 'latest' is not allowed: expected a value matching"),
    ("cloudwatchAlarms", {"alarmEmail": "oncall"},
     "cofounder:cloudwatchAlarms.alarmEmail = 'oncall' is not allowed: expected a value matching"),
    ("alertRules", {"latencyForMinutes": 0},
     "cofounder:alertRules.latencyForMinutes = 0 is not allowed: expected a value between 1 and 60"),
    ("alertRules", {"latencyForMinute": 5},
     "cofounder:alertRules.latencyForMinute is not a known setting: did you mean 'latencyForMinutes'?"),
    ("scrape", {"apps": [{"name": "web", "kind": "Pod"}]},
     "cofounder:scrape.apps[0].kind = 'Pod' is not allowed: expected one of ServiceMonitor, PodMonitor"),
    ("scrape", {"apps": [{"port": "http"}]}, "cofounder:scrape.apps[0].name is missing"),
    ("scrape", {"apps": [{"name": "web"}, {"name": "web"}]},
     "cofounder:scrape.apps = [\"web\", \"web\"] is not allowed: expected distinct app names"),
    ("monitoring", {"nodeSelector": ["system"]},
     "cofounder:monitoring.nodeSelector = [\"system\"] is not allowed: expected a mapping"),
])
def test_bad_observability_config_fails_with_a_clear_message(run_stack_with, section, block, expected):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {f"cofounder:{section}": block})
    assert str(err.value).startswith(f"stacks/Pulumi.dev.yaml: {expected}")
    assert "\n" not in str(err.value)


def test_observability_defaults_are_the_seed_targets():
    from capacity.scale_up import ScalingSettings
    from components.alert_rules import AlertRulesSettings
    from components.monitoring_stack import MonitoringStackSettings
    from components.service_monitors import ScrapeTargetsSettings
    monitoring, alerts = MonitoringStackSettings(), AlertRulesSettings()
    assert (monitoring.enabled, monitoring.grafana_enabled, alerts.latency_for_minutes, alerts.pod_pending_seconds,
            alerts.hpa_at_max_minutes) == (True, True, 5, 60, 10)
    assert ScalingSettings().p99_latency_ms == 200  # the seed's p99 target, shared with the load test
    assert [(a.name, a.kind, a.port) for a in ScrapeTargetsSettings().apps] == [
        ("frontend", "ServiceMonitor", "http"), ("backend", "ServiceMonitor", "http"),
        ("worker", "ServiceMonitor", "http")]
    assert monitoring.retention_size_gib <= monitoring.storage_gib * 0.9


@pytest.mark.parametrize("key, value, expected", [
    ("cofounder:dbPassword", "hunter2",
     "stacks/Pulumi.dev.yaml: cofounder:dbPassword is a secret the program generates: the database password "
     "(components/postgres.py, RandomPassword), kept as a Pulumi secret; remove the key from the stack file"),
    ("cofounder:openaiApiKey", "sk-123",
     "stacks/Pulumi.dev.yaml: cofounder:openaiApiKey is not a known setting and reads as a secret: never put one "
     "in a stack file in plain text; a secret the program reads is declared as a setting and set with "
     "`pulumi config set --secret cofounder:openaiApiKey <value>`"),
])
def test_a_secret_in_a_stack_file_gets_secret_advice_not_a_list_of_keys(key, value, expected):
    from infra.config import parse
    config = {**load_stack_file("dev").config, key: value}
    with pytest.raises(ConfigError) as err:
        parse("dev", config)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)
    assert "hunter2" not in str(err.value) and "sk-123" not in str(err.value)
    # nested in a section too
    nested = {**load_stack_file("dev").config, "cofounder:postgres": '{"password": "hunter2"}'}
    with pytest.raises(ConfigError) as err:
        parse("dev", nested)
    assert "cofounder:postgres.password is a secret the program generates" in str(err.value)


def test_invalid_yaml_names_the_stack_file_line_and_column(tmp_path):
    from toolkit.stackfile import StackFileError
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n   cofounder:x: [\n")
    with pytest.raises(StackFileError) as err:
        load_stack_file("dev", tmp_path)
    message = str(err.value)
    assert message.startswith("stacks/Pulumi.dev.yaml, line 3, column ") and "is not valid YAML: " in message
    assert "<unicode string>" not in message and "\n" not in message
