"""Whole-stack tests: every stack file synthesizes, and the environments differ only as configured."""

from __future__ import annotations

import json

import pytest

from tests.conftest import STACKS
from toolkit import snapshot
from toolkit.preview import preview, render
from toolkit.reports import build_reports


def test_the_three_environments_exist():
    assert STACKS == ["dev", "prod", "staging"]


@pytest.mark.parametrize("stack", STACKS)
def test_stack_synthesizes(stack_program, stack):
    program = stack_program(stack)
    assert program.one("aws:ec2/vpc:Vpc")
    assert len(program.outputs["privateSubnetIds"]) == 3
    # every custom resource hangs under a component: nothing is declared loose in the program
    for r in program.resources:
        if r.custom:
            assert r.parent is not None, r.urn


def test_dev_saves_on_nat_while_prod_has_one_per_zone(stack_program):
    assert len(stack_program("dev").of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert len(stack_program("prod").of_type("aws:ec2/natGateway:NatGateway")) == 3


@pytest.mark.parametrize("stack", STACKS)
def test_preview_snapshot_is_byte_stable_and_secret_free(tmp_path, stack, stack_program):
    """A fresh preview equals, byte for byte, what the session's earlier run of the same stack
    (another run of the program, in another order of tests) gives."""
    text1, path = preview(stack, tmp_path / "a")
    earlier = stack_program(stack)
    reports = build_reports(earlier)
    assert path.read_text() == snapshot.dumps(snapshot.build(earlier, reports))
    assert text1 == render(earlier, snapshot.mask(reports, sort=False))
    doc = json.loads(path.read_text())
    assert doc["format"] == snapshot.FORMAT
    assert "No cloud was contacted" in doc["note"]
    assert "No cloud was contacted" in text1
    assert [r["urn"] for r in doc["resources"]] == sorted(r["urn"] for r in doc["resources"])
    assert "1b47061264138c4ac30d75fd1eb44270" not in path.read_text()  # no secret wrapper survives


def test_mask_hides_secrets_but_shows_their_change():
    from toolkit.harness import SECRET_SIG, SECRET_SIG_VALUE
    a = snapshot.mask({"password": {SECRET_SIG: SECRET_SIG_VALUE, "value": "hunter2"}})
    b = snapshot.mask({"password": {SECRET_SIG: SECRET_SIG_VALUE, "value": "hunter3"}})
    assert a["password"].startswith("[secret:") and "hunter" not in json.dumps(a)
    assert a != b


def test_edge_in_every_stack_protected_in_prod_cheap_in_dev(stack_program):
    for stack in STACKS:
        program = stack_program(stack)
        assert program.outputs["edgeDomainName"].endswith(".cloudfront.net")
        assert program.outputs["edgeBucketName"]
        dist = program.one("aws:cloudfront/distribution:Distribution").inputs
        assert [b["pathPattern"] for b in dist["orderedCacheBehaviors"]] == ["api/*", "_next/static/*", "public/*"]
    prod, dev = stack_program("prod"), stack_program("dev")
    assert prod.one("aws:cloudfront/distribution:Distribution").inputs["priceClass"] == "PriceClass_All"
    assert dev.one("aws:cloudfront/distribution:Distribution").inputs["priceClass"] == "PriceClass_100"
    for bucket in prod.of_type("aws:s3/bucket:Bucket"):
        assert bucket.options["protect"] is True and bucket.inputs["forceDestroy"] is False
    for bucket in dev.of_type("aws:s3/bucket:Bucket"):
        assert bucket.options["protect"] is False and bucket.inputs["forceDestroy"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_data_tier_is_declared_private_and_secret_free(stack_program, stack, validate_k8s):
    from tests.conftest import secret_leaks
    from toolkit.harness import reveal
    program = stack_program(stack)
    for type_ in ("cofounder:data:Postgres", "cofounder:data:Redis", "cofounder:data:Queue"):
        assert program.one(type_)
    db = program.one("aws:rds/instance:Instance")
    assert db.inputs["publiclyAccessible"] is False
    # both data stores live in the stack's private subnets
    private = program.outputs["privateSubnetIds"]
    assert program.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"] == private
    assert program.one("aws:elasticache/subnetGroup:SubnetGroup").inputs["subnetIds"] == private
    vpc_id = program.one("aws:ec2/vpc:Vpc").outputs["id"]
    for sg in program.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert sg.inputs["vpcId"] == vpc_id
    # only the EKS cluster security group (nodes and pods, PgBouncer included) reaches 5432 and 6379
    cluster_sg = program.one("aws:eks/cluster:Cluster").outputs["vpcConfig"]["clusterSecurityGroupId"]
    rules = program.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted(r.inputs["fromPort"] for r in rules if r.inputs.get("referencedSecurityGroupId") == cluster_sg) \
        == [5432, 6379]
    # PgBouncer and the app settings run in the app namespace, sized as the budget says
    bouncer = next(r for r in program.of_type("kubernetes:apps/v1:Deployment")
                   if r.inputs["metadata"]["name"] == "pgbouncer")
    assert bouncer.inputs["metadata"]["namespace"] == program.outputs["appNamespace"]
    assert bouncer.inputs["spec"]["replicas"] == program.outputs["connectionBudget"]["pgbouncerReplicas"]
    # every Secret/ConfigMap an app loads with envFrom is one the data tier declares, in its namespace
    declared = {(r.type.split(":")[-1], r.outputs["metadata"]["name"]) for r in program.resources
                if r.type in ("kubernetes:core/v1:Secret", "kubernetes:core/v1:ConfigMap")
                and r.inputs.get("metadata", {}).get("namespace") == program.outputs["appNamespace"]}
    # ... or one External Secrets Operator writes for an ExternalSecret the data tier declares
    declared |= {("Secret", r.inputs["spec"]["target"]["name"]) for r in program.resources
                 if r.type == "kubernetes:external-secrets.io/v1:ExternalSecret"
                 and r.inputs["metadata"]["namespace"] == program.outputs["appNamespace"]}
    for deployment in program.of_type("kubernetes:apps/v1:Deployment"):
        for container in deployment.inputs["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                kind, ref = ("Secret", source["secretRef"]) if "secretRef" in source else \
                    ("ConfigMap", source["configMapRef"])
                assert (kind, ref["name"]) in declared, (deployment.name, ref)
    assert program.outputs["appDataSecretNames"] == {"backend": ["backend-database", "backend-redis"],
                                                     "worker": ["worker-database", "worker-redis"]}
    database = program.one("kubernetes:external-secrets.io/v1:ExternalSecret", "app-data-backend-database")
    assert set(database.inputs["spec"]["target"]["template"]["data"]) == {"DATABASE_URL", "DATABASE_URL_POOLED"}
    assert set(reveal(program.outputs["databaseLogins"]).values()) <= {"app_a", "app_b", "migrator_a", "migrator_b",
                                                                       "pgbouncer_auth_a", "pgbouncer_auth_b"}
    for r in program.resources:
        if r.custom and program.component_of(r) and program.component_of(r).type in (
                "cofounder:data:PgBouncer", "cofounder:data:AppDataSettings", "cofounder:data:DatabaseRoles") \
                and r.type.startswith("kubernetes:") and ".io/" not in r.type:
            validate_k8s(r)
    # generated passwords and tokens appear only inside secret wrappers, in inputs and outputs alike
    assert len(program.of_type("random:index/randomPassword:RandomPassword")) >= 3  # + Grafana admin
    assert secret_leaks(program) == []


def test_prod_protects_every_stateful_data_resource_and_dev_none(stack_program):
    stateful = ("aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup", "aws:sqs/queue:Queue")
    for stack, protected in (("prod", True), ("dev", False)):
        program = stack_program(stack)
        for type_ in stateful:
            for r in program.of_type(type_):
                assert r.options["protect"] is protected, (stack, r.urn)
        # the data tier's KMS keys: deleting one makes its store's data, snapshots or logs unreadable
        data_keys = [r for r in program.of_type("aws:kms/key:Key")
                     if program.component_of(r) and program.component_of(r).type.startswith("cofounder:data:")]
        # Postgres storage, its exported logs and its secrets; Redis and its users' secrets
        assert len(data_keys) == 5, (stack, [r.urn for r in data_keys])
        for r in data_keys:
            assert r.options["protect"] is protected, (stack, r.urn)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_runs_the_eks_platform_in_private_subnets(stack_program, stack):
    from toolkit.harness import is_secret
    program = stack_program(stack)
    cluster = program.one("aws:eks/cluster:Cluster").inputs
    assert cluster["name"] == f"cofounder-{stack}-eks"
    assert cluster["version"] == "1.34"
    assert cluster["vpcConfig"]["subnetIds"] == program.outputs["privateSubnetIds"]
    assert cluster["vpcConfig"]["endpointPrivateAccess"] is True
    assert "0.0.0.0/0" not in cluster["vpcConfig"].get("publicAccessCidrs", [])
    groups = {g.name: g.inputs for g in program.of_type("aws:eks/nodeGroup:NodeGroup")}
    zones = ["us-east-1a", "us-east-1b", "us-east-1c"]
    # the system pool (Prometheus' EBS volume) is one group per zone, each in its zone's subnet
    assert set(groups) == {"platform-apps", *(f"platform-system-{z}" for z in zones)}
    assert groups["platform-apps"]["subnetIds"] == program.outputs["privateSubnetIds"]
    assert [groups[f"platform-system-{z}"]["subnetIds"] for z in zones] == \
        [[subnet] for subnet in program.outputs["privateSubnetIds"]]
    for g in groups.values():
        s = g["scalingConfig"]
        assert s["minSize"] <= s["desiredSize"] <= s["maxSize"] and s["minSize"] < s["maxSize"]
    charts = {r.inputs["chart"]: r for r in program.of_type("kubernetes:helm.sh/v3:Release")}
    assert {"cluster-autoscaler", "metrics-server"} <= set(charts)
    provider = program.one("pulumi:providers:kubernetes").urn
    assert all(r.options["provider"] == provider for r in program.resources
               if r.custom and r.type.startswith("kubernetes:"))
    assert is_secret(program.outputs["kubeconfig"])
    assert program.outputs["clusterName"] == f"cofounder-{stack}-eks"
    assert program.outputs["oidcIssuerUrl"].startswith("https://oidc.eks.us-east-1.amazonaws.com/id/")
    assert program.outputs["appNamespace"] == "cofounder"


def test_dev_is_small_and_cheap_while_prod_is_private_on_demand_and_sized_for_scale(stack_program):
    dev = {g.name: g.inputs for g in stack_program("dev").of_type("aws:eks/nodeGroup:NodeGroup")}
    prod = {g.name: g.inputs for g in stack_program("prod").of_type("aws:eks/nodeGroup:NodeGroup")}
    assert dev["platform-apps"]["capacityType"] == "SPOT"
    assert all(g["capacityType"] == "ON_DEMAND" for g in prod.values())
    assert prod["platform-apps"]["scalingConfig"]["maxSize"] >= 10 * dev["platform-apps"]["scalingConfig"]["maxSize"]
    assert sum(g["scalingConfig"]["minSize"] for n, g in prod.items() if "-system-" in n) >= 3  # one per zone
    assert stack_program("prod").one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert stack_program("dev").outputs["headroom"]["totalCpuMillicores"] < \
        stack_program("prod").outputs["headroom"]["totalCpuMillicores"]


@pytest.mark.parametrize("stack", STACKS)
def test_headroom_report_matches_the_placeholder_deployment(stack_program, stack):

    program = stack_program(stack)
    rep = build_reports(program)["headroom"]
    figures = program.outputs["headroom"]
    (row,) = rep["rows"]
    assert row["replicas"] == figures["replicas"]
    assert row["total cpu"] == f"{figures['totalCpuMillicores']}m"
    assert row["total memory"] == f"{figures['totalMemoryMib']}Mi"
    assert rep["ok"] is True
    assert any("10s" in note for note in rep["notes"])  # the autoscaler scan interval


def test_preview_shows_the_platform(tmp_path):
    text, _ = preview("prod", tmp_path)
    assert "platform  [cofounder:cluster:EksCluster]" in text
    assert "vpcConfig.endpointPublicAccess=false" in text
    assert 'scalingConfig={"desiredSize": 6, "maxSize": 60, "minSize": 3}' in text
    assert "chart=cluster-autoscaler version=9.53.0" in text
    assert "metadataOptions.httpTokens=required" in text
    assert "Pre-warmed headroom (placeholder pods)" in text


@pytest.mark.parametrize("stack", STACKS)
def test_app_tier_runs_on_the_cluster_with_one_autoscaler_per_app(stack_program, stack):
    from collections import Counter



    program = stack_program(stack)
    cluster_provider = program.one("pulumi:providers:kubernetes").urn
    apps = {r.inputs["metadata"]["name"]: r for r in program.of_type("kubernetes:apps/v1:Deployment")
            if program.component_of(r).type == "cofounder:apps:AppService"}
    assert set(apps) == {"frontend", "backend", "worker"}
    for dep in apps.values():
        assert dep.options["provider"] == cluster_provider
        assert dep.inputs["metadata"]["namespace"] == "cofounder"
    autoscalers = [r for t in ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler",
                               "kubernetes:keda.sh/v1alpha1:ScaledObject") for r in program.of_type(t)]
    assert Counter(r.inputs["spec"]["scaleTargetRef"]["name"] for r in autoscalers) == {n: 1 for n in apps}
    rows = {r["app"]: r for r in build_reports(program)["time-to-scale"]["rows"]}
    assert all(rows[app]["ok"] for app in ("backend", "worker"))


@pytest.mark.parametrize("stack, goal, coverage_required", [
    ("dev", 60, False), ("staging", 60, True), ("prod", 45, True)])
def test_time_to_scale_uses_the_stack_targets_and_headroom(stack_program, stack, goal, coverage_required):
    program = stack_program(stack)
    targets = program.outputs["scalingTargets"]
    assert targets["timeToScaleGoalSeconds"] == goal
    assert targets["requireHeadroomCoverage"] is coverage_required
    rep = build_reports(program)["time-to-scale"]
    assert rep["ok"] is True
    assert {r["goal"] for r in rep["rows"] if r["app"] in ("backend", "worker")} == {f"{goal}s"}
    headroom_note = rep["notes"][-1]
    if coverage_required:
        # the first scale-up step of every app at once starts on pre-warmed capacity
        assert "covered, they start on running nodes" in headroom_note
    else:
        assert "NOT covered" in headroom_note and "does not require coverage" in headroom_note


@pytest.mark.parametrize("stack", STACKS)
def test_alarm_topic_is_encrypted_and_exported(stack_program, stack):
    program = stack_program(stack)
    topic = program.one("aws:sns/topic:Topic", "alarms-topic")
    assert topic.inputs["name"] == f"cofounder-{stack}-alarms"
    assert topic.inputs["kmsMasterKeyId"] == program.one("aws:kms/key:Key", "alarms-topic-key").outputs["arn"]
    assert program.outputs["alarmTopicArn"] == topic.outputs["arn"]
    assert program.component_of(topic).type == "cofounder:observability:CloudWatchAlarms"


def test_prometheus_keeps_more_history_in_prod(run_program):
    from infra import config
    from toolkit.stackfile import load_stack_file

    loaded = {}
    for stack in STACKS:
        stack_file = load_stack_file(stack)
        run_program(lambda s=stack: loaded.__setitem__(s, config.load()), stack=stack, config=stack_file.config)
    monitoring = {s: c.monitoring for s, c in loaded.items()}
    assert monitoring["dev"].retention_days < monitoring["staging"].retention_days < monitoring["prod"].retention_days
    assert monitoring["prod"].storage_gib >= 200 and monitoring["prod"].scrape_interval_seconds == 15
    assert {s: c.alert_rules.latency_for_minutes for s, c in loaded.items()} == {"dev": 5, "prod": 5, "staging": 5}


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_runs_the_monitoring_stack_in_the_cluster(stack_program, stack):
    from toolkit.harness import reveal
    program = stack_program(stack)
    release = program.one("kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")
    assert release.inputs["chart"] == "kube-prometheus-stack" and release.inputs["namespace"] == "monitoring"
    assert release.options["provider"] == program.one("pulumi:providers:kubernetes").urn
    values = reveal(release.inputs["values"])
    grafana = values["grafana"]
    # Grafana reads CloudWatch through IRSA on the cluster's OIDC provider
    role = program.one("aws:iam/role:Role", "monitoring-grafana-role")
    assert grafana["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == role.outputs["arn"]
    assert program.outputs["grafanaAdminSecret"] == "grafana-admin"
    monitors = program.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor") + \
        program.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    rules = program.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    assert len(monitors) == 6 and len(rules) == 1
    for cr in monitors + rules:
        assert release.urn in cr.options["dependsOn"]
    app_monitors = [m for m in monitors if m.inputs["metadata"]["name"] in
                    ("cofounder-frontend", "cofounder-backend", "cofounder-worker", "cofounder-pgbouncer")]
    assert {m.inputs["spec"]["namespaceSelector"]["matchNames"][0] for m in app_monitors} == {
        program.outputs["appNamespace"]}
    assert len(program.of_type("kubernetes:core/v1:ConfigMap")) >= 3


def test_prod_monitoring_runs_on_the_system_nodes_dev_anywhere(stack_program):
    from toolkit.harness import reveal

    def spec(stack):
        release = stack_program(stack).one("kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")
        return reveal(release.inputs["values"])["prometheus"]["prometheusSpec"]
    prod, dev = spec("prod"), spec("dev")
    assert prod["nodeSelector"] == {"node-pool": "system"}
    assert prod["tolerations"] == [
        {"key": "CriticalAddonsOnly", "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    assert dev["nodeSelector"] == {} and dev["tolerations"] == []
    assert (prod["retention"], prod["retentionSize"]) == ("30d", "180GB")
    assert prod["storageSpec"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "200Gi"


def test_preview_shows_the_observability_stack(tmp_path):
    text, _ = preview("prod", tmp_path)
    assert "monitoring  [cofounder:observability:MonitoringStack]" in text
    assert "chart=kube-prometheus-stack version=79.7.1 namespace=monitoring" in text
    assert "values.prometheus.prometheusSpec.retention=30d" in text
    assert "alerts  [cofounder:observability:AlertRules]" in text
    assert "scrape  [cofounder:observability:ScrapeTargets]" in text
    assert "alarms  [cofounder:observability:CloudWatchAlarms]" in text


@pytest.mark.parametrize("stack", STACKS)
def test_app_monitors_match_the_app_services(stack_program, stack):
    """The scrape contract holds against what AppService declares: labels and port names."""
    program = stack_program(stack)
    services = program.of_type("kubernetes:core/v1:Service")
    monitors = [m for m in program.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
                if m.inputs["spec"]["namespaceSelector"]["matchNames"] == [program.outputs["appNamespace"]]]
    assert {m.inputs["metadata"]["name"] for m in monitors} == {
        "cofounder-frontend", "cofounder-backend", "cofounder-worker"}
    for monitor in monitors:
        wanted = monitor.inputs["spec"]["selector"]["matchLabels"]
        port = monitor.inputs["spec"]["endpoints"][0]["port"]
        matching = [s for s in services
                    if s.inputs["metadata"].get("namespace") == program.outputs["appNamespace"]
                    and wanted.items() <= s.inputs["metadata"].get("labels", {}).items()]
        assert len(matching) == 1, monitor.inputs["metadata"]["name"]
        assert port in [p["name"] for p in matching[0].inputs["spec"]["ports"]]


def test_observability_watches_the_data_tier(stack_program):
    """The PgBouncer PodMonitor selects the PgBouncer pods on their metrics port, and the
    CloudWatch alarms name the data tier's instance, replication group and queues."""
    program = stack_program("prod")
    monitors = [r for r in program.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
                if "pgbouncer" in r.name]
    assert monitors, "no PgBouncer PodMonitor"
    selector = monitors[0].inputs["spec"]["selector"]["matchLabels"]
    bouncer = next(r for r in program.of_type("kubernetes:apps/v1:Deployment")
                   if r.inputs["metadata"]["name"] == "pgbouncer")
    pod = bouncer.inputs["spec"]["template"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert monitors[0].inputs["spec"]["podMetricsEndpoints"][0]["port"] in ports
    alarms = [r.inputs for r in program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")]
    dimensions = json.dumps(alarms)
    for name in ("cofounder-prod-postgres", "cofounder-prod-redis"):
        assert name in dimensions, name
    queues = {a["dimensions"]["QueueName"]: a for a in alarms if a["namespace"] == "AWS/SQS"}
    for tier in ("high", "normal", "low"):
        assert f"cofounder-prod-agent-execution-{tier}" in queues and f"cofounder-prod-agent-execution-{tier}-dlq" in queues
    # the backlog alarm fires above what the worker runs at maxReplicas: 40 pods x 5 runs
    backlog = {a["name"]: a for a in alarms}["cofounder-prod-sqs-high-backlog"]
    assert backlog["threshold"] == 200


def test_the_metric_adapter_installs_after_the_monitoring_stack(stack_program):
    """prometheus-adapter goes into the monitoring namespace and queries its Prometheus: it waits
    for the monitoring stack (and is removed before it on destroy)."""
    program = stack_program("prod")
    release = program.one("kubernetes:helm.sh/v3:Release", "prometheus-adapter-release")
    monitoring = program.one("cofounder:observability:MonitoringStack")
    assert release.options["dependsOn"] == [monitoring.urn]


def test_cloudwatch_alarms_do_not_depend_on_in_cluster_monitoring(run_stack_with):
    """Turning off the in-cluster monitoring (with an external Prometheus) keeps the AWS alarms."""
    overrides = {
        "cofounder:monitoring": {"enabled": False},
        "cofounder:prometheusAdapter": {"prometheusUrl": "http://prometheus.example.internal"},
    }
    program = run_stack_with("dev", overrides)
    assert not program.of_type("cofounder:observability:MonitoringStack")
    assert program.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert "alarmTopicArn" in program.outputs
    adapter = program.one("kubernetes:helm.sh/v3:Release", "prometheus-adapter-release")
    assert adapter.inputs["values"]["prometheus"]["url"] == "http://prometheus.example.internal"
    assert not adapter.options.get("dependsOn")
    no_alarms = run_stack_with("dev", {**overrides, "cofounder:cloudwatchAlarms": {"enabled": False}})
    assert not no_alarms.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")


def test_monitoring_off_with_the_in_cluster_prometheus_is_refused(run_stack_with):
    from infra.config import ConfigError
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:monitoring": {"enabled": False}})
    assert str(err.value) == (
        "stacks/Pulumi.dev.yaml: cofounder:monitoring.enabled = false is not allowed: expected true "
        "while cofounder:prometheusAdapter.prometheusUrl is the in-cluster Prometheus "
        "(http://kube-prometheus-stack-prometheus.monitoring.svc) that prometheus-adapter and KEDA query; "
        "or point prometheusUrl at your own Prometheus")


def test_the_pool_under_prometheus_cannot_go_back_to_one_group_across_zones(run_stack_with):
    from infra.config import ConfigError
    from toolkit.stackfile import load_stack_file
    cluster = json.loads(load_stack_file("dev").config["cofounder:cluster"])
    system = {k: v for k, v in cluster["nodeGroups"]["system"].items() if k != "oneGroupPerZone"}
    spanning = {**cluster, "nodeGroups": {**cluster["nodeGroups"], "system": system}}
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:cluster": spanning})
    assert str(err.value) == (
        "stacks/Pulumi.dev.yaml: cofounder:cluster.nodeGroups.system.oneGroupPerZone = false is not allowed: "
        "expected true while cofounder:monitoring.enabled is true: Prometheus keeps its data on an EBS volume "
        "on these nodes, and a group spanning zones may replace a lost node in another zone, where the pod "
        "cannot follow its volume")


@pytest.mark.parametrize("stack", STACKS)
def test_every_aws_resource_is_tagged_with_project_and_stack(stack):
    """The provider's default tags carry project and stack; components add their own tag."""
    import json as _json

    from toolkit.stackfile import load_stack_file
    tags = _json.loads(load_stack_file(stack).config["aws:defaultTags"])["tags"]
    assert tags["project"] == "cofounder"
    assert tags["stack"] == stack and tags["environment"] == stack
