"""components/keda.py: pinned official chart, IRSA role that can only read the queues' depth."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from components.keda import Keda, KedaArgs

OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:cofounder-dev-agent-execution"


def _keda(run_program, **overrides):
    def program():
        provider = k8s.Provider("k8s")
        args = {"oidc_provider_arn": OIDC_ARN, "oidc_issuer_url": ISSUER, "queue_arns": [QUEUE_ARN], **overrides}
        Keda("keda", KedaArgs(**args),
             opts=pulumi.ResourceOptions(providers={"kubernetes": provider}))
    return run_program(program)


def test_release_is_the_pinned_official_chart_in_keda(run_program):
    release = _keda(run_program).one("kubernetes:helm.sh/v3:Release").inputs
    assert release["chart"] == "keda"
    assert release["version"] == "2.18.1"
    assert release["repositoryOpts"] == {"repo": "https://kedacore.github.io/charts"}
    assert release["namespace"] == "keda"
    tags = {k: v["tag"] for k, v in release["values"]["image"].items()}
    assert tags == {"keda": "2.18.1", "metricsApiServer": "2.18.1", "webhooks": "2.18.1"}


def test_operator_uses_an_irsa_role_that_only_reads_queue_attributes(run_program):
    p = _keda(run_program)
    role = p.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    assert condition["oidc.eks.us-east-1.amazonaws.com/id/ABC:sub"] == "system:serviceaccount:keda:keda-operator"
    policy = json.loads(p.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])
    assert policy["Statement"] == [{"Effect": "Allow", "Action": "sqs:GetQueueAttributes",
                                    "Resource": [QUEUE_ARN]}]
    values = p.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["podIdentity"]["aws"]["irsa"] == {"enabled": True, "roleArn": role.outputs["arn"]}
    assert values["serviceAccount"]["operator"]["name"] == "keda-operator"


def test_namespace_enforces_restricted_pod_security(run_program, validate_k8s):
    ns = _keda(run_program).one("kubernetes:core/v1:Namespace")
    validate_k8s(ns)
    assert ns.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_replicas_override(run_program):
    values = _keda(run_program, replicas=1).one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["operator"]["replicaCount"] == values["metricsServer"]["replicaCount"] == 1


def test_keda_without_a_queue_is_refused(run_program):
    import pytest
    with pytest.raises(ValueError, match="at least one queue"):
        _keda(run_program, queue_arns=[])


def test_operator_metrics_port_matches_the_service_monitor(run_program):
    """The keda-operator ServiceMonitor scrapes the port named "metrics", which only exists when
    the chart's prometheus.operator.enabled is on."""
    from components.service_monitors import ScrapeTargetsArgs
    values = _keda(run_program).one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["prometheus"]["operator"]["enabled"] is True
    assert ScrapeTargetsArgs.__dataclass_fields__["keda_port"].default == "metrics"
