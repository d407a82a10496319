"""components/metrics_server.py: the pinned official chart on the system nodes."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.metrics_server import MetricsServer, MetricsServerArgs
from toolkit.harness import reveal


def _metrics_server(run_program, **args):
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        MetricsServer("ms", MetricsServerArgs(**args), opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


def test_defaults_two_replicas_with_pdb_and_spread(run_program):
    p = _metrics_server(run_program, node_selector={"node-pool": "system"},
                        tolerations=[{"key": "CriticalAddonsOnly", "operator": "Exists", "effect": "NoSchedule"}])
    release = p.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "metrics-server"
    assert release.inputs["version"] == "3.13.0"
    assert release.inputs["repositoryOpts"] == {"repo": "https://kubernetes-sigs.github.io/metrics-server/"}
    assert release.inputs["namespace"] == "kube-system"
    assert release.options["provider"] == p.one("pulumi:providers:kubernetes").urn
    values = reveal(release.inputs["values"])
    # the chart renders repository:tag, so the tag carries the image promoter's digest of v0.8.0
    assert values["image"] == {"repository": "registry.k8s.io/metrics-server/metrics-server",
                               "tag": "v0.8.0@sha256:89258156d0e9af60403eafd44da9676fd66f600c7934d468ccc17e42b199aee2"}
    assert values["replicas"] == 2
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    assert values["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert values["nodeSelector"] == {"node-pool": "system"}
    assert values["tolerations"][0]["key"] == "CriticalAddonsOnly"


def test_single_replica_has_no_pdb_that_would_block_drains(run_program):
    values = reveal(_metrics_server(run_program, replicas=1).one("kubernetes:helm.sh/v3:Release").inputs["values"])
    assert values["replicas"] == 1
    assert values["podDisruptionBudget"]["enabled"] is False
    assert "topologySpreadConstraints" not in values
