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
def test_data_tier_is_declared_private_and_secret_free(stack_program, stack):
    from tests.conftest import secret_leaks
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
    # generated passwords and tokens appear only inside secret wrappers, in inputs and outputs alike
    assert len(program.of_type("random:index/randomPassword:RandomPassword")) >= 2
    assert secret_leaks(program) == []


def test_prod_protects_every_stateful_data_resource_and_dev_none(stack_program):
    stateful = ("aws:rds/instance:Instance", "aws:elasticache/replicationGroup:ReplicationGroup", "aws:sqs/queue:Queue")
    for stack, protected in (("prod", True), ("dev", False)):
        program = stack_program(stack)
        for type_ in stateful:
            for r in program.of_type(type_):
                assert r.options["protect"] is protected, (stack, r.urn)
