"""The front door: CloudFront -> VPC origin -> internal ALB -> TargetGroupBinding -> app pods.

``build_load_balancer`` declares the ALB and the AWS Load Balancer Controller before the apps
(each app's TargetGroupBinding names its target group); ``build_edge`` declares the WAF and the
CloudFront distribution in front of it. Both are built when ``cofounder:edge.enabled``.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import args_for
from components.app_load_balancer import AppLoadBalancer, AppLoadBalancerArgs, LoadBalancedApp
from components.app_service import LoadBalancerTarget
from components.edge_distribution import AppOrigin, EdgeDistribution, EdgeDistributionArgs
from components.load_balancer_controller import LoadBalancerController, LoadBalancerControllerArgs
from components.web_acl import EdgeWebAcl, EdgeWebAclArgs
from infra.checks import drain_of, load_balanced_apps
from infra.platform import Platform
from infra.stack import StackConfig


@dataclass(frozen=True)
class LoadBalancing:
    load_balancer: AppLoadBalancer
    controller: LoadBalancerController
    #: Per app behind the ALB: the target group its pods are registered in.
    targets: dict[str, LoadBalancerTarget]


def build_load_balancer(cfg: StackConfig, platform: Platform) -> LoadBalancing | None:
    behind = load_balanced_apps(cfg)  # app -> its longest request (CloudFront's read timeout)
    if not behind:
        return None
    network, cluster = platform.network, platform.cluster

    def target(name: str, longest_request_seconds: int) -> LoadBalancedApp:
        app = cfg.apps[name]
        return LoadBalancedApp(port=app.port, health_check_path=app.probes.readiness_path,
                               health_check_port=app.probes.port,
                               deregistration_delay_seconds=drain_of(app, longest_request_seconds)
                               .deregistration_delay_seconds)

    load_balancer = AppLoadBalancer("edge-lb", args_for(
        cfg.load_balancer, AppLoadBalancerArgs, vpc_id=network.vpc_id, subnet_ids=network.private_subnet_ids,
        subnet_zone_ids=network.private_subnet_zone_ids, cluster_security_group_id=cluster.node_security_group_id,
        targets={name: target(name, longest) for name, longest in behind.items()}))
    controller = LoadBalancerController("load-balancer-controller", args_for(
        cfg.load_balancer_controller, LoadBalancerControllerArgs, cluster_name=cluster.cluster_name,
        region=cfg.region, vpc_id=network.vpc_id, vpc_arn=network.vpc_arn,
        oidc_provider_arn=cluster.oidc_provider_arn, oidc_issuer_url=cluster.oidc_issuer_url,
        target_group_arns=list(load_balancer.target_group_arns.values()),
        node_selector=cluster.system_node_selector, tolerations=cluster.system_tolerations),
        opts=platform.in_cluster)
    targets = {name: LoadBalancerTarget(target_group_arn=arn, vpc_id=network.vpc_id, controller=controller.release)
               for name, arn in load_balancer.target_group_arns.items()}
    return LoadBalancing(load_balancer=load_balancer, controller=controller, targets=targets)


def build_edge(cfg: StackConfig, lb: LoadBalancing) -> EdgeDistribution:
    web_acl = EdgeWebAcl("edge-waf", args_for(cfg.waf, EdgeWebAclArgs, name_prefix=cfg.name_prefix)) \
        if cfg.waf.enabled else None
    return EdgeDistribution("edge", args_for(
        cfg.edge, EdgeDistributionArgs,
        app_origin=AppOrigin(vpc_origin_id=lb.load_balancer.vpc_origin_id,
                             domain_name=lb.load_balancer.origin_domain_name),
        web_acl_arn=web_acl.arn if web_acl else None))
