"""AppLoadBalancer: the internal ALB in front of the frontend and the backend API.

The request path: viewer -> CloudFront (``components/edge_distribution.py``) -> this ALB through
a CloudFront VPC origin -> listener rule -> an ``ip`` target group -> the app's pods, which the
AWS Load Balancer Controller registers through a ``TargetGroupBinding`` per Service
(``components/app_service.py``). The program declares the ALB itself (not an Ingress) so the
VPC origin can take its ARN in the same program.

Routing: ``/api/*`` (the API and its server-sent events stream ``/api/events``) goes to the
backend; everything else to the frontend, or, for a static-export stack without a pages app,
to a fixed 404 (CloudFront sends only ``/api/*`` here then).

What protects the ALB: it is internal (private subnets, no public address) and CloudFront is
its only client. Its security group admits the listener port only from CloudFront: from the
``CloudFront-VPCOrigins-Service-SG`` security group that CloudFront creates in the VPC with the
first VPC origin (looked up once the VPC origin exists), and from CloudFront's origin-facing
managed prefix list (``com.amazonaws.global.cloudfront.origin-facing``), the rule AWS asks for
while the VPC origin is created; that prefix list holds public CloudFront addresses, which
cannot reach an internal ALB any other way. The prefix list weighs 55 rules against the
security group's quota of 60, so the group holds only these rules and one port. Without a
certificate the hop from the VPC origin to the ALB is plain HTTP inside the VPC; with
``certificateArn`` and ``originDomainName`` (a name on that regional ACM certificate that
resolves to the ALB) the listener is HTTPS only, with a TLS 1.3/1.2 policy, and the VPC origin
is ``https-only``.

Draining: a target group's deregistration delay is the app's ``terminationGracePeriodSeconds
- preStopSleepSeconds`` (``capacity/drain.py`` has the arithmetic and the checks).
Idle timeout 120 s: above everything on the client side (CloudFront waits at most 60 s for a
byte and reuses idle connections for at most 60 s), so the edge, never the ALB, ends a slow or
idle request, and a connection CloudFront reuses is never one the ALB just closed. The apps'
own HTTP keep-alive timeout must exceed it (Node.js ``server.keepAliveTimeout = 125_000``).

Access logs go to a private bucket in the stack's region (ALB logs support SSE-S3 only),
written by the region's Elastic Load Balancing account and log-delivery service principal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws

from components import Between, ComponentArgsError, Matches, require_valid
from components.private_bucket import private_bucket, tls_only_policy

#: Created by CloudFront in the VPC with its first VPC origin; carries CloudFront's ENIs there.
VPC_ORIGIN_SECURITY_GROUP = "CloudFront-VPCOrigins-Service-SG"
CLOUDFRONT_ORIGIN_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"
#: AZ ids CloudFront VPC origins do not support (CloudFront developer guide, "Restrict access
#: with VPC origins", supported Regions); the ALB's subnets leave them out.
VPC_ORIGIN_UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "apne1-az3", "cac1-az3")
API_PATH_PATTERN = "/api/*"
#: TLS policies with TLS 1.3 and 1.2 only (Elastic Load Balancing, "Security policies").
TLS_POLICIES = ("ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09")
_ACM = r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}"
_HOSTNAME = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
_APP_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"


@dataclass(frozen=True, kw_only=True)
class LoadBalancerSettings:
    """``cofounder:loadBalancer``: the internal ALB behind CloudFront. Defaults are production-safe."""

    #: Seconds a connection may sit idle; above CloudFront's 60 s read and keep-alive timeouts.
    idle_timeout_seconds: Annotated[int, Between(1, 4000)] = 120
    #: Refuse to delete the ALB until this is switched off (pulumi destroy fails on it).
    deletion_protection: bool = True
    #: Days the ALB access logs are kept.
    access_log_retention_days: Annotated[int, Between(1, 3653)] = 90
    #: Regional ACM certificate for originDomainName: HTTPS from CloudFront to the ALB; none: HTTP inside the VPC.
    certificate_arn: Annotated[str | None, Matches(
        _ACM, "an ACM certificate ARN in the stack's region, such as "
        "arn:aws:acm:us-east-1:123456789012:certificate/<uuid>")] = None
    #: Name on the certificate that resolves to the ALB (CloudFront's TLS name for it); set with certificateArn.
    origin_domain_name: Annotated[str | None, Matches(_HOSTNAME, "a host name such as origin.example.com")] = None
    #: Accept plain HTTP from CloudFront's VPC origin to the ALB where the pack requires HTTPS (prod): the hop
    #: stays inside the VPC, unencrypted. Only without certificateArn; the policy pack reads it, the ALB is the same.
    allow_http_origin: bool = False
    #: TLS policy of the HTTPS listener (TLS 1.3 and 1.2 only).
    ssl_policy: Literal["ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
                        "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09", "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09"] = \
        "ELBSecurityPolicy-TLS13-1-2-2021-06"
    #: The app behind /api/* (and its server-sent events stream /api/events).
    api_app: Annotated[str, Matches(_APP_NAME, "an app name of cofounder:apps")] = "backend"
    #: The app serving everything else, when pages come from the app (cofounder:edge.htmlOrigin app).
    pages_app: Annotated[str, Matches(_APP_NAME, "an app name of cofounder:apps")] = "frontend"
    #: Pulumi ``protect`` on the access-log bucket.
    protect: bool = True
    #: Let ``pulumi destroy`` delete a non-empty access-log bucket (throwaway stacks only).
    force_destroy: bool = False

    def checks(self):
        if (self.certificate_arn is None) != (self.origin_domain_name is None):
            missing = "origin_domain_name" if self.origin_domain_name is None else "certificate_arn"
            yield (missing, None, "certificateArn and originDomainName together: CloudFront checks the "
                   "ALB's certificate against the name it connects to")
        if self.allow_http_origin and self.certificate_arn is not None:
            yield ("allow_http_origin", True, "false (or unset) once certificateArn is set: the VPC origin then "
                   "connects over HTTPS only")


@dataclass(frozen=True, kw_only=True)
class LoadBalancedApp:
    """One app behind the ALB, from its AppService settings."""

    #: The container port the pods serve on (the target port).
    port: int
    health_check_path: str
    #: Port of the readiness probe when it differs from ``port``.
    health_check_port: int | None = None
    #: How long a deregistering pod keeps its in-flight requests (``capacity.drain``).
    deregistration_delay_seconds: Annotated[int, Between(0, 3600)]


@dataclass(frozen=True, kw_only=True)
class AppLoadBalancerArgs(LoadBalancerSettings):
    """Settings plus the wiring."""

    vpc_id: pulumi.Input[str]
    #: The private subnets and their AZ ids (same order); unsupported zones are left out.
    subnet_ids: pulumi.Input[Sequence[str]]
    subnet_zone_ids: pulumi.Input[Sequence[str]]
    #: The EKS cluster security group (on every node and pod ENI): the ALB's only destination.
    cluster_security_group_id: pulumi.Input[str]
    #: The apps the ALB can route to, by name: ``api_app`` always, ``pages_app`` unless the
    #: stack serves a static export (the listener then answers 404 outside ``/api/*``).
    targets: Mapping[str, LoadBalancedApp]
    tags: dict[str, str] = field(default_factory=dict)

    def checks(self):
        yield from LoadBalancerSettings.checks(self)
        if self.api_app not in self.targets:
            yield "api_app", self.api_app, "one of the targets: " + ", ".join(sorted(self.targets))
        if self.pages_app == self.api_app:
            yield "pages_app", self.pages_app, f"an app other than the API app ({self.api_app})"


def vpc_origin_subnets(subnet_ids: Sequence[str], zone_ids: Sequence[str]) -> list[str]:
    """The subnets in zones CloudFront VPC origins support; an ALB needs two zones at least."""
    kept = [s for s, z in zip(subnet_ids, zone_ids, strict=False) if z not in VPC_ORIGIN_UNSUPPORTED_ZONE_IDS]
    if len(kept) < 2:
        raise ComponentArgsError(
            f"AppLoadBalancer: the ALB needs private subnets in two zones that CloudFront VPC origins "
            f"support, got zone ids {list(zone_ids)} (unsupported: {', '.join(VPC_ORIGIN_UNSUPPORTED_ZONE_IDS)}); "
            f"add a zone to cofounder:network.availabilityZones")
    return kept


class AppLoadBalancer(pulumi.ComponentResource):
    """An internal ALB, its listener, rules and target groups, and the VPC origin CloudFront uses."""

    arn: pulumi.Output[str]
    #: ``app/<name>/<id>``: the ``LoadBalancer`` dimension of its CloudWatch metrics.
    arn_suffix: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    vpc_origin_id: pulumi.Output[str]
    #: The name CloudFront connects to (originDomainName, else the ALB's DNS name).
    origin_domain_name: pulumi.Output[str]
    #: Per app: the target group ARN (for its TargetGroupBinding) and its CloudWatch dimension.
    target_group_arns: dict[str, pulumi.Output[str]]
    target_group_arn_suffixes: dict[str, pulumi.Output[str]]
    listener_port: int

    def __init__(self, name: str, args: AppLoadBalancerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:edge:AppLoadBalancer", name, None, opts)
        require_valid(f"AppLoadBalancer {name}", args)
        tags = {**args.tags, "component": "edge"}
        https = args.certificate_arn is not None
        self.listener_port = 443 if https else 80
        apps = list(args.targets.values())

        security_group = self._security_group(name, args, apps, tags)
        log_bucket, log_policy = self._access_log_bucket(f"{name}-logs", args, tags)
        lb = self._load_balancer(name, args, security_group, log_bucket, log_policy, tags)
        groups = {app: self._target_group(name, app, target, args, tags) for app, target in args.targets.items()}
        self._listener(name, args, lb, groups, tags)
        vpc_origin = self._vpc_origin(name, lb, https, tags)
        self._admit_vpc_origin(name, args, security_group, vpc_origin)

        self.arn = lb.arn
        self.arn_suffix = lb.arn_suffix
        self.dns_name = lb.dns_name
        self.security_group_id = security_group.id
        self.vpc_origin_id = vpc_origin.id
        self.origin_domain_name = (pulumi.Output.from_input(args.origin_domain_name) if args.origin_domain_name
                                   else lb.dns_name)
        self.target_group_arns = {app: tg.arn for app, tg in groups.items()}
        self.target_group_arn_suffixes = {app: tg.arn_suffix for app, tg in groups.items()}
        self.register_outputs({
            "arn": self.arn,
            "dns_name": self.dns_name,
            "vpc_origin_id": self.vpc_origin_id,
            "target_group_arns": self.target_group_arns,
        })

    def _load_balancer(self, name: str, args: AppLoadBalancerArgs, security_group: aws.ec2.SecurityGroup,
                       log_bucket: aws.s3.Bucket, log_policy: aws.s3.BucketPolicy,
                       tags: dict) -> aws.lb.LoadBalancer:
        """The internal ALB, in the subnets a VPC origin can reach, logging to its bucket."""
        subnets = pulumi.Output.all(args.subnet_ids, args.subnet_zone_ids).apply(
            lambda v: vpc_origin_subnets(v[0], v[1]))
        return aws.lb.LoadBalancer(
            f"{name}-alb",
            internal=True,
            load_balancer_type="application",
            ip_address_type="ipv4",
            security_groups=[security_group.id],
            subnets=subnets,
            idle_timeout=args.idle_timeout_seconds,
            # AWS FSBP ELB.4: requests with malformed headers are dropped, not forwarded.
            drop_invalid_header_fields=True,
            desync_mitigation_mode="defensive",
            enable_deletion_protection=args.deletion_protection,
            access_logs={"bucket": log_bucket.bucket, "prefix": "alb", "enabled": True},
            tags=tags,
            # The ALB checks it may write its logs when logging is switched on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_policy]),
        )

    def _vpc_origin(self, name: str, lb: aws.lb.LoadBalancer, https: bool, tags: dict) -> aws.cloudfront.VpcOrigin:
        """The CloudFront VPC origin in front of the ALB."""
        return aws.cloudfront.VpcOrigin(
            f"{name}-vpc-origin",
            vpc_origin_endpoint_config={
                "name": f"{name}-alb",
                "arn": lb.arn,
                "http_port": 80,
                "https_port": 443,
                "origin_protocol_policy": "https-only" if https else "http-only",
                "origin_ssl_protocols": {"items": ["TLSv1.2"], "quantity": 1},
            },
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _security_group(self, name: str, args: AppLoadBalancerArgs, apps: list[LoadBalancedApp],
                        tags: dict) -> aws.ec2.SecurityGroup:
        """The ALB's group: in from CloudFront on the listener port, out to the pods' ports only."""
        child = pulumi.ResourceOptions(parent=self)
        group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            vpc_id=args.vpc_id,
            description="Internal ALB: reachable only from CloudFront's VPC origin",
            tags={**tags, "Name": f"{name}-alb"},
            opts=child,
        )
        prefix_list = aws.ec2.get_managed_prefix_list_output(
            name=CLOUDFRONT_ORIGIN_PREFIX_LIST, opts=pulumi.InvokeOutputOptions(parent=self))
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-cloudfront",
            security_group_id=group.id,
            prefix_list_id=prefix_list.id,
            ip_protocol="tcp", from_port=self.listener_port, to_port=self.listener_port,
            description="CloudFront origin-facing addresses", tags=tags, opts=child)
        for port in sorted({a.port for a in apps} | {a.health_check_port for a in apps if a.health_check_port}):
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-to-pods-{port}",
                security_group_id=group.id,
                referenced_security_group_id=args.cluster_security_group_id,
                ip_protocol="tcp", from_port=port, to_port=port,
                description="Requests and health checks to the app pods", tags=tags, opts=child)
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-into-pods-{port}",
                security_group_id=args.cluster_security_group_id,
                referenced_security_group_id=group.id,
                ip_protocol="tcp", from_port=port, to_port=port,
                description="From the internal ALB", tags=tags, opts=child)
        return group

    def _admit_vpc_origin(self, name: str, args: AppLoadBalancerArgs, group: aws.ec2.SecurityGroup,
                          vpc_origin: aws.cloudfront.VpcOrigin) -> None:
        # The service group exists once the VPC origin does; the lookup waits for it.
        service = aws.ec2.get_security_group_output(
            filters=[{"name": "group-name", "values": [VPC_ORIGIN_SECURITY_GROUP]},
                     {"name": "vpc-id", "values": [args.vpc_id]}],
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[vpc_origin]))
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-from-vpc-origin",
            security_group_id=group.id,
            referenced_security_group_id=service.id,
            ip_protocol="tcp", from_port=self.listener_port, to_port=self.listener_port,
            description="CloudFront VPC origin ENIs", tags={**args.tags, "component": "edge"},
            opts=pulumi.ResourceOptions(parent=self))

    def _access_log_bucket(self, name: str, args: AppLoadBalancerArgs,
                           tags: dict) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        logs = private_bucket(self, name, object_ownership="BucketOwnerEnforced",
                              noncurrent_version_expiration_days=7,
                              expiration_days=args.access_log_retention_days,
                              protect=args.protect, force_destroy=args.force_destroy, tags=tags)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        elb_account = aws.elb.get_service_account_output(opts=invoke).arn
        account = aws.get_caller_identity_output(opts=invoke).account_id

        def policy(v: list) -> str:
            bucket_arn, elb_arn, account_id = v
            resource = f"{bucket_arn}/alb/AWSLogs/{account_id}/*"
            # Regions older than August 2022 deliver through the region's ELB account, newer ones
            # through the log-delivery service principal; both are granted.
            return tls_only_policy(
                bucket_arn,
                {"Sid": "ElbAccountWritesAccessLogs", "Effect": "Allow", "Principal": {"AWS": elb_arn},
                 "Action": "s3:PutObject", "Resource": resource},
                {"Sid": "LogDeliveryWritesAccessLogs", "Effect": "Allow",
                 "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                 "Action": "s3:PutObject", "Resource": resource})
        bucket_policy = aws.s3.BucketPolicy(
            name,
            bucket=logs.bucket.bucket,
            policy=pulumi.Output.all(logs.bucket.arn, elb_account, account).apply(policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs.access_block]),
        )
        return logs.bucket, bucket_policy

    def _target_group(self, name: str, app_name: str, app: LoadBalancedApp, args: AppLoadBalancerArgs,
                      tags: dict) -> aws.lb.TargetGroup:
        return aws.lb.TargetGroup(
            f"{name}-{app_name}",
            target_type="ip",
            ip_address_type="ipv4",
            protocol="HTTP",
            protocol_version="HTTP1",
            port=app.port,
            vpc_id=args.vpc_id,
            deregistration_delay=app.deregistration_delay_seconds,
            # Agent calls last from milliseconds to a minute: send new requests to the pod with
            # the fewest in flight rather than round robin.
            load_balancing_algorithm_type="least_outstanding_requests",
            health_check={
                "enabled": True,
                "protocol": "HTTP",
                "path": app.health_check_path,
                "port": str(app.health_check_port) if app.health_check_port else "traffic-port",
                "matcher": "200-399",
                # Healthy after 2 x 5 s: a pod started for a burst takes traffic within ~10 s.
                "interval": 5,
                "timeout": 3,
                "healthy_threshold": 2,
                "unhealthy_threshold": 2,
            },
            tags={**tags, "app": app_name},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _listener(self, name: str, args: AppLoadBalancerArgs, lb: aws.lb.LoadBalancer,
                  groups: dict[str, aws.lb.TargetGroup], tags: dict) -> None:
        if args.pages_app in groups:
            default = {"type": "forward", "target_group_arn": groups[args.pages_app].arn}
        else:
            default = {"type": "fixed-response", "fixed_response": {
                "content_type": "text/plain", "status_code": "404", "message_body": "Not found"}}
        tls = ({"protocol": "HTTPS", "certificate_arn": args.certificate_arn, "ssl_policy": args.ssl_policy}
               if args.certificate_arn else {"protocol": "HTTP"})
        listener = aws.lb.Listener(
            f"{name}-listener",
            load_balancer_arn=lb.arn,
            port=self.listener_port,
            default_actions=[default],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
            **tls,
        )
        aws.lb.ListenerRule(
            f"{name}-api",
            listener_arn=listener.arn,
            priority=10,
            conditions=[{"path_pattern": {"values": [API_PATH_PATTERN]}}],
            actions=[{"type": "forward", "target_group_arn": groups[args.api_app].arn}],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
