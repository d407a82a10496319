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
    from infra.config import _Reader
    reader = _Reader("stacks/Pulumi.dev.yaml")
    with pytest.raises(ConfigError) as err:
        reader.value("cofounder:x.ttlSeconds", 31536001, int, {"minimum": 0, "maximum": 31536000})
    assert str(err.value).endswith("expected a value between 0 and 31536000")
