"""Credentials: who may read the database's master secret, and how pods get their secrets
(External Secrets Operator stores, their service accounts and those accounts' IAM roles)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from cofounder_policies.rules import MANDATORY, get, items, of_type, plain, stack_rule

RDS_INSTANCE = "aws:rds/instance:Instance"
SECRET_STORE = "kubernetes:external-secrets.io/v1:SecretStore"
CLUSTER_SECRET_STORE = "kubernetes:external-secrets.io/v1:ClusterSecretStore"
EXTERNAL_SECRET = "kubernetes:external-secrets.io/v1:ExternalSecret"
SERVICE_ACCOUNT = "kubernetes:core/v1:ServiceAccount"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
WORKLOADS = ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
             "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod")
COMPONENT_LABEL = "app.kubernetes.io/component"
#: The one component allowed the master credentials (components/database_roles.py BOOTSTRAP_COMPONENT).
BOOTSTRAP = "database-bootstrap"
ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
_READS = ("secretsmanager:GetSecretValue", "secretsmanager:*", "*")


def _ns(props) -> str:
    return get(props, "metadata.namespace", "default")


def _component(props) -> str | None:
    return (get(props, "metadata.labels") or {}).get(COMPONENT_LABEL)  # the key has dots: not a path


def _pod_spec(type_: str, props):
    if type_.endswith(":Pod"):
        return get(props, "spec", {})
    if type_.endswith(":CronJob"):
        return get(props, "spec.jobTemplate.spec.template.spec", {})
    return get(props, "spec.template.spec", {})


def secrets_read(pod_spec) -> set[str]:
    """Names of the Secrets a pod spec loads: envFrom, env valueFrom and secret volumes."""
    names: set[str] = set()
    for c in [*items(get(pod_spec, "containers")), *items(get(pod_spec, "initContainers"))]:
        names |= {get(e, "secretRef.name") for e in items(get(c, "envFrom")) if get(e, "secretRef.name")}
        names |= {get(e, "valueFrom.secretKeyRef.name") for e in items(get(c, "env"))
                  if get(e, "valueFrom.secretKeyRef.name")}
    names |= {get(v, "secret.secretName") for v in items(get(pod_spec, "volumes")) if get(v, "secret.secretName")}
    return names


def _remote_keys(external_secret) -> set[str]:
    return {str(get(d, "remoteRef.key")) for d in items(get(external_secret, "spec.data")) if get(d, "remoteRef.key")}


def master_secret_arns(resources) -> set[str]:
    return {str(get(s, "secretArn")) for r in of_type(resources, RDS_INSTANCE)
            for s in items(get(plain(r.props), "masterUserSecrets")) if get(s, "secretArn")}


def _no_master_credentials(resources, settings):
    masters = master_secret_arns(resources)
    if not masters:
        return
    bootstrap_secrets: set[tuple[str, str]] = set()
    for r in resources:
        if not r.resource_type.startswith("kubernetes:"):
            continue
        props = plain(r.props)
        if not any(arn in json.dumps(props, default=str) for arn in masters):
            continue
        if r.resource_type == EXTERNAL_SECRET and _component(props) == BOOTSTRAP:
            bootstrap_secrets.add((_ns(props), get(props, "spec.target.name") or get(props, "metadata.name")))
            continue
        yield (f"{r.resource_type.split(':')[-1]} {get(props, 'metadata.name')!r} refers to the RDS master secret; "
               f"only the {BOOTSTRAP} component may"), r.urn
    for r in of_type(resources, *WORKLOADS):
        props = plain(r.props)
        if _component(props) == BOOTSTRAP:
            continue
        for name in sorted(secrets_read(_pod_spec(r.resource_type, props))):
            if (_ns(props), name) in bootstrap_secrets:
                yield (f"{get(props, 'metadata.name')!r} loads Secret {name!r}, which holds the RDS master "
                       f"credentials"), r.urn


def _granted_secrets(policy_json) -> set[str]:
    try:
        document = json.loads(policy_json) if isinstance(policy_json, str) else policy_json
    except ValueError:
        return set()
    granted: set[str] = set()
    for s in items(get(document, "Statement")) if document else []:
        actions = get(s, "Action")
        actions = [actions] if isinstance(actions, str) else items(actions)
        if get(s, "Effect") == "Allow" and any(a in _READS for a in actions):
            resources = get(s, "Resource")
            granted |= {resources} if isinstance(resources, str) else set(items(resources))
    return granted


def _stores_scoped(resources, settings) -> Iterable[tuple[str, str | None]]:
    for r in of_type(resources, CLUSTER_SECRET_STORE):
        yield ("a ClusterSecretStore serves every namespace with one identity; use a namespaced SecretStore "
               "per service account"), r.urn
    accounts = {(_ns(p), get(p, "metadata.name")): p
                for p in (plain(r.props) for r in of_type(resources, SERVICE_ACCOUNT))}
    roles = {get(p, "arn"): p for p in (plain(r.props) for r in of_type(resources, ROLE)) if get(p, "arn")}
    policies = [plain(r.props) for r in of_type(resources, ROLE_POLICY)]
    externals = [(r, plain(r.props)) for r in of_type(resources, EXTERNAL_SECRET)]
    store_accounts: dict[tuple[str, str], str] = {}
    for r in of_type(resources, SECRET_STORE):
        props = plain(r.props)
        ns, name = _ns(props), get(props, "metadata.name")
        account = get(props, "spec.provider.aws.auth.jwt.serviceAccountRef.name")
        if not account:
            yield (f"SecretStore {name!r} does not authenticate as a service account (auth.jwt.serviceAccountRef): "
                   f"it would read with the controller's or a static identity"), r.urn
            continue
        store_accounts[(ns, name)] = account
        role_arn = (get(accounts.get((ns, account)), "metadata.annotations") or {}).get(ROLE_ARN_ANNOTATION)
        role = roles.get(role_arn)
        if role is None:
            yield (f"SecretStore {name!r}: service account {account!r} has no IRSA role of this stack "
                   f"({ROLE_ARN_ANNOTATION})"), r.urn
            continue
        role_keys = {get(role, "name"), get(role, "id")} - {None}
        granted: set[str] = set()
        for p in policies:
            if get(p, "role") in role_keys:
                granted |= _granted_secrets(get(p, "policy"))
        read = set().union(*(_remote_keys(e) for _, e in externals
                             if _ns(e) == ns and get(e, "spec.secretStoreRef.name") == name))
        wild = sorted(g for g in granted if "*" in g)
        if wild:
            yield f"the role of service account {account!r} may read any secret matching {wild}", r.urn
        extra = sorted(granted - read - set(wild))
        if extra:
            yield (f"the role of service account {account!r} may read secrets its store's ExternalSecrets do not: "
                   f"{extra}"), r.urn
        missing = sorted(read - granted) if not wild else []
        if missing:
            yield f"SecretStore {name!r} syncs secrets its service account's role does not grant: {missing}", r.urn
    # A pod may load an ESO Secret only when it runs as the service account that Secret was read with.
    targets = {}
    for r, e in externals:
        store = (_ns(e), get(e, "spec.secretStoreRef.name"))
        if store not in store_accounts:
            yield f"ExternalSecret {get(e, 'metadata.name')!r} uses a SecretStore this stack does not declare", r.urn
            continue
        targets[(_ns(e), get(e, "spec.target.name") or get(e, "metadata.name"))] = store_accounts[store]
    for r in of_type(resources, *WORKLOADS):
        props = plain(r.props)
        spec = _pod_spec(r.resource_type, props)
        runs_as = get(spec, "serviceAccountName", "default")
        for name in sorted(secrets_read(spec)):
            owner = targets.get((_ns(props), name))
            if owner is not None and owner != runs_as:
                yield (f"{get(props, 'metadata.name')!r} runs as service account {runs_as!r} but loads Secret "
                       f"{name!r}, read with {owner!r}'s role"), r.urn


POLICIES = [
    stack_rule(
        "k8s-no-master-database-credentials",
        "Only the database bootstrap Job may hold the RDS master credentials: an app with them has "
        "superuser-level rights over all data. Fix: connect as the app or migrator role; refer to the "
        "master secret only from objects labelled app.kubernetes.io/component=database-bootstrap.",
        MANDATORY, _no_master_credentials),
    stack_rule(
        "k8s-secret-store-scoped-to-service-account",
        "Every secret a pod reads is read with that pod's own service account, whose IRSA role may read "
        "exactly the secrets its SecretStore syncs. Fix: one namespaced SecretStore per service account "
        "(auth.jwt.serviceAccountRef), the role's GetSecretValue on those secret ARNs only, and pods "
        "loading only their own account's Secrets.",
        MANDATORY, _stores_scoped),
]
