"""components/headroom.py and capacity/headroom.py: placeholder pods that yield to any real pod."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest

from capacity.headroom import HeadroomFigures, cpu_millicores, memory_mib
from components.headroom import PAUSE_IMAGE, Headroom, HeadroomArgs


def _headroom(run_program, **overrides):
    args = dict(namespace="cofounder", node_selector={"node-pool": "apps"})
    args.update(overrides)

    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        Headroom("headroom", HeadroomArgs(**args), opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


def test_priority_class_is_negative_never_preempts_and_not_default(run_program, validate_k8s):
    p = _headroom(run_program)
    doc = validate_k8s(p.one("kubernetes:scheduling.k8s.io/v1:PriorityClass"))
    assert doc["value"] == -10
    assert doc["preemptionPolicy"] == "Never"
    assert doc["globalDefault"] is False


def test_placeholder_deployment_defaults(run_program, validate_k8s):
    p = _headroom(run_program)
    doc = validate_k8s(p.one("kubernetes:apps/v1:Deployment"))
    pod = doc["spec"]["template"]["spec"]
    assert doc["metadata"]["namespace"] == "cofounder"
    assert doc["spec"]["replicas"] == 1
    assert pod["priorityClassName"] == p.one("kubernetes:scheduling.k8s.io/v1:PriorityClass").outputs[
        "metadata"]["name"]
    assert pod["nodeSelector"] == {"node-pool": "apps"}
    (container,) = pod["containers"]
    # by digest (the tag 3.10.1 for the reader): the image promoter's digest for registry.k8s.io
    assert container["image"] == PAUSE_IMAGE == f"registry.k8s.io/pause:3.10.1@sha256:{'278fb9dbcca9518083ad1e11276933a2e96f23de604a3a08cc3c80002767d24c'}"
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "500m",
                                                                                       "memory": "512Mi"}
    assert pod["terminationGracePeriodSeconds"] == 0
    for r in p.resources:
        if r.type.startswith("kubernetes:") and r.custom and not r.type.startswith("pulumi:"):
            assert r.options["provider"] == p.one("pulumi:providers:kubernetes").urn


def test_placeholder_pods_pass_pod_security_restricted(run_program):
    pod = _headroom(run_program).one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_sizing_overrides(run_program, validate_k8s):
    p = _headroom(run_program, replicas=4, cpu_millicores=1000, memory_mib=2048, priority_value=-100)
    doc = validate_k8s(p.one("kubernetes:apps/v1:Deployment"))
    assert doc["spec"]["replicas"] == 4
    assert doc["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1000m",
                                                                                         "memory": "2048Mi"}
    assert p.one("kubernetes:scheduling.k8s.io/v1:PriorityClass").inputs["value"] == -100


def test_non_negative_priority_is_refused(run_program):
    with pytest.raises(ValueError, match="must be negative"):
        _headroom(run_program, priority_value=0)


def test_headroom_arithmetic():
    figures = HeadroomFigures(replicas=4, cpu_millicores=1000, memory_mib=2048)
    assert (figures.total_cpu_millicores, figures.total_memory_mib) == (4000, 8192)
    # 500m/1Gi pods: two fit in each placeholder
    assert figures.pods_absorbed(500, 1024) == 8
    # memory-bound: 1500Mi pods fit once per 2048Mi placeholder
    assert figures.pods_absorbed(100, 1500) == 4
    # a pod larger than one placeholder is not counted as absorbed
    assert figures.pods_absorbed(1500, 512) == 0
    with pytest.raises(ValueError):
        figures.pods_absorbed(0, 1)


@pytest.mark.parametrize("quantity, millicores", [("250m", 250), ("1", 1000), ("1.5", 1500), (2, 2000)])
def test_cpu_quantities(quantity, millicores):
    assert cpu_millicores(quantity) == millicores


@pytest.mark.parametrize("quantity, mib", [("512Mi", 512), ("2Gi", 2048), ("1024Ki", 1), ("1G", 953)])
def test_memory_quantities(quantity, mib):
    assert memory_mib(quantity) == mib


def test_bad_quantities_are_refused():
    with pytest.raises(ValueError):
        cpu_millicores("lots")
    with pytest.raises(ValueError):
        memory_mib("12 MB")
