"""toolkit/drift.py: the drift report from `pulumi refresh --preview-only --json` (the CLI's
preview digest, pulumi/pulumi pkg/backend/display/json.go): which resources drifted, which
properties, and that no value reaches the report."""

from __future__ import annotations

import json

from toolkit import drift

STACK = "urn:pulumi:prod::cofounder::pulumi:pulumi:Stack::cofounder-prod"
SG = "urn:pulumi:prod::cofounder::cofounder:network:Network$aws:ec2/securityGroup:SecurityGroup::net-nodes"
DB = "urn:pulumi:prod::cofounder::cofounder:data:Postgres$aws:rds/instance:Instance::pg-db"
QUEUE = "urn:pulumi:prod::cofounder::cofounder:queue:Queue$aws:sqs/queue:Queue::q-high"
BUCKET = "urn:pulumi:prod::cofounder::aws:s3/bucketV2:BucketV2::static"
PROVIDER = "urn:pulumi:prod::cofounder::pulumi:providers:aws::default_7_51_1"


def _state(urn, outputs):
    return {"urn": urn, "type": urn.split("::")[2].split("$")[-1], "outputs": outputs}


DIGEST = {"steps": [
    {"op": "refresh", "urn": STACK, "oldState": _state(STACK, {}), "newState": _state(STACK, {"x": 1})},
    {"op": "update", "urn": SG, "oldState": _state(SG, {}), "newState": _state(SG, {}),
     "diffReasons": ["ingress"], "detailedDiff": {"ingress[0].cidrBlocks[0]": {"kind": "update"}}},
    {"op": "update", "urn": DB, "oldState": _state(DB, {"instanceClass": "db.r7g.large"}),
     "newState": _state(DB, {"instanceClass": "db.r7g.2xlarge"}), "diffReasons": ["instanceClass"]},
    {"op": "refresh", "urn": QUEUE, "oldState": _state(QUEUE, {"visibilityTimeoutSeconds": 900}),
     "newState": _state(QUEUE, {"visibilityTimeoutSeconds": 30})},
    {"op": "refresh", "urn": BUCKET, "oldState": _state(BUCKET, {"bucket": "static"})},
    {"op": "same", "urn": SG.replace("net-nodes", "net-alb"), "oldState": _state(SG, {}), "newState": _state(SG, {})},
    {"op": "refresh", "urn": PROVIDER, "oldState": _state(PROVIDER, {"version": "7.51.0"}),
     "newState": _state(PROVIDER, {"version": "7.51.1"})},
]}


def test_drift_names_each_drifted_cloud_resource_and_its_properties():
    found = drift.drifts(DIGEST)  # sorted by URN
    assert [(d.name, d.type, d.properties, d.gone) for d in found] == [
        ("static", "aws:s3/bucketV2:BucketV2", (), True),
        ("pg-db", "aws:rds/instance:Instance", ("instanceClass",), False),
        ("net-nodes", "aws:ec2/securityGroup:SecurityGroup", ("ingress[0].cidrBlocks[0]",), False),
        ("q-high", "aws:sqs/queue:Queue", ("visibilityTimeoutSeconds",), False),
    ]
    assert drift.drifts({"steps": [s for s in DIGEST["steps"] if s["urn"] in (STACK, PROVIDER)]}) == []
    assert drift.drifts({"steps": None}) == []


def test_the_report_and_status_carry_names_but_no_values(tmp_path):
    digest = tmp_path / "refresh.json"
    digest.write_text(json.dumps(DIGEST))
    assert drift.main(["--stack", "prod", "--digest", str(digest), "--out", str(tmp_path / "out"),
                       "--run-url", "https://example.invalid/run/1"]) == 0
    assert (tmp_path / "out" / "status").read_text() == "drift\n"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "found 4 resource(s)" in text and "(https://example.invalid/run/1)" in text
    assert "| `pg-db` | `aws:rds/instance:Instance` | `instanceClass` |" in text
    assert "| `static` | `aws:s3/bucketV2:BucketV2` | **gone from the cloud** |" in text
    for value in ("db.r7g.2xlarge", "db.r7g.large", "900", "30"):
        assert value not in text.replace("run/1", ""), value
    assert 'docs/ci.md "Drift"' in text


def test_no_drift_is_clean_and_a_broken_digest_is_an_error(tmp_path, capsys):
    digest = tmp_path / "refresh.json"
    digest.write_text(json.dumps({"steps": [DIGEST["steps"][0]]}))
    assert drift.main(["--stack", "dev", "--digest", str(digest), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "status").read_text() == "clean\n"
    digest.write_text("Error: could not refresh")
    assert drift.main(["--stack", "dev", "--digest", str(digest), "--out", str(tmp_path / "bad")]) == 2
    assert "not a refresh preview digest" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
