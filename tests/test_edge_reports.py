"""toolkit/edge_reports.py: the request path, hop by hop, followed through the captured resources."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import STACKS
from toolkit.edge_reports import request_path


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_shows_the_whole_path(stack_program, stack):
    program = stack_program(stack)
    rep = request_path(program)
    assert rep["ok"] is True
    rows = {r["viewer path"]: r for r in rep["rows"]}
    assert list(rows) == ["api/*", "_next/static/*", "public/*", "* (default)"]  # CloudFront's match order
    api, pages = rows["api/*"], rows["* (default)"]
    assert api["edge cache"] == "never (CachingDisabled)"
    assert api["origin"].startswith("VPC origin -> internal ALB edge-lb-alb")
    assert api["alb rule"] == "/api/*"
    assert api["service"] == "cofounder/backend:80" and api["pods"].startswith("backend (")
    assert pages["alb rule"] == "default action"
    assert pages["service"] == "cofounder/frontend:80" and pages["pods"].startswith("frontend (")
    assert pages["edge cache"] == "1 min, or the app's Cache-Control 0..1 d"
    assert rows["_next/static/*"]["origin"].startswith("S3 edge-assets")
    assert f"Public URL: {program.outputs['url']}" in rep["notes"]


def test_a_target_group_nobody_fills_is_flagged(stack_program):
    program = stack_program("dev")
    without = dataclasses.replace(program, resources=[
        r for r in program.resources if r.type != "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding"])
    rep = request_path(without)
    assert rep["ok"] is False
    assert {r["service"] for r in rep["rows"] if r["alb rule"] != "-"} == {"no TargetGroupBinding"}
