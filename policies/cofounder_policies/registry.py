"""The app images' registry (components/image_registry.py): ECR repositories whose content
cannot move, is encrypted under the stack's key, is scanned and pruned, and is fenced by a
repository policy; and, in prod, app Deployments that run only images from them, by digest."""

from __future__ import annotations

import json
import re

from cofounder_policies.rules import ADVISORY, MANDATORY, get, is_set, items, known, of_type, resource_rule, stack_rule

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
REPOSITORY_POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
#: The label AppService puts on the app Deployments (frontend, backend, worker and any added app).
APP_LABEL = ("app.kubernetes.io/component", "app")
PULL = {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"}
PUSH = {"ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"}
_ECR_IMAGE = re.compile(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/(?P<repository>[a-z0-9._/-]+)"
                        r"(?P<tag>:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?P<digest>@sha256:[0-9a-f]{64})?")


def _immutable(props, settings):
    if get(props, "imageTagMutability") != "IMMUTABLE":
        yield (f"repository {get(props, 'name')!r} has mutable tags (imageTagMutability "
               f"{get(props, 'imageTagMutability', 'MUTABLE')!r}): a push can repoint a released tag")


def _encrypted(props, settings):
    config = items(get(props, "encryptionConfigurations"))
    if not config or get(config[0], "encryptionType") != "KMS" or not is_set(config[0], "kmsKey"):
        yield f"repository {get(props, 'name')!r} is not encrypted with a customer-managed KMS key"


def _scanned(props, settings):
    if get(props, "imageScanningConfiguration.scanOnPush") is not True:
        yield f"repository {get(props, 'name')!r} does not scan images on push"


def _repository_of(resource) -> str | None:
    return known(resource.props, "repository")


def _lifecycle(resources, settings):
    covered = {_repository_of(p) for p in of_type(resources, LIFECYCLE)}
    for repo in of_type(resources, REPOSITORY):
        if known(repo.props, "name") not in covered:
            yield f"repository {known(repo.props, 'name')!r} has no lifecycle policy: its images pile up", repo.urn


def _denies(statements: list, actions: set[str]) -> bool:
    """A Deny of every one of ``actions`` to everyone but named principals (aws:PrincipalArn)."""
    for s in statements:
        listed = s.get("Action")
        listed = {listed} if isinstance(listed, str) else set(listed or ())
        condition = s.get("Condition") or {}
        except_named = any("aws:PrincipalArn" in (condition.get(op) or {}) for op in ("ArnNotEquals", "ArnNotLike"))
        if s.get("Effect") == "Deny" and s.get("Principal") == "*" and (actions <= listed or "ecr:*" in listed) \
                and (except_named or not condition):
            return True
    return False


def _fenced(resources, settings):
    policies = {_repository_of(p): known(p.props, "policy") for p in of_type(resources, REPOSITORY_POLICY)}
    for repo in of_type(resources, REPOSITORY):
        name = known(repo.props, "name")
        text = policies.get(name)
        try:
            statements = json.loads(text)["Statement"] if isinstance(text, str) else None
        except (ValueError, KeyError, TypeError):
            statements = None
        if statements is None:
            yield (f"repository {name!r} has no repository policy: any principal of the account with ECR "
                   "rights can push"), repo.urn
            continue
        for what, actions in (("pull", PULL), ("push", PUSH)):
            if not _denies(statements, actions):
                yield (f"repository {name!r}: its policy does not deny {what} to every principal but the "
                       f"allowed roles (an Allow restricts nothing within the account)"), repo.urn


def _app_images(resources, settings):
    repositories = {known(r.props, "name") for r in of_type(resources, REPOSITORY)}
    for deployment in of_type(resources, DEPLOYMENT):
        if (get(deployment.props, "metadata.labels") or {}).get(APP_LABEL[0]) != APP_LABEL[1]:
            continue
        for c in items(get(deployment.props, "spec.template.spec.containers")):
            image = known(c, "image")
            if image is None:  # unknown in a preview: the engine fills it in
                continue
            match = _ECR_IMAGE.fullmatch(image)
            if match is None or match["repository"] not in repositories:
                yield (f"container {get(c, 'name')!r} runs {image!r}, not an image of this stack's ECR "
                       f"repositories ({', '.join(sorted(r for r in repositories if r)) or 'none declared'})"), \
                    deployment.urn
            elif settings["requireDigest"] and not match["digest"]:
                yield f"container {get(c, 'name')!r} runs {image!r} by tag, not by digest", deployment.urn


POLICIES = [
    resource_rule(
        "ecr-repository-immutable-tags",
        "A mutable tag lets a push change what a released tag runs, unreviewed and unrecorded in "
        "this repository (AWS FSBP ECR.2). Fix: imageTagMutability IMMUTABLE (ImageRegistry sets it).",
        MANDATORY, [REPOSITORY], _immutable),
    resource_rule(
        "ecr-repository-encrypted-kms",
        "Images carry the application's code and configuration; under a customer-managed key their "
        "use is logged and can be revoked (key policy, rotation). Fix: encryptionConfigurations "
        "[{encryptionType: KMS, kmsKey: <the stack's key>}] (ImageRegistry's key).",
        MANDATORY, [REPOSITORY], _encrypted),
    resource_rule(
        "ecr-repository-scan-on-push",
        "An image with known vulnerabilities reaches the nodes unnoticed unless the registry scans it "
        "(AWS FSBP ECR.1). Fix: imageScanningConfiguration.scanOnPush true; for continuous scanning "
        "set cofounder:imageRegistry.scanning: enhanced.",
        MANDATORY, [REPOSITORY], _scanned),
    stack_rule(
        "ecr-repository-lifecycle-policy",
        "Without a lifecycle policy every pushed image is kept and billed forever (AWS FSBP ECR.3). "
        "Fix: an aws.ecr.LifecyclePolicy for each repository (ImageRegistry declares one: untagged "
        "images expire, the newest keepImages stay).",
        ADVISORY, _lifecycle),
    stack_rule(
        "ecr-repository-policy-restricts-access",
        "Within its account any principal with ECR rights in its IAM policy can push to or pull from "
        "a repository; only an explicit Deny in the repository policy makes 'only the nodes pull and "
        "only CI pushes' true. Fix: a RepositoryPolicy denying pull and push actions to Principal * "
        "except the listed roles (aws:PrincipalArn), as ImageRegistry writes it.",
        MANDATORY, _fenced),
    stack_rule(
        "k8s-app-image-from-project-registry",
        "An app image from another registry has not passed this stack's scanning, immutability and "
        "push fence, and a tag can move. Checked on the app Deployments (label "
        "app.kubernetes.io/component=app). Fix: cofounder:apps.<name>.image: "
        "ecr:<name>:<tag>@sha256:<digest> (a repository of cofounder:imageRegistry); requireDigest "
        "false (dev, staging) also accepts ecr:<name>:<tag>.",
        ADVISORY, _app_images,
        config={"requireDigest": {"type": "boolean", "default": True,
                                  "description": "App images must carry an @sha256 digest"}}),
]
