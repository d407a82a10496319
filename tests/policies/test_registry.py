"""The registry family: each ECR protection fires when it is removed and is quiet on every stack;
in prod an app image from anywhere but the stack's repositories, or by tag, blocks the update."""

from __future__ import annotations

import dataclasses
import json

import pytest

from components.image_registry import repository_policy
from tests.conftest import STACKS
from tests.policies.helpers import resource, stack_violations, violations
from toolkit import policy_runner

REPO = "aws:ecr/repository:Repository"
LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"
POLICY = "aws:ecr/repositoryPolicy:RepositoryPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
KEY = "arn:aws:kms:us-east-1:123456789012:key/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
NODE = "arn:aws:iam::123456789012:role/node"
NAME = "cofounder-prod/backend"
IMAGE = f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{NAME}:1.0.0@sha256:" + "ab" * 32
GOOD = {"name": NAME, "imageTagMutability": "IMMUTABLE", "imageScanningConfiguration": {"scanOnPush": True},
        "encryptionConfigurations": [{"encryptionType": "KMS", "kmsKey": KEY}]}
RULES = ["ecr-repository-immutable-tags", "ecr-repository-encrypted-kms", "ecr-repository-scan-on-push",
         "ecr-repository-lifecycle-policy", "ecr-repository-policy-restricts-access",
         "k8s-app-image-from-project-registry"]


@pytest.mark.parametrize("rule, change, message", [
    ("ecr-repository-immutable-tags", {"imageTagMutability": "MUTABLE"}, "has mutable tags"),
    ("ecr-repository-encrypted-kms", {"encryptionConfigurations": [{"encryptionType": "AES256"}]}, "not encrypted"),
    ("ecr-repository-encrypted-kms", {"encryptionConfigurations": [{"encryptionType": "KMS"}]}, "customer-managed"),
    ("ecr-repository-scan-on-push", {"imageScanningConfiguration": {"scanOnPush": False}}, "does not scan"),
])
def test_a_repository_without_its_protection_is_a_violation(rule, change, message):
    assert violations(rule, REPO, GOOD) == []
    [found] = violations(rule, REPO, {**GOOD, **change})
    assert message in found and NAME in found


def _stack(policy: str | None = repository_policy(NODE, []), lifecycle: bool = True, image: str = IMAGE,
           app_label: bool = True):
    labels = {"app.kubernetes.io/name": "backend", **({"app.kubernetes.io/component": "app"} if app_label else {})}
    resources = [resource(REPO, "repo", GOOD),
                 resource(DEPLOYMENT, "backend", {"metadata": {"labels": labels}, "spec": {"template": {"spec": {
                     "containers": [{"name": "backend", "image": image}]}}}})]
    if lifecycle:
        resources.append(resource(LIFECYCLE, "lifecycle", {"repository": NAME, "policy": "{}"}))
    if policy is not None:
        resources.append(resource(POLICY, "policy", {"repository": NAME, "policy": policy}))
    return resources


def test_a_repository_without_a_lifecycle_policy_is_a_violation():
    assert stack_violations("ecr-repository-lifecycle-policy", _stack()) == []
    [(message, urn)] = stack_violations("ecr-repository-lifecycle-policy", _stack(lifecycle=False))
    assert "no lifecycle policy" in message and urn.endswith("::repo")


def test_a_repository_policy_that_only_allows_is_a_violation():
    assert stack_violations("ecr-repository-policy-restricts-access", _stack()) == []
    assert stack_violations("ecr-repository-policy-restricts-access",
                            _stack(policy=repository_policy(NODE, ["arn:aws:iam::123456789012:role/ci"]))) == []
    allow_only = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": NODE}, "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})
    found = stack_violations("ecr-repository-policy-restricts-access", _stack(policy=allow_only))
    assert [m.split(": ", 1)[1][:25] for m, _ in found] == ["its policy does not deny ", "its policy does not deny "]
    assert "pull" in found[0][0] and "push" in found[1][0]
    pull_only = json.dumps({"Statement": json.loads(repository_policy(NODE, []))["Statement"][:1]})
    [(message, _)] = stack_violations("ecr-repository-policy-restricts-access", _stack(policy=pull_only))
    assert "deny push" in message
    [(message, _)] = stack_violations("ecr-repository-policy-restricts-access", _stack(policy=None))
    assert "no repository policy" in message


@pytest.mark.parametrize("image, require_digest, bad", [
    (IMAGE, True, False),
    (IMAGE.split("@")[0], False, False),                                   # dev, staging: a tag is enough
    (IMAGE.split("@")[0], True, True),                                     # prod: by digest only
    ("ghcr.io/cofounder/backend:1.0.0@sha256:" + "ab" * 32, True, True),   # another registry
    (IMAGE.replace("cofounder-prod/backend", "other/backend"), True, True),  # another repository
])
def test_app_images_come_from_the_stacks_repositories(image, require_digest, bad):
    found = stack_violations("k8s-app-image-from-project-registry", _stack(image=image),
                             {"requireDigest": require_digest})
    assert bool(found) == bad, found
    # a Deployment that is not an app (PgBouncer, headroom) is not this rule's business
    assert stack_violations("k8s-app-image-from-project-registry", _stack(image=image, app_label=False)) == []


@pytest.mark.parametrize("stack", STACKS)
def test_quiet_on_every_stack(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] in RULES] == []


@pytest.mark.parametrize("stack, image, level", [
    ("prod", "ghcr.io/cofounder/worker:1.0.0@sha256:" + "0" * 64, "mandatory"),
    ("prod", "tag", "mandatory"),
    ("dev", "ghcr.io/cofounder/worker:1.0.0", "advisory"),
])
def test_in_prod_an_app_image_off_the_registry_or_by_tag_blocks_the_update(stack_program, stack, image, level):
    program = stack_program(stack)
    worker = program.one(DEPLOYMENT, "worker-deployment")
    spec = json.loads(json.dumps(worker.inputs))
    container = spec["spec"]["template"]["spec"]["containers"][0]
    container["image"] = container["image"].split("@")[0] if image == "tag" else image
    changed = dataclasses.replace(worker, inputs=spec, outputs={**worker.outputs, **spec})
    program = dataclasses.replace(program, resources=[changed if r is worker else r for r in program.resources])
    found = [v for v in policy_runner.run_policies(stack, program) if v["policy"] == "k8s-app-image-from-project-registry"]
    assert [(v["enforcement"], v["urn"]) for v in found] == [(level, worker.urn)]
