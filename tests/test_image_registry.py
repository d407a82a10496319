"""components/image_registry.py and its wiring: per-app ECR repositories with immutable tags,
scanning, a lifecycle policy, the stack's KMS key and a policy that fences pull and push; app
images written as ``ecr:<app>:...`` resolve to them."""

from __future__ import annotations

import json

import pytest

from components.image_registry import (
    PULL_ACTIONS,
    PUSH_ACTIONS,
    ImageRegistry,
    ImageRegistryArgs,
    repository_policy,
)
from tests.conftest import STACKS
from toolkit.harness import ACCOUNT

NODE = "arn:aws:iam::123456789012:role/platform-node"
CI = "arn:aws:iam::123456789012:role/cofounder-release"
REPO = "aws:ecr/repository:Repository"
DIGEST = "@sha256:" + "ab" * 32


def _registry(run_program, **settings):
    holder = {}

    def program():
        holder["registry"] = ImageRegistry("images", ImageRegistryArgs(prefix="cofounder-test", node_role_arn=NODE,
                                                                       **settings))
    return run_program(program), holder


def test_each_repository_is_immutable_scanned_encrypted_pruned_and_fenced(run_program):
    p, _ = _registry(run_program, push_role_arns=[CI])
    repos = {r.inputs["name"]: r for r in p.of_type(REPO)}
    assert sorted(repos) == ["cofounder-test/backend", "cofounder-test/frontend", "cofounder-test/worker"]
    key = p.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    for repo in repos.values():
        assert repo.parent.endswith("::images")
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repo.inputs["encryptionConfigurations"] == [{"encryptionType": "KMS", "kmsKey": key.outputs["arn"]}]
    lifecycles = {r.inputs["repository"]: json.loads(r.inputs["policy"]) for r in
                  p.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")}
    assert set(lifecycles) == set(repos)
    rules = lifecycles["cofounder-test/worker"]["rules"]
    assert [(r["selection"]["tagStatus"], r["selection"]["countNumber"]) for r in rules] == [("untagged", 7), ("any", 100)]
    policies = {r.inputs["repository"]: json.loads(r.inputs["policy"]) for r in
                p.of_type("aws:ecr/repositoryPolicy:RepositoryPolicy")}
    assert set(policies) == set(repos) and policies["cofounder-test/frontend"] == json.loads(repository_policy(NODE, [CI]))
    assert not p.of_type("aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration")


def test_the_policy_denies_pull_but_to_the_nodes_and_push_but_to_ci():
    pull, push = json.loads(repository_policy(NODE, [CI]))["Statement"]
    assert pull["Effect"] == push["Effect"] == "Deny" and pull["Principal"] == push["Principal"] == "*"
    assert pull["Action"] == PULL_ACTIONS and push["Action"] == PUSH_ACTIONS
    assert pull["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": [NODE, CI]}
    assert push["Condition"]["ArnNotEquals"] == {"aws:PrincipalArn": [CI]}  # the nodes cannot push
    # the registry's own scanner (an AWS service, no principal ARN of this account) is not denied
    assert pull["Condition"]["BoolIfExists"] == {"aws:PrincipalIsAWSService": "false"}
    _, nobody = json.loads(repository_policy(NODE, []))["Statement"]
    assert nobody == {"Sid": "NobodyPushes", "Effect": "Deny", "Principal": "*", "Action": PUSH_ACTIONS}


def test_enhanced_scanning_covers_the_stacks_repositories(run_program):
    p, _ = _registry(run_program, scanning="enhanced")
    config = p.one("aws:ecr/registryScanningConfiguration:RegistryScanningConfiguration").inputs
    assert config["scanType"] == "ENHANCED"
    assert config["rules"] == [{"scanFrequency": "CONTINUOUS_SCAN",
                                "repositoryFilters": [{"filter": "cofounder-test/*", "filterType": "WILDCARD"}]}]


def test_an_ecr_reference_resolves_to_the_repository_uri(run_program):
    seen = {}

    def program():
        registry = ImageRegistry("images", ImageRegistryArgs(prefix="cofounder-test", node_role_arn=NODE))
        registry.image_uri("ecr:backend:1.2.3" + DIGEST).apply(lambda uri: seen.setdefault("uri", uri))
        with pytest.raises(Exception, match="names no repository of this registry"):
            registry.image_uri("ecr:admin:1.0.0")
    run_program(program)
    assert seen["uri"] == f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/cofounder-test/backend:1.2.3{DIGEST}"


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_declares_the_registry_and_runs_its_apps_from_it(stack_program, stack):
    p = stack_program(stack)
    assert sorted(r.inputs["name"] for r in p.of_type(REPO)) == [f"cofounder-{stack}/{a}" for a in ("backend", "frontend", "worker")]
    urls = p.outputs["imageRepositoryUrls"]
    for app in ("frontend", "backend", "worker"):
        deployment = p.one("kubernetes:apps/v1:Deployment", f"{app}-deployment")
        (container,) = deployment.inputs["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith(urls[app] + ":1.0.0"), container["image"]
        assert (DIGEST[:8] in container["image"]) == (stack == "prod")
    assert {bool(r.options.get("protect")) for r in p.of_type(REPO)} == {stack == "prod"}


def test_an_ecr_image_must_name_a_declared_repository(run_stack_with):
    from infra.config import ConfigError
    from toolkit.stackfile import load_stack_file
    apps = load_stack_file("dev").config["cofounder:apps"]
    apps = json.loads(apps) if isinstance(apps, str) else apps
    bad = {**apps, "frontend": {**apps["frontend"], "image": "ecr:web:1.0.0"}}
    with pytest.raises(ConfigError, match=r"cofounder:apps.frontend.image = 'ecr:web:1.0.0' is not allowed: "
                                          r"expected an ecr: image of a repository in cofounder:imageRegistry"):
        run_stack_with("dev", {"cofounder:apps": bad})
