"""Network: the VPC that the cluster, the databases and the caches live in.

Builds a VPC over the configured availability zones with one public and one private subnet per
zone, an internet gateway, NAT gateways (one per zone, or a single one to save cost outside
production), per-zone private route tables, an S3 gateway endpoint, a locked-down default
security group and VPC flow logs to CloudWatch Logs, encrypted with the network's own KMS key
(``components/log_encryption.py``).

Subnet sizing: private subnets get 1/8 of the VPC each (a /19 in a /16) because the VPC CNI gives
every pod a VPC address; public subnets only hold load balancers and NAT gateways and get small
blocks carved from the last eighth. Subnets carry the tags the AWS Load Balancer Controller and
the EKS cluster use to find them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws

from components import Between, ComponentArgsError, require_valid
from components.log_encryption import log_key


@dataclass(frozen=True, kw_only=True)
class NetworkSettings:
    """``cofounder:network``: the VPC every other component lives in. Defaults are production-safe."""

    #: The VPC's IPv4 range, /16 to /20; private subnets get an eighth each (the VPC CNI gives pods VPC addresses).
    cidr_block: str = "10.0.0.0/16"
    #: Availability zones to span (2 to 6, distinct, all in aws:region); three for production resilience.
    availability_zones: list[str]
    #: One NAT gateway for the whole VPC (cheaper, one AZ's failure cuts egress) instead of one per AZ.
    single_nat_gateway: bool = False
    #: Days CloudWatch Logs keeps the VPC flow logs.
    flow_log_retention_days: Annotated[int, Between(1, 3653)] = 90
    #: Which traffic the VPC flow logs record.
    flow_log_traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"
    #: Route S3 traffic through a free gateway endpoint instead of the NAT gateways.
    enable_s3_gateway_endpoint: bool = True

    def checks(self):
        try:
            net = ipaddress.IPv4Network(self.cidr_block)
        except ValueError:
            yield "cidr_block", self.cidr_block, "an IPv4 CIDR block such as 10.0.0.0/16"
            return
        if not 16 <= net.prefixlen <= 20:
            yield "cidr_block", self.cidr_block, "a prefix length between /16 and /20"
        if not 2 <= len(self.availability_zones) <= 6:
            yield "availability_zones", self.availability_zones, "between 2 and 6 zones (3 recommended)"
        if len(set(self.availability_zones)) != len(self.availability_zones):
            yield "availability_zones", self.availability_zones, "distinct zone names"


@dataclass(frozen=True, kw_only=True)
class NetworkArgs(NetworkSettings):
    """Settings plus the wiring."""

    #: Name of the EKS cluster that will use these subnets (for the kubernetes.io/cluster tag).
    cluster_name: str
    tags: dict[str, str] = field(default_factory=dict)


def subnet_plan(cidr_block: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Private and public subnet CIDRs: private = prefix+3 each, public = prefix+6 from the last eighth."""
    vpc = ipaddress.IPv4Network(cidr_block)
    eighths = list(vpc.subnets(prefixlen_diff=3))
    if zone_count > len(eighths) - 1:
        raise ComponentArgsError(f"{cidr_block} cannot hold {zone_count} private subnets")
    private = [str(n) for n in eighths[:zone_count]]
    public = [str(n) for n in list(eighths[-1].subnets(prefixlen_diff=3))[:zone_count]]
    return private, public


class Network(pulumi.ComponentResource):
    """A three-tier-ready VPC: public subnets for load balancers, private subnets for everything else."""

    vpc_id: pulumi.Output[str]
    vpc_arn: pulumi.Output[str]
    vpc_cidr_block: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]
    #: The private subnets' CIDR blocks (known before anything exists: the subnet plan's).
    private_subnet_cidr_blocks: list[str]
    #: AZ ids (``use1-az1``...) of the private subnets, in the same order: zone names map to
    #: different ids in every account, and some services (CloudFront VPC origins) exclude ids.
    private_subnet_zone_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:network:Network", name, None, opts)
        require_valid(f"Network {name}", args)
        tags = {**args.tags, "component": "network"}
        zones = list(args.availability_zones)
        private_cidrs, public_cidrs = subnet_plan(args.cidr_block, len(zones))

        vpc = self._vpc(name, args, tags)
        igw, public_rt = self._internet_route(name, vpc, tags)
        public_subnets, private_subnets = self._subnets(name, args, vpc, public_rt, zones, public_cidrs,
                                                        private_cidrs, tags)
        nats = self._nat_gateways(name, args, zones, public_subnets, igw, tags)
        private_rts = self._private_route_tables(name, args, vpc, zones, private_subnets, nats, tags)
        if args.enable_s3_gateway_endpoint:
            self._s3_gateway_endpoint(name, vpc, private_rts, tags)
        self._flow_logs(name, vpc, args, tags)

        self.vpc_id = vpc.id
        self.vpc_arn = vpc.arn
        self.vpc_cidr_block = vpc.cidr_block
        self.public_subnet_ids = pulumi.Output.all(*[s.id for s in public_subnets])
        self.private_subnet_ids = pulumi.Output.all(*[s.id for s in private_subnets])
        self.private_subnet_cidr_blocks = private_cidrs
        self.private_subnet_zone_ids = pulumi.Output.all(*[s.availability_zone_id for s in private_subnets])
        self.register_outputs({
            "vpc_id": self.vpc_id,
            "public_subnet_ids": self.public_subnet_ids,
            "private_subnet_ids": self.private_subnet_ids,
        })

    def _vpc(self, name: str, args: NetworkArgs, tags: dict) -> aws.ec2.Vpc:
        """The VPC, and its default security group emptied."""
        child = pulumi.ResourceOptions(parent=self)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr_block,
            enable_dns_hostnames=True,  # EKS private endpoint and RDS endpoints resolve through it
            enable_dns_support=True,
            tags={**tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        # CIS 5.4: the default security group must not allow any traffic.
        aws.ec2.DefaultSecurityGroup(f"{name}-default-sg", vpc_id=vpc.id, tags=tags, opts=child)
        return vpc

    def _internet_route(self, name: str, vpc: aws.ec2.Vpc,
                        tags: dict) -> tuple[aws.ec2.InternetGateway, aws.ec2.RouteTable]:
        """The internet gateway and the public subnets' route table through it."""
        child = pulumi.ResourceOptions(parent=self)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={**tags, "Name": f"{name}-public"},
            opts=child,
        )
        return igw, public_rt

    def _subnets(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, public_rt: aws.ec2.RouteTable,
                 zones: list[str], public_cidrs: list[str], private_cidrs: list[str],
                 tags: dict) -> tuple[list[aws.ec2.Subnet], list[aws.ec2.Subnet]]:
        """A public and a private subnet per zone, tagged for load balancers and the cluster."""
        child = pulumi.ResourceOptions(parent=self)
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}
        public_subnets, private_subnets = [], []
        for i, zone in enumerate(zones):
            public = aws.ec2.Subnet(
                f"{name}-public-{zone}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=zone,
                map_public_ip_on_launch=False,  # nothing here gets a public IP unless asked
                tags={**tags, **cluster_tag, "Name": f"{name}-public-{zone}",
                      "kubernetes.io/role/elb": "1", "tier": "public"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-public-{zone}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child)
            public_subnets.append(public)
            private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=zone,
                tags={**tags, **cluster_tag, "Name": f"{name}-private-{zone}",
                      "kubernetes.io/role/internal-elb": "1", "tier": "private"},
                opts=child,
            ))
        return public_subnets, private_subnets

    def _nat_gateways(self, name: str, args: NetworkArgs, zones: list[str], public_subnets: list[aws.ec2.Subnet],
                      igw: aws.ec2.InternetGateway, tags: dict) -> list[aws.ec2.NatGateway]:
        """A NAT gateway (and its Elastic IP) per zone, or one in the first zone."""
        nat_zones = zones[:1] if args.single_nat_gateway else zones
        nats = []
        for i, zone in enumerate(nat_zones):
            eip = aws.ec2.Eip(f"{name}-nat-{zone}", domain="vpc", tags=tags,
                              opts=pulumi.ResourceOptions(parent=self))
            nats.append(aws.ec2.NatGateway(
                f"{name}-nat-{zone}",
                allocation_id=eip.id,
                subnet_id=public_subnets[i].id,
                tags={**tags, "Name": f"{name}-nat-{zone}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            ))
        return nats

    def _private_route_tables(self, name: str, args: NetworkArgs, vpc: aws.ec2.Vpc, zones: list[str],
                              private_subnets: list[aws.ec2.Subnet], nats: list[aws.ec2.NatGateway],
                              tags: dict) -> list[aws.ec2.RouteTable]:
        """A route table per private subnet, out through its zone's NAT gateway (or the only one)."""
        child = pulumi.ResourceOptions(parent=self)
        private_rts = []
        for i, zone in enumerate(zones):
            nat = nats[0] if args.single_nat_gateway else nats[i]
            rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags={**tags, "Name": f"{name}-private-{zone}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(f"{name}-private-{zone}", subnet_id=private_subnets[i].id,
                                          route_table_id=rt.id, opts=child)
            private_rts.append(rt)
        return private_rts

    def _s3_gateway_endpoint(self, name: str, vpc: aws.ec2.Vpc, private_rts: list[aws.ec2.RouteTable],
                             tags: dict) -> None:
        """The S3 gateway endpoint on the private route tables."""
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=aws.get_region_output().region.apply(lambda r: f"com.amazonaws.{r}.s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[rt.id for rt in private_rts],
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _flow_logs(self, name: str, vpc: aws.ec2.Vpc, args: NetworkArgs, tags: dict) -> None:
        child = pulumi.ResourceOptions(parent=self)
        # Flow logs name every address that talked to every other: a customer key, like the data's.
        key = log_key(name, self, f"{args.cluster_name}: VPC flow logs", tags)
        group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=args.flow_log_retention_days,
            kms_key_id=key.arn,
            tags=tags,
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "vpc-flow-logs.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }],
            }),
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            # The actions of the VPC user guide's flow-logs role ("IAM role for publishing flow
            # logs to CloudWatch Logs"), writes scoped to this one log group. DescribeLogGroups
            # takes no resource type (Service Authorization Reference, CloudWatch Logs): only
            # Resource "*" grants it, and it reads group names and settings, never events.
            policy=group.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "WriteThisLogGroup", "Effect": "Allow",
                     "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                     "Resource": [arn, f"{arn}:*"]},
                    {"Sid": "FindLogGroups", "Effect": "Allow", "Action": "logs:DescribeLogGroups",
                     "Resource": "*"},
                ],
            })),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type=args.flow_log_traffic_type,
            log_destination_type="cloud-watch-logs",
            log_destination=group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=child,
        )
