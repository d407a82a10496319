"""components/image_prepuller.py: every app image on every node the apps run on, and what the burst
model makes of it."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from components import ComponentArgsError
from components.headroom import PAUSE_IMAGE
from components.image_prepuller import ImagePrepuller, ImagePrepullerArgs
from toolkit.cost_reports import stack_burst

DS = "kubernetes:apps/v1:DaemonSet"
IMAGES = {"backend": "r.example/backend:1@sha256:" + "a" * 64, "frontend": "r.example/frontend:1@sha256:" + "b" * 64}


def _prepuller(run_program, **overrides):
    def program():
        provider = k8s.Provider("k8s")
        ImagePrepuller("pp", ImagePrepullerArgs(namespace="cofounder", images=IMAGES, **overrides),
                       opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program).one(DS)


def test_one_init_container_per_app_image_then_only_pause(run_program, validate_k8s):
    ds = _prepuller(run_program)
    validate_k8s(ds)
    pod = ds.inputs["spec"]["template"]["spec"]
    assert [(c["name"], c["image"], c["command"]) for c in pod["initContainers"]] == [
        ("pull-backend", IMAGES["backend"], ["node", "-e", "0"]),
        ("pull-frontend", IMAGES["frontend"], ["node", "-e", "0"])]
    assert [(c["name"], c["image"]) for c in pod["containers"]] == [("pause", PAUSE_IMAGE)]
    # where the apps may run, and nowhere else: no selector, no toleration (the system pool is tainted)
    assert "nodeSelector" not in pod and "tolerations" not in pod
    # restricted pod security, no API token, tiny requests with equal memory limits
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    for c in pod["initContainers"] + pod["containers"]:
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"]
        assert c["imagePullPolicy"] == "IfNotPresent"
    assert ds.inputs["spec"]["updateStrategy"]["rollingUpdate"] == {"maxUnavailable": "25%"}


def test_the_command_is_a_setting_and_may_not_be_empty(run_program):
    pod = _prepuller(run_program, command=["/bin/true"]).inputs["spec"]["template"]["spec"]
    assert {tuple(c["command"]) for c in pod["initContainers"]} == {("/bin/true",)}
    with pytest.raises(ComponentArgsError, match="command"):
        _prepuller(run_program, command=[])


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stack_prepulls_exactly_the_images_its_apps_run(stack, stack_program):
    p = stack_program(stack)
    deployments = {r.inputs["metadata"]["name"]: r.inputs["spec"]["template"]["spec"]["containers"][0]["image"]
                   for r in p.of_type("kubernetes:apps/v1:Deployment")
                   if r.inputs["metadata"].get("namespace") == "cofounder" and r.name.endswith("-deployment")}
    pulled = {c["name"].removeprefix("pull-"): c["image"]
              for c in p.one(DS).inputs["spec"]["template"]["spec"]["initContainers"]}
    assert pulled == {app: deployments[app] for app in ("frontend", "backend", "worker")}


def test_the_burst_model_starts_pods_on_prepulled_nodes_without_a_pull(stack_program, run_stack_with):
    """Prod's first step lands on the nodes whose placeholders it preempts: with the images kept there
    every app is Ready sooner at p95, and the worst case (every pull at its slowest) gains the most."""
    with_prepull = stack_burst(stack_program("prod"))
    without = stack_burst(run_stack_with("prod", {"cofounder:imagePrepull": {"enabled": False}}))
    assert with_prepull is not None and without is not None
    faster, slower = with_prepull.p95_seconds(), without.p95_seconds()
    assert all(faster[app] < slower[app] for app in faster), (faster, slower)
    # the facts the model read: each app's image is kept where the apps run
    assert all(f.prepulled_on for f in with_prepull.facts.values())
