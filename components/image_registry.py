"""The app images' registry: one private ECR repository per app, under a key of its own.

Each repository (``<prefix>/<app>``) has immutable tags (a pushed ``1.0.0`` can never point at
other content), scanning (basic scan on push, or Amazon Inspector's enhanced scanning for the
stack's repositories), a lifecycle policy (untagged images expire, at most ``keepImages`` kept),
KMS encryption with a customer-managed key, and a repository policy: only the nodes' role may
pull and only the CI role(s) may push.

The repository policy is what makes "only" true. In the same account, an IAM identity policy
alone already grants ECR access (a resource policy is not required for same-account access), so
an Allow here would restrict nothing: the policy **denies** pull actions to every principal but
the nodes' role and the push roles, and push actions to every principal but the push roles
(``aws:PrincipalArn`` is the role's ARN for its sessions; AWS services acting on their own, such
as the registry's scanner, are left out by ``aws:PrincipalIsAWSService``). IAM policy evaluation:
an explicit deny in any applicable policy overrides every allow
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
Managing the repository (tags, policy, deletion) is not denied: the deploy role still owns it.

Enhanced scanning is a registry-wide setting (``aws.ecr.RegistryScanningConfiguration``, one per
account and region): declare it in one stack per account only. The stacks here each have their
own account (docs/ci.md).

The program refers to an image of these repositories as ``ecr:<app>:<tag>@sha256:<digest>``
(``cofounder:apps.<name>.image``), resolved by ``image_uri`` to the repository's URI, which is
known in a preview (account and region come from invokes, not from the repository's outputs).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws

from components import Between, Matches, require_valid
from components.key_policy import explicit_key_policy, used_through

#: An IAM role ARN (the push roles; docs/ci.md "The roles").
_ROLE_ARN = Matches(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+", "an IAM role ARN")
_APP = Matches(r"[a-z][a-z0-9-]{0,62}", "a repository name: lowercase letters, digits and -")
#: An image of one of these repositories, as a stack file writes it.
ECR_REFERENCE = re.compile(r"ecr:(?P<repository>[a-z][a-z0-9-]*)(?P<rest>(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
                           r"(@sha256:[0-9a-f]{64})?)")
#: Actions that read images (docker pull) and that write them (docker push); ECR's API reference.
PULL_ACTIONS = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
PUSH_ACTIONS = ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]


@dataclass(frozen=True, kw_only=True)
class ImageRegistrySettings:
    """``cofounder:imageRegistry``: the app images' ECR repositories."""

    #: One repository per name, ``<stack prefix>/<name>``; ``ecr:<name>:...`` images refer to them.
    repositories: list[Annotated[str, _APP]] = field(default_factory=lambda: ["frontend", "backend", "worker"])
    #: ``scan-on-push``: ECR's basic scan of every pushed image. ``enhanced``: Amazon Inspector
    #: scans these repositories continuously (charged per image; registry-wide setting).
    scanning: Literal["scan-on-push", "enhanced"] = "scan-on-push"
    #: Images kept per repository (the oldest beyond this expire): enough to roll back.
    keep_images: Annotated[int, Between(10, 1000)] = 100
    #: Untagged images (interrupted pushes, replaced manifests) expire after this many days.
    untagged_expiry_days: Annotated[int, Between(1, 90)] = 7
    #: The roles that may push: the CI role of the release pipeline (docs/ci.md "The roles").
    #: Empty: nobody can push (the repositories are declared before the pipeline exists).
    push_role_arns: list[Annotated[str, _ROLE_ARN]] = field(default_factory=list)
    #: Refuse to delete the repositories (and the images in them) with the stack.
    protect: bool = False

    def checks(self):
        if len(set(self.repositories)) != len(self.repositories):
            yield "repositories", self.repositories, "distinct names"


@dataclass(frozen=True, kw_only=True)
class ImageRegistryArgs(ImageRegistrySettings):
    #: ``<prefix>/<repository>``: the stack's name prefix.
    prefix: str
    #: The role the nodes' kubelet pulls with (the node group role).
    node_role_arn: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


def lifecycle_policy(keep_images: int, untagged_expiry_days: int) -> str:
    """Untagged images expire first; then only the newest ``keep_images`` stay. ECR requires the
    ``tagStatus: any`` rule to have the highest priority number (ECR user guide, "Lifecycle
    policy properties")."""
    return json.dumps({"rules": [
        {"rulePriority": 1, "description": f"untagged images expire after {untagged_expiry_days} days",
         "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": untagged_expiry_days},
         "action": {"type": "expire"}},
        {"rulePriority": 2, "description": f"keep the newest {keep_images} images",
         "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep_images},
         "action": {"type": "expire"}},
    ]})


def repository_policy(node_role_arn: str, push_role_arns: list[str]) -> str:
    """Deny pulls but by the nodes' role (and the pushers, whose pushes check layers), deny pushes
    but by the push roles; AWS services acting for themselves are not denied."""
    def deny(sid: str, actions: list[str], allowed: list[str]) -> dict:
        return {"Sid": sid, "Effect": "Deny", "Principal": "*", "Action": actions,
                "Condition": {"ArnNotEquals": {"aws:PrincipalArn": allowed},
                              "BoolIfExists": {"aws:PrincipalIsAWSService": "false"}}}
    pushes = deny("OnlyCiPushes", PUSH_ACTIONS, push_role_arns) if push_role_arns else \
        {"Sid": "NobodyPushes", "Effect": "Deny", "Principal": "*", "Action": PUSH_ACTIONS}
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [deny("OnlyTheNodesPull", PULL_ACTIONS, [node_role_arn, *push_role_arns]), pushes]})


class ImageRegistry(pulumi.ComponentResource):
    """ECR repositories for the app images, encrypted, immutable, scanned, pruned, fenced."""

    def __init__(self, name: str, args: ImageRegistryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:registry:ImageRegistry", name, None, opts)
        require_valid("ImageRegistry", args)
        invoke = pulumi.InvokeOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke)
        region = aws.get_region_output(opts=invoke).region
        child = pulumi.ResourceOptions(parent=self, protect=args.protect)
        tags = {**args.tags, "component": "image-registry"}

        # ECR uses the key through the grant it creates with each repository, with the creating
        # principal's credentials (ECR user guide, "Encryption at rest": kms:CreateGrant, limited
        # with kms:ViaService ecr.<region>.amazonaws.com); the shared shape of components/key_policy.py.
        key = aws.kms.Key(f"{name}-key", description=f"ECR repositories {args.prefix}/*",
                          enable_key_rotation=True, deletion_window_in_days=30, tags=tags,
                          policy=explicit_key_policy(self, lambda ctx: [used_through(ctx, "ecr", "UseThroughEcr")]),
                          opts=child)
        #: The host every repository of this account and region lives under.
        self.registry_host = pulumi.Output.all(account, region, partition.dns_suffix).apply(
            lambda v: f"{v[0]}.dkr.ecr.{v[1]}.{v[2]}")
        self.repository_names = {app: f"{args.prefix}/{app}" for app in args.repositories}
        self.repository_urls: dict[str, pulumi.Output[str]] = {}
        policy = pulumi.Output.from_input(args.node_role_arn).apply(
            lambda node: repository_policy(node, list(args.push_role_arns)))
        for app, repo_name in self.repository_names.items():
            repo = aws.ecr.Repository(
                f"{name}-{app}", name=repo_name, image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": key.arn}],
                force_delete=False, tags=tags, opts=child)
            aws.ecr.LifecyclePolicy(f"{name}-{app}-lifecycle", repository=repo.name,
                                    policy=lifecycle_policy(args.keep_images, args.untagged_expiry_days),
                                    opts=pulumi.ResourceOptions(parent=self))
            aws.ecr.RepositoryPolicy(f"{name}-{app}-policy", repository=repo.name, policy=policy,
                                     opts=pulumi.ResourceOptions(parent=self))
            self.repository_urls[app] = pulumi.Output.concat(self.registry_host, "/", repo_name)
        if args.scanning == "enhanced":
            aws.ecr.RegistryScanningConfiguration(
                f"{name}-scanning", scan_type="ENHANCED",
                rules=[{"scan_frequency": "CONTINUOUS_SCAN",
                        "repository_filters": [{"filter": f"{args.prefix}/*", "filter_type": "WILDCARD"}]}],
                opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"repositoryUrls": self.repository_urls})

    def image_uri(self, reference: str) -> pulumi.Output[str]:
        """``ecr:<repository>[:tag][@sha256:digest]`` as the URI a node pulls."""
        match = ECR_REFERENCE.fullmatch(reference)
        if match is None or match["repository"] not in self.repository_names:
            raise pulumi.RunError(f"ImageRegistry: {reference!r} names no repository of this registry "
                                  f"({', '.join(sorted(self.repository_names))})")
        return self.repository_urls[match["repository"]].apply(lambda url: url + match["rest"])
