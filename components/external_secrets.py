"""ExternalSecrets: External Secrets Operator (ESO) from its official Helm chart, and the two
objects each consumer declares (``secret_store``, ``external_secret``).

Why ESO and not the Secrets Store CSI driver: the apps' contract is environment variables
(``DATABASE_URL``, ``DATABASE_URL_POOLED``, ``REDIS_URL_<ROLE>``, docs/apps.md), loaded with
``envFrom`` from a Kubernetes Secret. ESO writes exactly such a Secret, and its template builds
the URLs from the fields of the Secrets Manager secrets; the CSI driver mounts files and needs
a volume in every pod (plus its optional sync) to produce the same Secret. ESO is one Deployment
in its own namespace; the CSI driver is a DaemonSet and a provider DaemonSet on every node.

Least privilege: ESO itself has no AWS identity. Each consumer's ``SecretStore`` (namespaced)
authenticates with the consumer's own service account (``auth.jwt.serviceAccountRef``): ESO asks
the API server for a token of that account and assumes the IRSA role its
``eks.amazonaws.com/role-arn`` annotation names, whose policy allows ``GetSecretValue`` on exactly
that consumer's secrets (``credentials.secret_read_policy``; external-secrets.io, "AWS Secrets
Manager", "EKS Service Account credentials"). A store is therefore only ever as strong as one
service account, and an ExternalSecret can name only its own namespace's stores.

Chart ``external-secrets`` 2.10.0 (image ``ghcr.io/external-secrets/external-secrets:v2.10.0``,
release notes of v2.10.0, quoted in shaman007/home-k3s#682, 2026-08-28), with its CRDs
(``installCRDs``); the API is ``external-secrets.io/v1``. Nothing in the app namespace talks to
ESO: it reads the secrets from Secrets Manager and writes Kubernetes Secrets through the API
server, so the app namespace's NetworkPolicies need no flow for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s

from components import Between, require_valid

CHART_REPO = "https://charts.external-secrets.io"
API_VERSION = "external-secrets.io/v1"
#: ESO re-syncs a Secret when an ExternalSecret's annotations change; ``force-sync`` is the one its
#: documentation names for that (external-secrets.io, "ExternalSecret", "Refresh").
FORCE_SYNC_ANNOTATION = "force-sync"


@dataclass(frozen=True, kw_only=True)
class ExternalSecretsSettings:
    """``cofounder:externalSecrets``: External Secrets Operator, which copies Secrets Manager
    secrets into the Kubernetes Secrets the pods load."""

    #: Controller replicas (leader election: one syncs, the others wait).
    replicas: Annotated[int, Between(1, 5)] = 2
    #: Seconds between ESO's re-reads of each secret, besides the re-sync at every change the
    #: program makes (``force-sync``).
    refresh_interval_seconds: Annotated[int, Between(60, 86400)] = 3600


@dataclass(frozen=True, kw_only=True)
class ExternalSecretsArgs(ExternalSecretsSettings):
    """Settings plus the wiring."""

    namespace: str = "external-secrets"
    chart_version: str = "2.10.0"
    labels: dict[str, str] = field(default_factory=dict)


class ExternalSecrets(pulumi.ComponentResource):
    """ESO in its own namespace; pass ``release`` to the stores and ExternalSecrets so the CRDs exist first."""

    release: k8s.helm.v3.Release
    refresh_interval: str

    def __init__(self, name: str, args: ExternalSecretsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:secrets:ExternalSecrets", name, None, opts)
        require_valid(f"ExternalSecrets {name}", args)
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": args.namespace, "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/warn": "restricted"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name="external-secrets",
            chart="external-secrets",
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=namespace.metadata.name,
            atomic=True,
            timeout=600,
            values={
                "installCRDs": True,
                "replicaCount": args.replicas,
                "leaderElect": True,
                # No identity of its own: every store brings its consumer's service account.
                "serviceAccount": {"create": True, "annotations": {}},
                "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.refresh_interval = f"{args.refresh_interval_seconds}s"
        self.register_outputs({"release_status": self.release.status})


@dataclass(frozen=True)
class RemoteField:
    """One field of a Secrets Manager secret's JSON, under a key of the ExternalSecret's data."""

    secret_key: str
    secret_arn: pulumi.Input[str]
    property: str


def secret_store(name: str, parent: pulumi.Resource, *, namespace: pulumi.Input[str], service_account: str,
                 region: str, labels: Mapping[str, str],
                 depends_on: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    """SecretStore ``<service_account>``: Secrets Manager in ``region`` as that service account (IRSA)."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=API_VERSION,
        kind="SecretStore",
        metadata={"name": service_account, "namespace": namespace, "labels": dict(labels)},
        spec={"provider": {"aws": {
            "service": "SecretsManager",
            "region": region,
            "auth": {"jwt": {"serviceAccountRef": {"name": service_account}}},
        }}},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def external_secret(name: str, parent: pulumi.Resource, *, namespace: pulumi.Input[str], store: str,
                    target: str, fields: Sequence[RemoteField], template: Mapping[str, pulumi.Input[str]] | None,
                    versions: Sequence[pulumi.Input[str]], refresh_interval: str, labels: Mapping[str, str],
                    depends_on: Sequence[pulumi.Resource]) -> k8s.apiextensions.CustomResource:
    """ExternalSecret ``<target>``: Secret ``target`` (owned by ESO) from ``fields`` of the store's
    secrets, shaped by ``template`` (ESO's v2 Go templates over the data keys) when given. Its
    ``force-sync`` annotation is the secrets' version ids, so a new version is synced at once."""
    spec: dict = {
        "refreshInterval": refresh_interval,
        "secretStoreRef": {"name": store, "kind": "SecretStore"},
        "target": {"name": target, "creationPolicy": "Owner", "deletionPolicy": "Retain"},
        "data": [{"secretKey": f.secret_key, "remoteRef": {"key": f.secret_arn, "property": f.property}}
                 for f in fields],
    }
    if template is not None:
        spec["target"]["template"] = {"engineVersion": "v2", "type": "Opaque", "data": dict(template)}
    return k8s.apiextensions.CustomResource(
        name,
        api_version=API_VERSION,
        kind="ExternalSecret",
        metadata={"name": target, "namespace": namespace, "labels": dict(labels),
                  "annotations": {FORCE_SYNC_ANNOTATION: pulumi.Output.all(*versions).apply(
                      lambda v: ",".join(str(x) for x in v))}},
        spec=spec,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )
