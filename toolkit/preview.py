"""``make preview``: the offline desired-state preview of one stack.

Runs ``infra/`` exactly as the Pulumi CLI does, under the SDK's mock runtime with the stack's
real config, then prints the declared resources grouped by component, a count per type, the
derived reports and the stack outputs (secrets masked), and writes
``build/preview/<stack>.json`` (format: ``toolkit/snapshot.py``).

Usage: ``python -m toolkit.preview [--stack dev] [--out build/preview]``
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from toolkit import burst_chart, snapshot
from toolkit.errors import main_guard
from toolkit.harness import Program, Resource, run_stack
from toolkit.reports import build_reports
from toolkit.stackfile import REPO

#: Per resource type, the input paths a reviewer wants to see in the table.
HIGHLIGHTS: dict[str, list[str]] = {
    "aws:ec2/vpc:Vpc": ["cidrBlock"],
    "aws:ec2/subnet:Subnet": ["availabilityZone", "cidrBlock"],
    "aws:ec2/natGateway:NatGateway": ["subnetId"],
    "aws:ec2/flowLog:FlowLog": ["trafficType", "maxAggregationInterval"],
    "aws:cloudwatch/logGroup:LogGroup": ["name", "retentionInDays", "kmsKeyId"],
    "aws:ec2/vpcEndpoint:VpcEndpoint": ["serviceName", "vpcEndpointType"],
    "aws:ec2/routeTable:RouteTable": ["routes"],
    "aws:rds/instance:Instance": ["instanceClass", "engineVersion", "multiAz", "allocatedStorage",
                                  "maxAllocatedStorage", "storageType", "backupRetentionPeriod",
                                  "deletionProtection", "skipFinalSnapshot", "publiclyAccessible"],
    "aws:rds/parameterGroup:ParameterGroup": ["family", "parameters"],
    "aws:elasticache/replicationGroup:ReplicationGroup": ["engine", "engineVersion", "nodeType", "numNodeGroups",
                                                          "replicasPerNodeGroup", "multiAzEnabled",
                                                          "transitEncryptionMode", "snapshotRetentionLimit"],
    "aws:elasticache/parameterGroup:ParameterGroup": ["family", "parameters"],
    "aws:sqs/queue:Queue": ["name", "visibilityTimeoutSeconds", "messageRetentionSeconds", "redrivePolicy"],
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ["fromPort", "referencedSecurityGroupId"],
    "random:index/randomPassword:RandomPassword": ["length", "special"],
    "kubernetes:core/v1:Service": ["metadata.name", "spec.ports"],
    "kubernetes:core/v1:Secret": ["metadata.namespace", "stringData"],
    "kubernetes:core/v1:ConfigMap": ["metadata.namespace"],
    "kubernetes:autoscaling/v2:HorizontalPodAutoscaler": ["spec.minReplicas", "spec.maxReplicas",
                                                          "spec.behavior.scaleUp.policies"],
    "kubernetes:keda.sh/v1alpha1:ScaledObject": ["spec.minReplicaCount", "spec.maxReplicaCount",
                                                 "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies"],
    "kubernetes:policy/v1:PodDisruptionBudget": ["spec.maxUnavailable"],
    "kubernetes:networking.k8s.io/v1:NetworkPolicy": ["spec.policyTypes", "spec.ingress[0].ports",
                                                      "spec.egress[0].ports"],
    # edge: the tiers (path pattern per behavior, TTLs per cache policy, Cache-Control per headers policy)
    "aws:cloudfront/distribution:Distribution": [
        "priceClass", "httpVersion", "aliases", "viewerCertificate.minimumProtocolVersion",
        "viewerCertificate.cloudfrontDefaultCertificate", "webAclId", "defaultCacheBehavior.viewerProtocolPolicy",
        "orderedCacheBehaviors[0].pathPattern", "orderedCacheBehaviors[1].pathPattern",
        "orderedCacheBehaviors[2].pathPattern"],
    "aws:cloudfront/cachePolicy:CachePolicy": ["minTtl", "defaultTtl", "maxTtl"],
    "aws:cloudfront/vpcOrigin:VpcOrigin": ["vpcOriginEndpointConfig.originProtocolPolicy"],
    "aws:lb/loadBalancer:LoadBalancer": ["internal", "idleTimeout", "enableDeletionProtection",
                                         "dropInvalidHeaderFields", "accessLogs.enabled"],
    "aws:lb/targetGroup:TargetGroup": ["targetType", "port", "deregistrationDelay", "healthCheck.path"],
    "aws:lb/listener:Listener": ["protocol", "port", "sslPolicy"],
    "aws:lb/listenerRule:ListenerRule": ["priority", "conditions[0].pathPattern.values"],
    "aws:wafv2/webAcl:WebAcl": ["scope", "region", "rules[0].statement.rateBasedStatement.limit"],
    "kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding": ["spec.serviceRef.name", "spec.targetType"],
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": ["customHeadersConfig.items[0].value"],
    "aws:cloudfront/originAccessControl:OriginAccessControl": ["signingBehavior", "signingProtocol"],
    "aws:cloudfront/function:Function": ["runtime", "publish"],
    "aws:s3/bucket:Bucket": ["forceDestroy"],
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": [
        "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"],
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ["rule.objectOwnership"],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": [
        "rules[0].applyServerSideEncryptionByDefault.sseAlgorithm"],
    "aws:s3/bucketVersioning:BucketVersioning": ["versioningConfiguration.status"],
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": [
        "rules[0].noncurrentVersionExpiration.noncurrentDays", "rules[0].expiration.days"],
    "aws:s3/bucketAcl:BucketAcl": ["accessControlPolicy.grants[1].permission"],
    "aws:s3/bucketPolicy:BucketPolicy": ["bucket"],
    "aws:eks/cluster:Cluster": ["version", "vpcConfig.endpointPrivateAccess", "vpcConfig.endpointPublicAccess",
                                "vpcConfig.publicAccessCidrs", "accessConfig.authenticationMode",
                                "enabledClusterLogTypes"],
    "aws:eks/nodeGroup:NodeGroup": ["instanceTypes", "capacityType", "scalingConfig", "updateConfig.maxUnavailable",
                                    "taints"],
    "aws:ec2/launchTemplate:LaunchTemplate": ["metadataOptions.httpTokens", "metadataOptions.httpPutResponseHopLimit",
                                              "blockDeviceMappings[0].ebs.volumeType",
                                              "blockDeviceMappings[0].ebs.volumeSize",
                                              "blockDeviceMappings[0].ebs.encrypted"],
    "aws:eks/addon:Addon": ["addonName", "addonVersion", "configurationValues"],
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": ["principalArn", "accessScope.type"],
    "aws:kms/key:Key": ["enableKeyRotation", "deletionWindowInDays", "region"],
    "aws:autoscaling/tag:Tag": ["tag.key", "tag.value"],
    "kubernetes:core/v1:Namespace": ["metadata.name", "metadata.labels"],
    "kubernetes:scheduling.k8s.io/v1:PriorityClass": ["value", "preemptionPolicy", "globalDefault"],
    "kubernetes:apps/v1:Deployment": ["metadata.namespace", "spec.replicas",
                                      "spec.template.spec.priorityClassName"],
    "kubernetes:helm.sh/v3:Release": [
        "chart", "version", "namespace", "repositoryOpts.repo", "values.prometheus.prometheusSpec.retention",
        "values.prometheus.prometheusSpec.retentionSize",
        "values.prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.resources.requests.storage",
        "values.prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec.storageClassName"],
    "kubernetes:monitoring.coreos.com/v1:ServiceMonitor": [
        "spec.namespaceSelector.matchNames", "spec.selector.matchLabels", "spec.endpoints[0].port"],
    "kubernetes:monitoring.coreos.com/v1:PodMonitor": [
        "spec.namespaceSelector.matchNames", "spec.selector.matchLabels", "spec.podMetricsEndpoints[0].port"],
    "aws:cloudwatch/metricAlarm:MetricAlarm": ["metricName", "dimensions", "comparisonOperator", "threshold"],
    "aws:sns/topic:Topic": ["name", "kmsMasterKeyId"],
    "kubernetes:monitoring.coreos.com/v1:PrometheusRule": ["metadata.namespace", "metadata.name"],
}
_SKIP = {"tags", "tagsAll", "name", "assumeRolePolicy", "policy"}


def lookup(value: Any, path: str) -> Any:
    """``a.b[0].c`` into nested dicts and lists; None where the path does not exist."""
    for part in path.replace("]", "").replace("[", ".").split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def settings(resource: Resource) -> str:
    inputs = snapshot.mask(resource.inputs)
    paths = HIGHLIGHTS.get(resource.type)
    if paths is None:
        paths = [k for k, v in sorted(inputs.items())
                 if k not in _SKIP and isinstance(v, (str, int, float, bool))][:3]
    parts = []
    for path in paths:
        value = lookup(inputs, path)
        if value is not None:
            parts.append(f"{path}={_short(value)}")
    if resource.options.get("protect"):
        parts.append("protect")
    return " ".join(parts)


def _short_type(type_: str) -> str:
    pkg, module, kind = (type_.split(":") + ["", ""])[:3]
    return f"{pkg}:{module.split('/')[0]}:{kind}" if kind else type_


def render(program: Program, reports: dict) -> str:
    lines = [
        f"Offline preview of stack '{program.stack}'",
        "This is the desired state the program declares, computed under the Pulumi SDK's mock",
        f"runtime with stacks/Pulumi.{program.stack}.yaml. No cloud was contacted; it is not a diff against AWS.",
        "",
    ]
    groups: dict[str, list[Resource]] = {}
    for r in program.resources:
        if r.component and r.parent is None:
            groups.setdefault(r.urn, [])
            continue
        top = program.component_of(r)
        groups.setdefault(top.urn if top else "(stack)", []).append(r)
    for key in sorted(groups):
        members = groups[key]
        if key == "(stack)":
            title = "top-level resources"
        else:
            comp = program.get(key)
            title = f"{comp.name}  [{comp.type}]"
        lines.append(f"== {title}  ({len(members)} resources)")
        rows = [(_short_type(r.type), r.name, settings(r)) for r in members]
        w1 = max([len(a) for a, _, _ in rows] + [4])
        w2 = max([len(b) for _, b, _ in rows] + [4])
        for a, b, c in sorted(rows):
            lines.append(f"  {a:<{w1}}  {b:<{w2}}  {c}".rstrip())
        lines.append("")

    counts = Counter(r.type for r in program.resources if r.custom)
    lines.append(f"== resources per type ({sum(counts.values())} resources, "
                 f"{sum(1 for r in program.resources if r.component)} components)")
    for type_, n in sorted(counts.items()):
        lines.append(f"  {n:>4}  {type_}")
    lines.append("")

    for name, rep in reports.items():
        status = "" if rep.get("ok", True) else "  ** TARGET MISSED **"
        lines.append(f"== {rep.get('title', name)}{status}")
        rows = rep.get("rows", [])
        if rows:
            cols = list(rows[0])
            widths = [max(len(str(c)), *(len(str(r.get(c, ""))) for r in rows)) for c in cols]
            lines.append("  " + "  ".join(f"{c:<{w}}" for c, w in zip(cols, widths, strict=False)))
            for row in rows:
                cells = (f"{str(row.get(c, '')):<{w}}" for c, w in zip(cols, widths, strict=False))
                lines.append("  " + "  ".join(cells))
        for note in rep.get("notes", []):
            lines.append(f"  {note}")
        lines.append("")

    lines.append("== stack outputs (secrets masked)")
    for key, value in snapshot.mask(program.outputs).items():
        lines.append(f"  {key}: {_short(value, 100)}")
    return "\n".join(lines) + "\n"


#: Set to ``off`` to skip the SVG (``make diff`` does: its report draws the burst as Mermaid).
CHART_ENV = "COFOUNDER_BURST_CHART"


def write_cost_and_burst(stack: str, reports: dict, out_dir: Path) -> list[Path]:
    """``<stack>.cost.json``, ``<stack>.burst.json`` and ``<stack>.burst.svg`` from the two reports' data
    (formats: docs/cost-and-burst.md); stale files of a stack that no longer has them are removed."""
    written = []
    for name, suffix in (("cost", "cost.json"), ("burst", "burst.json")):
        path = out_dir / f"{stack}.{suffix}"
        data = (reports.get(name) or {}).get("data")
        if data is None:
            path.unlink(missing_ok=True)
            continue
        path.write_text(snapshot.dumps(data))
        written.append(path)
    chart = out_dir / f"{stack}.burst.svg"
    burst = (reports.get("burst") or {}).get("data")
    if burst is None or os.environ.get(CHART_ENV) == "off":
        chart.unlink(missing_ok=True)
    else:
        burst_chart.write(chart, stack, burst)
        written.append(chart)
    return written


def preview(stack: str, out_dir: Path, stacks_dir: Path | None = None) -> tuple[str, Path]:
    program = run_stack(stack, stacks_dir=stacks_dir)
    reports = build_reports(program)
    doc = snapshot.build(program, reports)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stack}.json"
    path.write_text(snapshot.dumps(doc))
    write_cost_and_burst(stack, reports, out_dir)
    return render(program, snapshot.mask(reports, sort=False)), path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", default=str(REPO / "build" / "preview"))
    parser.add_argument("--stacks-dir", default=None, help="folder of Pulumi.<stack>.yaml files")
    args = parser.parse_args()
    text, path = preview(args.stack, Path(args.out), Path(args.stacks_dir) if args.stacks_dir else None)
    print(text, end="")
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    print(f"\nDesired state written to {shown}; cost and burst beside it ({shown.stem}.cost.json, "
          f"{shown.stem}.burst.json, {shown.stem}.burst.svg)")
    return 0


if __name__ == "__main__":
    main_guard(main)
