"""The whole pack through the Analyzer gRPC protocol, as `pulumi preview --policy-pack` runs it."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from tests.conftest import STACKS
from toolkit import harness, policy_runner


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_every_mandatory_rule(stack_policies, stack):
    results = stack_policies(stack)
    assert [v for v in results if v["enforcement"] == "mandatory"] == []
    assert [v for v in results if v["policy"] == "capacity-time-to-scale"] == []
    assert all(set(v) >= {"policy", "enforcement", "urn", "message"} for v in results)


def _with(program: harness.Program, *extra: harness.Resource) -> harness.Program:
    return dataclasses.replace(program, resources=[*program.resources, *extra])


def _resource(type_: str, name: str, inputs: dict) -> harness.Resource:
    urn = f"urn:pulumi:dev::cofounder::{type_}::{name}"
    return harness.Resource(urn=urn, type=type_, name=name, custom=True, inputs=inputs,
                            outputs={**inputs, "id": f"{name}-id"}, parent=None, options={"protect": False})


PUBLIC_DB = _resource("aws:rds/instance:Instance", "leaky", {
    "engine": "postgres", "publiclyAccessible": True, "storageEncrypted": True, "backupRetentionPeriod": 7,
    "parameterGroupName": "pg", "manageMasterUserPassword": True, "masterUserSecretKmsKeyId": "arn:aws:kms:k"})
LONE_BUCKET = _resource("aws:s3/bucket:Bucket", "naked", {"bucket": "naked"})


def test_crafted_bad_resources_are_reported_per_resource_and_per_stack(stack_program):
    results = policy_runner.run_policies("dev", _with(stack_program("dev"), PUBLIC_DB, LONE_BUCKET))
    found = {(v["policy"], v["urn"]) for v in results if v["enforcement"] == "mandatory"}
    assert ("rds-instance-not-public", PUBLIC_DB.urn) in found          # Analyze
    assert ("s3-bucket-versioned", LONE_BUCKET.urn) in found            # AnalyzeStack
    # dev's policy config relaxes Multi-AZ; the defaults (prod-like) would not
    assert not any(p == "rds-instance-multi-az" for p, _ in found)
    message = next(v for v in results if v["policy"] == "rds-instance-not-public")
    assert message["message"] == "publiclyAccessible is true"
    assert "publiclyAccessible=false" in message["description"]


def test_a_mandatory_violation_makes_the_runner_exit_non_zero(monkeypatch, capsys, stack_program):
    monkeypatch.setattr(policy_runner, "run_stack", lambda stack: _with(stack_program(stack), PUBLIC_DB))
    assert policy_runner.main(["--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "== mandatory violations: 1" in out and PUBLIC_DB.urn in out and "fix: " in out
    assert re.fullmatch(r"violations: 1 mandatory, \d+ advisory -- FAILED: a mandatory "
                        r"violation blocks the update", out.splitlines()[-1])


def test_a_clean_stack_exits_zero_and_counts_violations_not_passes(monkeypatch, capsys, stack_program,
                                                                   stack_policies):
    # the pack's results for dev as it stands (the mandatory test above runs main's pack call itself)
    results = stack_policies("dev")  # computed before run_policies is replaced below
    monkeypatch.setattr(policy_runner, "run_stack", stack_program)
    monkeypatch.setattr(policy_runner, "run_policies", lambda stack, program, path=None: results)
    assert policy_runner.main(["--stack", "dev"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"violations: 0 mandatory, \d+ advisory", out[-1]), out[-1]
    # the same resource count as `make preview` ("resources per type (N resources, M components)")
    program = stack_program("dev")
    custom, components = sum(r.custom for r in program.resources), sum(r.component for r in program.resources)
    assert out[0].startswith(f"Policy pack policies/ against stack 'dev' ({custom} resources and "
                             f"{components} components, offline")


def test_config_defaults_and_stack_files_reach_the_pack(stack_program, tmp_path):
    strict = tmp_path / "strict.json"
    strict.write_text(json.dumps({"rds-instance-backup-retention": {"minimumDays": 30},
                                  "rds-parameter-group-pg-stat-statements": "mandatory"}))
    db = _resource("aws:rds/instance:Instance", "db", {**PUBLIC_DB.inputs, "publiclyAccessible": False,
                                                       "parameterGroupName": None})
    results = policy_runner.run_policies("dev", _with(stack_program("dev"), db), config_path=strict)
    levels = {v["policy"]: v["enforcement"] for v in results}
    assert levels["rds-instance-backup-retention"] == "mandatory"
    assert levels["rds-parameter-group-pg-stat-statements"] == "mandatory"  # raised from advisory
    assert levels["rds-instance-multi-az"] == "mandatory"  # no dev relaxation in this file: default applies


@pytest.mark.parametrize("doc, expected", [
    ({"rds-instance-multiaz": {"required": False}}, "rds-instance-multiaz is not a policy of the pack"),
    ({"rds-instance-multi-az": {"requird": False}}, "rds-instance-multi-az.requird is not a setting"),
    ({"rds-instance-backup-retention": {"minimumDays": 90}}, "minimumDays = 90 is not allowed: expected an integer between 1 and 35"),
    ({"rds-instance-multi-az": "strict"}, "enforcement level 'strict' is not allowed"),
])
def test_bad_policy_config_fails_with_one_clear_line(stack_program, tmp_path, doc, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(policy_runner.PolicyConfigError, match=expected.replace(".", r"\.")):
        policy_runner.run_policies("dev", stack_program("dev"), config_path=path)


def test_pack_requirements_pin_what_the_project_pins():
    def pins(path):
        return {line.split("==")[0]: line for line in path.read_text().splitlines() if "==" in line}
    pack, project = pins(policy_runner.PACK_DIR / "requirements.txt"), pins(policy_runner.REPO / "requirements.txt")
    assert pack and all(project[name] == line for name, line in pack.items())
    assert "-e .." in (policy_runner.PACK_DIR / "requirements.txt").read_text()


def test_time_to_scale_blocks_prod_and_advises_dev(stack_program):
    def capped(stack):
        program = stack_program(stack)
        hpa = next(r for r in program.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
                   if r.inputs["spec"]["scaleTargetRef"]["name"] == "backend")
        spec = {**hpa.outputs["spec"], "maxReplicas": hpa.outputs["spec"]["minReplicas"]}
        low = dataclasses.replace(hpa, outputs={**hpa.outputs, "spec": spec})
        return dataclasses.replace(program, resources=[low if r is hpa else r for r in program.resources])
    for stack, level in (("prod", "mandatory"), ("dev", "advisory")):
        found = [v for v in policy_runner.run_policies(stack, capped(stack)) if v["policy"] == "capacity-time-to-scale"]
        assert [v["enforcement"] for v in found] == [level]
        assert found[0]["urn"].endswith("::backend-hpa") and found[0]["message"].startswith("backend (HorizontalPodAutoscaler)")


FRONT_DOOR_RULES = {"elb-load-balancer-internal", "elb-listener-https-only", "elb-access-logging-enabled",
                    "elb-drop-invalid-header-fields", "elb-deletion-protection", "cloudfront-api-not-cached",
                    "cloudfront-waf-attached", "k8s-load-balanced-pods-ready"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_front_door_rules_are_quiet_on_every_stack(stack_policies, stack):
    results = stack_policies(stack)
    assert [v for v in results if v["policy"] in FRONT_DOOR_RULES] == []


def test_the_front_door_rules_fire_on_the_whole_stack_when_it_is_weakened(stack_program):
    """Through the gRPC pack: dev with its ALB made public and logless, and prod's WAF removed."""
    dev = stack_program("dev")
    public = {"internal": False, "accessLogs": {"enabled": False}}
    # per resource the pack sees inputs; the stack rules see outputs, as after an update
    weakened = [dataclasses.replace(r, inputs={**r.inputs, **public}, outputs={**r.outputs, **public})
                if r.type == "aws:lb/loadBalancer:LoadBalancer" else r for r in dev.resources]
    fired = {v["policy"] for v in policy_runner.run_policies("dev", dataclasses.replace(dev, resources=weakened))}
    assert {"elb-load-balancer-internal", "elb-access-logging-enabled", "elb-listener-https-only"} <= fired
    prod = stack_program("prod")
    no_waf = [dataclasses.replace(r, inputs={k: v for k, v in r.inputs.items() if k != "webAclId"},
                                  outputs={k: v for k, v in r.outputs.items() if k != "webAclId"})
              if r.type == "aws:cloudfront/distribution:Distribution" else r for r in prod.resources]
    results = policy_runner.run_policies("prod", dataclasses.replace(prod, resources=no_waf))
    assert [(v["policy"], v["enforcement"]) for v in results if v["policy"] == "cloudfront-waf-attached"] == [
        ("cloudfront-waf-attached", "mandatory")]


def test_the_zonal_pool_rule_sees_prometheus_and_the_system_groups_of_a_real_stack(stack_program):
    """prod with its system groups each spanning all private subnets: the pack blocks it."""
    prod = stack_program("prod")
    subnets = prod.outputs["privateSubnetIds"]
    spanning = [dataclasses.replace(r, outputs={**r.outputs, "subnetIds": subnets})
                if r.type == "aws:eks/nodeGroup:NodeGroup" and "-system-" in r.name else r for r in prod.resources]
    results = policy_runner.run_policies("prod", dataclasses.replace(prod, resources=spanning))
    found = [v for v in results if v["policy"] == "eks-volume-pool-one-group-per-zone"]
    assert [v["enforcement"] for v in found] == ["mandatory"]
    assert "platform-system-us-east-1a, platform-system-us-east-1b, platform-system-us-east-1c" in found[0]["message"]


def test_a_burstable_database_blocks_prod_and_is_allowed_in_dev(stack_program, stack_policies):
    """prod moved to db.t4g.medium (dev's class) and cache.t4g.medium (staging's) is refused; dev and
    staging, which declare those classes, stay quiet (their profiles allow them)."""
    prod = stack_program("prod")
    t_class = {"aws:rds/instance:Instance": {"instanceClass": "db.t4g.medium"},
               "aws:elasticache/replicationGroup:ReplicationGroup": {"nodeType": "cache.t4g.medium"}}
    moved = [dataclasses.replace(r, inputs={**r.inputs, **t_class[r.type]}, outputs={**r.outputs, **t_class[r.type]})
             if r.type in t_class else r for r in prod.resources]
    results = policy_runner.run_policies("prod", dataclasses.replace(prod, resources=moved))
    found = sorted((v["policy"], v["enforcement"]) for v in results if v["policy"].endswith("-not-burstable"))
    assert found == [("elasticache-node-type-not-burstable", "mandatory"),
                     ("rds-instance-class-not-burstable", "mandatory")]
    for stack in ("dev", "staging"):
        assert [v for v in stack_policies(stack) if v["policy"].endswith("-not-burstable")] == []
