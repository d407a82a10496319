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


@pytest.mark.parametrize("stack", STACKS)
def test_alarm_topic_is_encrypted_and_exported(stack_program, stack):
    program = stack_program(stack)
    topic = program.one("aws:sns/topic:Topic")
    assert topic.inputs["name"] == f"cofounder-{stack}-alarms"
    assert topic.inputs["kmsMasterKeyId"] == program.one("aws:kms/key:Key").outputs["arn"]
    assert program.outputs["alarmTopicArn"] == topic.outputs["arn"]
    assert program.component_of(topic).type == "cofounder:observability:CloudWatchAlarms"


def test_prometheus_keeps_more_history_in_prod(run_program):
    from infra import config
    from toolkit.stackfile import load_stack_file

    loaded = {}
    for stack in STACKS:
        stack_file = load_stack_file(stack)
        run_program(lambda s=stack: loaded.__setitem__(s, config.load().observability), stack=stack,
                    config=stack_file.config)
    assert loaded["dev"].retention_days < loaded["staging"].retention_days < loaded["prod"].retention_days
    assert loaded["prod"].storage_gib >= 200 and loaded["prod"].scrape_interval_seconds == 15
    assert {s: o.alerts.latency_p99_ms for s, o in loaded.items()} == {"dev": 200, "prod": 200, "staging": 200}
