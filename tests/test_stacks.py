"""Whole-stack tests: every stack file synthesizes, and the environments differ only as configured."""

from __future__ import annotations

import json

import pytest

from tests.conftest import STACKS
from toolkit import snapshot
from toolkit.preview import preview


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
def test_preview_snapshot_is_byte_stable_and_secret_free(tmp_path, stack):
    text1, path = preview(stack, tmp_path / "a")
    text2, path2 = preview(stack, tmp_path / "b")
    assert path.read_bytes() == path2.read_bytes()
    assert text1 == text2
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
        assert [b["pathPattern"] for b in dist["orderedCacheBehaviors"]] == ["_next/static/*", "public/*"]
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
    for deployment in program.of_type("kubernetes:apps/v1:Deployment"):
        for container in deployment.inputs["spec"]["template"]["spec"]["containers"]:
            for source in container.get("envFrom", []):
                kind, ref = ("Secret", source["secretRef"]) if "secretRef" in source else \
                    ("ConfigMap", source["configMapRef"])
                assert (kind, ref["name"]) in declared, (deployment.name, ref)
    assert program.outputs["appDataSecretNames"] == ["cofounder-database", "cofounder-redis"]
    database = program.one("kubernetes:core/v1:Secret", "app-data-database")
    assert set(reveal(database.inputs["stringData"])) == {"DATABASE_URL", "DATABASE_URL_POOLED"}
    for r in program.resources:
        if r.custom and program.component_of(r) and program.component_of(r).type in (
                "cofounder:data:PgBouncer", "cofounder:data:AppDataSettings") and r.type.startswith("kubernetes:"):
            validate_k8s(r)
    # generated passwords and tokens appear only inside secret wrappers, in inputs and outputs alike
    assert len(program.of_type("random:index/randomPassword:RandomPassword")) == 3
    assert secret_leaks(program) == []


def test_prod_protects_every_stateful_data_resource_and_dev_none(stack_program):
    stateful = ("aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup", "aws:sqs/queue:Queue")
    for stack, protected in (("prod", True), ("dev", False)):
        program = stack_program(stack)
        for type_ in stateful:
            for r in program.of_type(type_):
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
    assert set(groups) == {"platform-system", "platform-apps"}
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
    assert prod["platform-system"]["scalingConfig"]["minSize"] >= 3  # one per zone
    assert stack_program("prod").one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["endpointPublicAccess"] is False
    assert stack_program("dev").outputs["headroom"]["totalCpuMillicores"] < \
        stack_program("prod").outputs["headroom"]["totalCpuMillicores"]


@pytest.mark.parametrize("stack", STACKS)
def test_headroom_report_matches_the_placeholder_deployment(stack_program, stack):
    from toolkit.reports import build_reports
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

    from toolkit.reports import build_reports

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
