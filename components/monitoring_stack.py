"""MonitoringStack: Prometheus, Alertmanager and Grafana from the official kube-prometheus-stack chart.

Builds the ``monitoring`` namespace, the Helm release of prometheus-community's
kube-prometheus-stack (pinned chart version; the chart version pins every image it ships), a
generated Grafana admin password held only in a Kubernetes Secret, the project's dashboards as
ConfigMaps for Grafana's dashboard sidecar and, when the cluster's OIDC provider is given, an IRSA
role that lets Grafana read CloudWatch (ElastiCache and SQS are managed services: their figures
live there, not in Prometheus).

Prometheus keeps ``retention_days`` of data, capped at ``retention_size_gib``, on a gp3 volume.
It selects every ServiceMonitor, PodMonitor and PrometheusRule in the cluster
(``*SelectorNilUsesHelmValues: false``) so the project's own monitors and rules
(``ScrapeTargets``, ``AlertRules``) are picked up wherever they live; they also carry the release
label (``monitor_labels``) so a stricter selector would still match them.

EKS runs the control plane, so the chart's scrapers for etcd, the scheduler and the controller
manager are off (they could only ever report "target down"), as is kube-proxy, whose metrics
endpoint binds to localhost on EKS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import Between, Matches, require_valid
from components.irsa_role import IrsaRole, IrsaRoleArgs

CHART_REPO = "https://prometheus-community.github.io/helm-charts"
CHART = "kube-prometheus-stack"
#: Helm release name; the chart labels its objects (and selects by default) with ``release: <this>``.
RELEASE_NAME = "kube-prometheus-stack"
#: Grafana's service account, fixed so the IRSA trust policy can name it.
GRAFANA_SERVICE_ACCOUNT = "grafana"
#: The sidecar loads every ConfigMap carrying this label (chart values grafana.sidecar.dashboards).
DASHBOARD_LABEL = ("grafana_dashboard", "1")
#: Labels on the Prometheus server pods: prometheus-operator puts ``app.kubernetes.io/name:
#: prometheus`` on every Prometheus it runs (pkg/prometheus/server/statefulset.go, the pod
#: selector labels). What a NetworkPolicy names to admit the scrapes.
PROMETHEUS_POD_SELECTOR = {"app.kubernetes.io/name": "prometheus"}
#: UID of the CloudWatch data source the dashboards reference.
CLOUDWATCH_DATASOURCE_UID = "cloudwatch"

# CloudWatch's read APIs have no resource-level permissions: "*" is the narrowest resource.
GRAFANA_CLOUDWATCH_POLICY = json.dumps({
    "Version": "2012-10-17",
    "Statement": [{
        "Sid": "ReadMetrics",
        "Effect": "Allow",
        "Action": ["cloudwatch:GetMetricData", "cloudwatch:GetMetricStatistics",
                   "cloudwatch:ListMetrics", "cloudwatch:DescribeAlarms",
                   "cloudwatch:DescribeAlarmsForMetric", "cloudwatch:DescribeAlarmHistory",
                   "ec2:DescribeRegions", "tag:GetResources"],
        "Resource": "*",
    }],
})


@dataclass(frozen=True, kw_only=True)
class MonitoringStackSettings:
    """``cofounder:monitoring``: Prometheus, Alertmanager and Grafana (kube-prometheus-stack)."""

    #: The in-cluster monitoring stack with its monitors, alert rules and dashboards.
    enabled: bool = True
    #: kube-prometheus-stack chart version (pins every image it ships).
    chart_version: Annotated[str, Matches(r"\d+\.\d+\.\d+", "a value matching \\d+\\.\\d+\\.\\d+")] = "79.7.1"
    #: Days Prometheus keeps samples.
    retention_days: Annotated[int, Between(1, 365)] = 15
    #: Prometheus deletes old blocks beyond this size; keep it below ``storageGib``.
    retention_size_gib: Annotated[int, Between(1, 16384)] = 45
    #: Size of Prometheus' persistent volume.
    storage_gib: Annotated[int, Between(10, 16384)] = 50
    #: StorageClass of that volume (gp3: the encrypted class the cluster declares).
    storage_class: Annotated[str, Matches(r"[a-z0-9][a-z0-9.-]{0,62}", "a value matching [a-z0-9][a-z0-9.-]{0,62}")] = \
        "gp3"
    #: How often Prometheus scrapes every target.
    scrape_interval_seconds: Annotated[int, Between(5, 300)] = 30
    #: Deploy Grafana (with its admin Secret, dashboards and CloudWatch access).
    grafana_enabled: bool = True
    #: Node labels every monitoring pod must run on (e.g. the system node group); empty = anywhere.
    node_selector: dict[str, str] = field(default_factory=dict)

    def checks(self):
        if self.retention_size_gib > self.storage_gib * 0.9:
            yield ("retention_size_gib", self.retention_size_gib,
                   f"at most 90% of storageGib ({int(self.storage_gib * 0.9)}) so Prometheus prunes before the "
                   f"disk fills")


@dataclass(frozen=True, kw_only=True)
class MonitoringStackArgs(MonitoringStackSettings):
    """Settings plus the wiring."""

    #: AWS region of the CloudWatch data source (the stack's ``aws:region``).
    region: str
    #: Dashboards for Grafana: name -> dashboard JSON (``components.dashboards.load()``).
    dashboards: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "monitoring"
    #: Tolerations to get onto those nodes (EksCluster.system_tolerations for the tainted system group).
    tolerations: Sequence[dict] = ()
    #: The cluster's OIDC provider ARN and issuer URL: with both, Grafana gets an IRSA role and a
    #: CloudWatch data source; with neither, the CloudWatch panels stay empty.
    oidc_provider_arn: pulumi.Input[str] | None = None
    oidc_issuer_url: pulumi.Input[str] | None = None
    #: The StorageClass object behind ``storage_class`` when the program declares it: the release
    #: waits for it, or Prometheus' volume claim (and the atomic install) would wait forever.
    storage_class_resource: pulumi.Resource | None = None
    tags: dict[str, str] = field(default_factory=dict)


def chart_values(args: MonitoringStackArgs, grafana_secret: pulumi.Input[str] | None,
                 grafana_role_arn: pulumi.Input[str] | None) -> dict:
    """The kube-prometheus-stack values (keys as documented in the chart's values.yaml)."""
    selector = dict(args.node_selector)
    tolerations = list(args.tolerations)
    # node-exporter is left alone: it must run on every node, and the chart tolerates all taints.
    placement = {"nodeSelector": selector, "tolerations": tolerations}
    prometheus_spec = {
        "retention": f"{args.retention_days}d",
        # Prometheus size units are powers of 1024: "45GB" is 45 GiB.
        "retentionSize": f"{args.retention_size_gib}GB",
        "scrapeInterval": f"{args.scrape_interval_seconds}s",
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
        "probeSelectorNilUsesHelmValues": False,
        "storageSpec": {"volumeClaimTemplate": {"spec": {
            "storageClassName": args.storage_class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": f"{args.storage_gib}Gi"}},
        }}},
        **placement,
    }
    values: dict = {
        "crds": {"enabled": True},
        "prometheus": {"prometheusSpec": prometheus_spec},
        "alertmanager": {"alertmanagerSpec": placement},
        "prometheusOperator": {**placement, "admissionWebhooks": {"patch": placement}},
        "kube-state-metrics": placement,
        "kubeEtcd": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeControllerManager": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "grafana": {"enabled": args.grafana_enabled},
    }
    if args.grafana_enabled:
        grafana: dict = {
            "enabled": True,
            "admin": {"existingSecret": grafana_secret, "userKey": "admin-user",
                      "passwordKey": "admin-password"},
            "sidecar": {"dashboards": {"enabled": True, "label": DASHBOARD_LABEL[0],
                                       "labelValue": DASHBOARD_LABEL[1]}},
            **placement,
            "serviceAccount": {"create": True, "name": GRAFANA_SERVICE_ACCOUNT},
        }
        if grafana_role_arn is not None:
            grafana["serviceAccount"]["annotations"] = {"eks.amazonaws.com/role-arn": grafana_role_arn}
            grafana["additionalDataSources"] = [{
                "name": "CloudWatch", "uid": CLOUDWATCH_DATASOURCE_UID, "type": "cloudwatch",
                "access": "proxy", "editable": False,
                # "default" is the AWS SDK chain, which picks up the IRSA web identity token.
                "jsonData": {"authType": "default", "defaultRegion": args.region},
            }]
        values["grafana"] = grafana
    return values


class MonitoringStack(pulumi.ComponentResource):
    """kube-prometheus-stack in its own namespace, with Grafana's secret, dashboards and CloudWatch access."""

    namespace: pulumi.Output[str]
    release_name: pulumi.Output[str]
    #: Labels for the project's ServiceMonitors, PodMonitors and PrometheusRules.
    monitor_labels: dict[str, str]
    #: The Helm release: custom resources of the operator's CRDs must depend on it.
    release: k8s.helm.v3.Release
    #: Labels that select the Prometheus pods (in ``namespace``), which scrape the monitors' targets.
    prometheus_selector: dict[str, str]
    grafana_admin_secret_name: pulumi.Output[str] | None
    grafana_role_arn: pulumi.Output[str] | None

    def __init__(self, name: str, args: MonitoringStackArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:observability:MonitoringStack", name, None, opts)
        require_valid(f"MonitoringStack {name}", args)
        labels = {"app.kubernetes.io/part-of": "cofounder", "app.kubernetes.io/component": "monitoring"}

        ns_name = self._namespace(name, args, labels).metadata.name
        secret_name = role_arn = None
        if args.grafana_enabled:
            secret_name = self._grafana_admin_secret(name, ns_name, labels).metadata.name
            self._dashboards(name, args, ns_name, labels)
            if args.oidc_provider_arn is not None and args.oidc_issuer_url is not None:
                role_arn = self._grafana_role(name, args).role_arn
        self.release = self._release(name, args, ns_name, secret_name, role_arn)

        self.namespace = ns_name
        self.release_name = self.release.name
        self.monitor_labels = {"release": RELEASE_NAME}
        self.prometheus_selector = dict(PROMETHEUS_POD_SELECTOR)
        self.grafana_admin_secret_name = secret_name
        self.grafana_role_arn = role_arn
        self.register_outputs({
            "namespace": self.namespace,
            "release_name": self.release_name,
            "grafana_admin_secret_name": self.grafana_admin_secret_name,
        })

    def _namespace(self, name: str, args: MonitoringStackArgs, labels: dict) -> k8s.core.v1.Namespace:
        """The monitoring namespace (Pod Security ``privileged`` enforced, ``restricted`` audited)."""
        return k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.namespace,
                labels={**labels,
                        # node-exporter needs the host's network, PID namespace and /proc:
                        # only "privileged" admits it. Audit still reports against "restricted".
                        "pod-security.kubernetes.io/enforce": "privileged",
                        "pod-security.kubernetes.io/audit": "restricted"},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _grafana_admin_secret(self, name: str, ns_name: pulumi.Output[str], labels: dict) -> k8s.core.v1.Secret:
        """Grafana's admin Secret, its password generated."""
        password = random.RandomPassword(f"{name}-grafana-admin", length=32, special=False,
                                         opts=pulumi.ResourceOptions(parent=self))
        return k8s.core.v1.Secret(
            f"{name}-grafana-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="grafana-admin", namespace=ns_name, labels=labels),
            type="Opaque",
            string_data={"admin-user": "admin", "admin-password": password.result},
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["data", "stringData"]),
        )

    def _dashboards(self, name: str, args: MonitoringStackArgs, ns_name: pulumi.Output[str], labels: dict) -> None:
        """One ConfigMap per dashboard, labelled for Grafana's dashboard sidecar."""
        for dashboard, body in sorted(args.dashboards.items()):
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{dashboard}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"grafana-dashboard-{dashboard}", namespace=ns_name,
                    labels={**labels, DASHBOARD_LABEL[0]: DASHBOARD_LABEL[1]}),
                data={f"{dashboard}.json": body},
                opts=pulumi.ResourceOptions(parent=self),
            )

    def _grafana_role(self, name: str, args: MonitoringStackArgs) -> IrsaRole:
        """Grafana's IRSA role, which reads CloudWatch."""
        assert args.oidc_provider_arn is not None and args.oidc_issuer_url is not None
        return IrsaRole(f"{name}-grafana", IrsaRoleArgs(
            oidc_provider_arn=args.oidc_provider_arn, oidc_issuer_url=args.oidc_issuer_url,
            namespace=args.namespace, service_account=GRAFANA_SERVICE_ACCOUNT,
            policy_json=GRAFANA_CLOUDWATCH_POLICY,
            tags={**args.tags, "component": "observability"}), opts=pulumi.ResourceOptions(parent=self))

    def _release(self, name: str, args: MonitoringStackArgs, ns_name: pulumi.Output[str],
                 secret_name: pulumi.Output[str] | None, role_arn: pulumi.Output[str] | None) -> k8s.helm.v3.Release:
        """The kube-prometheus-stack Helm release."""
        return k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=RELEASE_NAME,
            chart=CHART,
            version=args.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=CHART_REPO),
            namespace=ns_name,
            values=chart_values(args, secret_name, role_arn),
            timeout=900,
            cleanup_on_fail=True,
            max_history=10,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.storage_class_resource]
                                        if args.storage_class_resource is not None else []),
        )
