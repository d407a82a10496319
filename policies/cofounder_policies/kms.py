"""KMS: every customer-managed key declares its key policy.

A key created without a policy gets KMS's default one, the account root with ``kms:*`` ("Default key
policy", KMS developer guide): the program then says nothing about which service or principal the
key is for, the review diff never shows it and the IAM check (``toolkit/iam_check.py``) has nothing
to read. Checkov reports the same as CKV2_AWS_64 ("Ensure KMS key Policy is defined").
"""

from __future__ import annotations

from cofounder_policies.rules import MANDATORY, is_set, resource_rule

KEY = "aws:kms/key:Key"


def _explicit_policy(props, settings):
    if not is_set(props, "policy"):
        yield ("the KMS key declares no policy, so KMS applies its default (account root, kms:*) and the "
               "program never says which service or principal uses the key")


POLICIES = [
    resource_rule(
        "kms-key-explicit-policy",
        "Who may use a KMS key is written in its key policy; a key without one gets KMS's default, which "
        "names no service and is invisible in the program and its review. Fix: pass policy= to every "
        "aws.kms.Key, built with components/key_policy.py's explicit_key_policy (AccountAdministers, "
        "then a UseThrough<Service> statement per service the key serves, limited by kms:ViaService and "
        "kms:CallerAccount, or a statement per principal it serves).",
        MANDATORY, [KEY], _explicit_policy),
]
