"""capacity/drain.py: preStop, grace period and deregistration delay drop no request, and the
stacks' apps behind the ALB are configured so."""

from __future__ import annotations

import pytest

from capacity.drain import DEREGISTRATION_PROPAGATION_SECONDS, Drain
from infra.config import ConfigError

TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"


def test_the_default_drain_holds_for_the_api():
    """15 s preStop (>= the 15 s propagation), 75 s grace: the ALB drains for 60 s, CloudFront's wait."""
    drain = Drain(pre_stop_sleep_seconds=15, termination_grace_period_seconds=75, longest_request_seconds=60)
    assert drain.problems() == []
    assert drain.deregistration_delay_seconds == 60


def test_a_pre_stop_shorter_than_the_propagation_drops_new_requests():
    drain = Drain(pre_stop_sleep_seconds=DEREGISTRATION_PROPAGATION_SECONDS - 5,
                  termination_grace_period_seconds=75, longest_request_seconds=30)
    [(key, value, allowed)] = drain.problems()
    assert (key, value) == ("preStopSleepSeconds", 10)
    assert allowed.startswith("at least 15")


def test_a_grace_period_shorter_than_the_longest_request_cuts_it():
    drain = Drain(pre_stop_sleep_seconds=15, termination_grace_period_seconds=45, longest_request_seconds=60)
    [(key, value, allowed)] = drain.problems()
    assert (key, value) == ("terminationGracePeriodSeconds", 45)
    assert allowed.startswith("at least 75 (preStopSleepSeconds 15 + the 60 s CloudFront waits")


def test_the_deregistration_delay_cannot_exceed_the_albs_limit():
    drain = Drain(pre_stop_sleep_seconds=15, termination_grace_period_seconds=3700, longest_request_seconds=60)
    assert [k for k, _, _ in drain.problems()] == ["terminationGracePeriodSeconds"]


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_drains_its_load_balanced_apps(stack_program, stack):
    """Each target group's delay is the pod's grace minus its preStop, and covers the app's longest request."""
    program = stack_program(stack)
    deployments = {d.inputs["metadata"]["name"]: d.inputs["spec"]["template"]["spec"]
                   for d in program.of_type("kubernetes:apps/v1:Deployment")}
    groups = {g.inputs["tags"]["app"]: g.inputs for g in program.of_type(TARGET_GROUP)}
    assert sorted(groups) == ["backend", "frontend"]
    origin_timeouts = {o["originId"]: o["vpcOriginConfig"]["originReadTimeout"]
                       for o in program.one("aws:cloudfront/distribution:Distribution").inputs["origins"]
                       if "vpcOriginConfig" in o}
    longest = {"backend": origin_timeouts["app-api"], "frontend": origin_timeouts["app-pages"]}
    for app, group in groups.items():
        pod = deployments[app]
        (container,) = pod["containers"]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = pod["terminationGracePeriodSeconds"]
        assert group["deregistrationDelay"] == grace - pre_stop
        assert Drain(pre_stop_sleep_seconds=pre_stop, termination_grace_period_seconds=grace,
                     longest_request_seconds=longest[app]).problems() == []


def test_a_stack_that_would_drop_requests_is_refused(stack_program, run_stack_with):
    import json

    from toolkit.stackfile import load_stack_file
    apps = json.loads(load_stack_file("dev").config["cofounder:apps"])
    apps["backend"]["terminationGracePeriodSeconds"] = 45
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:apps": apps})
    assert str(err.value) == (
        "stacks/Pulumi.dev.yaml: cofounder:apps.backend.terminationGracePeriodSeconds = 45 is not allowed: "
        "expected at least 75 (preStopSleepSeconds 15 + the 60 s CloudFront waits for a response) so an "
        "in-flight request finishes before the pod goes")
