"""components/irsa_role.py: the trust policy admits exactly one service account."""

from __future__ import annotations

import json

from components.irsa_role import IrsaRole, IrsaRoleArgs

OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"


def test_trust_is_scoped_to_one_service_account(run_program):
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:aws:sqs:us-east-1:123456789012:q"}]})
    p = run_program(lambda: IrsaRole("worker", IrsaRoleArgs(
        oidc_provider_arn=OIDC_ARN, oidc_issuer_url=ISSUER, namespace="apps",
        service_account="agent-worker", policy_json=policy)))
    trust = json.loads(p.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:apps:agent-worker",
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
    }
    assert json.loads(p.one("aws:iam/rolePolicy:RolePolicy").inputs["policy"])["Statement"][0]["Action"] == "sqs:SendMessage"
    assert not p.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")


def test_managed_policies_only(run_program):
    arn = "arn:aws:iam::aws:policy/service-role/AmazonEBSCSIDriverPolicy"
    p = run_program(lambda: IrsaRole("ebs", IrsaRoleArgs(
        oidc_provider_arn=OIDC_ARN, oidc_issuer_url=ISSUER, namespace="kube-system",
        service_account="ebs-csi-controller-sa", managed_policy_arns=[arn])))
    assert not p.of_type("aws:iam/rolePolicy:RolePolicy")
    assert p.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment").inputs["policyArn"] == arn
