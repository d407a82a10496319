"""infra/apps.py in each stack: the app tier's objects and the time-to-scale report computed from
what it declares."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter

import pytest

from capacity.headroom import HeadroomFigures
from capacity.scale_up import pack_into_headroom
from tests.conftest import STACKS
from toolkit import harness
from toolkit.app_reports import time_to_scale_report
from toolkit.stackfile import load_stack_file

AUTOSCALERS = ("kubernetes:autoscaling/v2:HorizontalPodAutoscaler", "kubernetes:keda.sh/v1alpha1:ScaledObject")


APP_TIER = ("cofounder:apps:AppService", "cofounder:autoscaling:Keda", "cofounder:autoscaling:PrometheusAdapter")


def _app_tier(program: harness.Program) -> harness.Program:
    """What infra/apps.py declares: the apps, their IRSA roles and the metric adapters (the EKS
    platform's headroom and add-ons left out)."""
    def in_tier(r: harness.Resource) -> bool:
        top = program.component_of(r) or r
        return top.type in APP_TIER or (top.type == "cofounder:identity:IrsaRole"
                                        and top.name.removesuffix("-irsa") in ("frontend", "backend", "worker"))
    return dataclasses.replace(program, resources=[r for r in program.resources if in_tier(r)])


def _run(stack: str, overrides: dict | None = None) -> harness.Program:
    return _app_tier(harness.run_stack(stack, overrides))


_tier = functools.lru_cache(maxsize=None)(lambda stack: _run(stack))


@pytest.mark.parametrize("stack", STACKS)
def test_each_deployment_has_exactly_one_autoscaler(stack):
    p = _tier(stack)
    deployments = {r.inputs["metadata"]["name"] for r in p.of_type("kubernetes:apps/v1:Deployment")}
    assert deployments == {"frontend", "backend", "worker"}
    targets = Counter(r.inputs["spec"]["scaleTargetRef"]["name"] for t in AUTOSCALERS for r in p.of_type(t))
    assert targets == {name: 1 for name in deployments}
    assert p.one(AUTOSCALERS[1]).inputs["spec"]["scaleTargetRef"]["name"] == "worker"


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_validates_and_only_keda_claims_external_metrics(stack, validate_k8s):
    p = _tier(stack)
    for r in p.resources:
        if r.custom and r.type.startswith("kubernetes:") and r.type.split(":")[1] in (
                "apps/v1", "core/v1", "policy/v1", "autoscaling/v2"):
            validate_k8s(r)
    releases = {r.inputs["chart"]: r.inputs for r in p.of_type("kubernetes:helm.sh/v3:Release")}
    assert set(releases) == {"keda", "prometheus-adapter"}
    assert not releases["prometheus-adapter"]["values"]["rules"]["external"]
    assert "resource" not in releases["prometheus-adapter"]["values"]["rules"]


def test_active_agents_metric_only_where_configured():
    p = _tier("prod")
    hpas = {r.inputs["metadata"]["name"]: r.inputs["spec"] for r in p.of_type(AUTOSCALERS[0])}
    # the frontend has no agents: its Pods metric is the request rate it serves per pod
    assert [m["type"] for m in hpas["frontend"]["metrics"]] == ["Resource", "Resource", "Pods"]
    assert hpas["frontend"]["metrics"][2]["pods"] == {
        "metric": {"name": "cofounder_http_requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "25"}}
    assert hpas["backend"]["metrics"][2]["pods"]["metric"]["name"] == "cofounder_active_agents"
    assert hpas["backend"]["metrics"][2]["pods"]["target"] == {"type": "AverageValue", "averageValue": "5"}
    # the worker: resource metrics and one queue trigger per tier (its active agents are its
    # in-flight messages, which the queue triggers count)
    triggers = [t["type"] for t in p.one(AUTOSCALERS[1]).inputs["spec"]["triggers"]]
    assert triggers == ["cpu", "memory", "aws-sqs-queue", "aws-sqs-queue", "aws-sqs-queue"]


@pytest.mark.parametrize("stack", STACKS)
def test_worker_and_keda_cover_every_tier_and_the_api_may_only_enqueue(stack, validate_crd, stack_program):
    p = _tier(stack)
    arns = [f"arn:aws:sqs:us-east-1:123456789012:cofounder-{stack}-agent-execution-{t}" for t in ("high", "normal", "low")]
    policies = {r.name: json.loads(r.inputs["policy"]) for r in p.of_type("aws:iam/rolePolicy:RolePolicy")}
    assert policies["keda-operator-policy"]["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:GetQueueAttributes", "Resource": sorted(arns)}]
    # besides its queue statement, each app's role reads exactly its own secrets (ESO's store uses it)
    worker, worker_secrets, _ = policies["worker-irsa-policy"]["Statement"]
    assert worker["Resource"] == sorted(arns)
    assert worker["Action"] == ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    # the backend enqueues (the seed's POST handler) and can do nothing else with the queues
    backend, backend_secrets, _ = policies["backend-irsa-policy"]["Statement"]
    assert backend["Resource"] == sorted(arns) and backend["Action"] == ["sqs:SendMessage", "sqs:GetQueueUrl"]
    secret_arns = {r.name: r.outputs["arn"] for r in stack_program(stack).of_type("aws:secretsmanager/secret:Secret")}
    db = {secret_arns["database-roles-app-secret"], secret_arns["database-roles-migrator-secret"]}
    valkey = {role: secret_arns[f"redis-user-{role}-secret"] for role in ("sessions", "ratelimit", "llmcache",
                                                                          "results", "pubsub")}
    assert set(worker_secrets["Resource"]) == db | {valkey[r] for r in ("llmcache", "results", "pubsub")}
    assert set(backend_secrets["Resource"]) == db | set(valkey.values())
    assert worker_secrets["Action"] == ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    assert "frontend-irsa-policy" not in policies
    so = p.one(AUTOSCALERS[1])
    validate_crd(so)
    spec = so.inputs["spec"]
    urls = [t["metadata"]["queueURL"] for t in spec["triggers"] if t["type"] == "aws-sqs-queue"]
    assert urls == [f"https://sqs.us-east-1.amazonaws.com/123456789012/cofounder-{stack}-agent-execution-{t}"
                    for t in ("high", "normal", "low")]
    assert spec["advanced"]["scalingModifiers"] == {
        "formula": "2 * queue_high + 1 * queue_normal + 1 * queue_low", "target": "5", "metricType": "AverageValue"}
    sas = {r.inputs["metadata"]["name"]: r.inputs for r in p.of_type("kubernetes:core/v1:ServiceAccount")}
    for app in ("worker", "backend"):
        assert "eks.amazonaws.com/role-arn" in sas[app]["metadata"]["annotations"]
    assert "annotations" not in sas["frontend"]["metadata"]
    # both read the tiers from the queue ConfigMap (envFrom), the frontend does not
    env = {r.inputs["metadata"]["name"]: r.inputs["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])
           for r in p.of_type("kubernetes:apps/v1:Deployment")}
    for app in ("worker", "backend"):
        assert {"configMapRef": {"name": "cofounder-queue"}} in env[app]
    assert {"configMapRef": {"name": "cofounder-queue"}} not in env["frontend"]


@pytest.mark.parametrize("stack", STACKS)
def test_time_to_scale_report_meets_the_goals_of_every_stack(stack):
    rep = time_to_scale_report(_tier(stack))
    rows = {r["app"]: r for r in rep["rows"]}
    assert set(rows) == {"frontend", "backend", "worker"}
    assert rows["worker"]["autoscaler"] == "ScaledObject"
    # the app tier alone declares no headroom (the EKS platform does): every app meets its goals,
    # and the stack-level verdict says the first step would wait for a node
    assert all(r["ok"] for r in rows.values()), rows
    assert "no pre-warmed headroom declared: NOT covered" in rep["notes"][-1]


def test_prod_backend_and_worker_decide_within_45_seconds():
    rows = {r["app"]: r for r in time_to_scale_report(_tier("prod"))["rows"]}
    for app in ("backend", "worker"):
        assert rows[app]["needed"] == 15
        # Percent 400 per 15 s: the peak's replicas in the first decision (the burst's lever 1)
        assert rows[app]["steps (s:replicas)"] == "15:15"
        assert rows[app]["decided"] == "15s" and rows[app]["goal"] == "45s"


def test_a_slow_behavior_fails_the_report():
    apps = json.loads(load_stack_file("prod").config["cofounder:apps"])
    apps["backend"]["scaleUp"] = {"stabilizationWindowSeconds": 0,
                                  "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}
    rep = time_to_scale_report(_run("prod", {"cofounder:apps": apps}))
    rows = {r["app"]: r for r in rep["rows"]}
    assert rows["backend"]["ok"] is False and rows["worker"]["ok"] is True
    assert rep["ok"] is False


def _with_headroom(program: harness.Program, replicas: int, cpu: str, memory: str) -> harness.Program:
    """The app tier plus a placeholder Deployment at a negative priority, as Headroom declares it."""
    def k8s(type_, name, inputs):
        urn = f"urn:pulumi:prod::cofounder::{type_}::{name}"
        return harness.Resource(urn=urn, type=type_, name=name, custom=True, inputs=inputs, outputs=inputs,
                                parent=None, options={})
    priority = k8s("kubernetes:scheduling.k8s.io/v1:PriorityClass", "hr-priority",
                   {"metadata": {"name": "hr-placeholder"}, "value": -10})
    placeholder = k8s("kubernetes:apps/v1:Deployment", "hr-placeholder", {
        "metadata": {"name": "hr-placeholder", "namespace": "cofounder"},
        "spec": {"replicas": replicas, "template": {"spec": {"priorityClassName": "hr-placeholder", "containers": [
            {"name": "pause", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}}})
    return dataclasses.replace(program, resources=[*program.resources, priority, placeholder])


def test_headroom_coverage_counts_in_the_report():
    p = _tier("prod")
    rep = time_to_scale_report(_with_headroom(p, 1, "500m", "512Mi"))
    assert rep["ok"] is False and "NOT covered" in rep["notes"][-1]
    assert time_to_scale_report(_with_headroom(p, 24, "1", "2Gi"))["ok"] is True


def test_pack_into_headroom_never_splits_a_pod_across_placeholders():
    room = [HeadroomFigures(2, 1000, 1024)]
    assert pack_into_headroom([(500, 512)] * 4, room)
    assert not pack_into_headroom([(500, 512)] * 5, room)
    assert not pack_into_headroom([(1500, 512)], [HeadroomFigures(3, 1000, 1024)])
    assert pack_into_headroom([(500, 512)] * 5, room + [HeadroomFigures(1, 500, 512)])




# --- the agent-queues report: tiers in the worker's order, the scaler's weights, the limits ----

@pytest.mark.parametrize("stack", STACKS)
def test_agent_queues_report_shows_the_tiers_and_the_scalers_weights(stack_program, stack):
    from toolkit.reports import build_reports
    rep = build_reports(stack_program(stack))["agent-queues"]
    assert rep["ok"] is True
    assert [(r["priority"], r["tier"], r["scaler trigger"], r["weight (slots/message)"], r["attempts"])
            for r in rep["rows"]] == [(1, "high", "queue_high", "2", 2), (2, "normal", "queue_normal", "1", 2),
                                      (3, "low", "queue_low", "1", 2)]
    assert [r["queue"] for r in rep["rows"]] == [f"cofounder-{stack}-agent-execution-{t}" for t in ("high", "normal", "low")]
    assert all(r["dlq"] == r["queue"] + "-dlq" and r["visibility"] == "960s" for r in rep["rows"])
    notes = "\n".join(rep["notes"])
    assert "ceil((2 * queue_high + 1 * queue_normal + 1 * queue_low) / 5)" in notes
    assert "retry delays (ChangeMessageVisibility) 5s" in notes
    assert "worker: terminationGracePeriodSeconds 960s >= preStop 15s + longest run 900s" in notes


def test_agent_queues_report_shows_why_the_tiers_are_summed(stack_program):
    from toolkit.reports import build_reports
    notes = build_reports(stack_program("prod"))["agent-queues"]["notes"]
    # 40 pods x 5 slots: 100 low runs need 20 pods; 10 high runs on top (2 slots each) need 4 more,
    # where the HPA's max over one metric per tier would stay at 20
    assert ("Example: 100 low runs ask for 20 pods; 10 high runs on top ask for 24 (one metric per tier, the "
            "HPA's max, would stay at 20 while the low runs hold every slot).") in notes


def test_agent_queues_report_fails_a_worker_that_would_be_killed_mid_run(stack_program):
    from toolkit.app_reports import agent_queues_report
    program = stack_program("dev")

    def short_grace(r):
        if r.type == "kubernetes:apps/v1:Deployment" and r.inputs["metadata"]["name"] == "worker":
            spec = json.loads(json.dumps(r.inputs["spec"]))
            spec["template"]["spec"]["terminationGracePeriodSeconds"] = 900
            return dataclasses.replace(r, inputs={**r.inputs, "spec": spec})
        return r
    rep = agent_queues_report(dataclasses.replace(program, resources=[short_grace(r) for r in program.resources]))
    assert rep["ok"] is False
    assert "worker: terminationGracePeriodSeconds 900s < ** TARGET MISSED ** preStop 15s + longest run 900s" in \
        "\n".join(rep["notes"])


@pytest.mark.parametrize("stack, worker", [("dev", "worker 5x20"), ("staging", "worker 10x20"), ("prod", "worker 40x20")])
def test_the_connection_budget_counts_the_keda_scaled_worker_at_its_maximum(stack_program, stack, worker):
    from toolkit.reports import build_reports
    program = stack_program(stack)
    demand = next(r for r in build_reports(program)["connections"]["rows"] if r["figure"] == "app demand at max scale")
    assert worker in demand["worked from"]
    so = program.one("kubernetes:keda.sh/v1alpha1:ScaledObject").inputs["spec"]
    assert f"worker {so['maxReplicaCount']}x" in demand["worked from"]
