"""``make docs``: the committed reference pages and policy configs are what the code generates.

Fast: the stack files are read with ``infra.config.parse`` (no Pulumi program run), the pack's
rules are imported (no pack process).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import typing
from pathlib import Path

import pytest
import yaml
from cofounder_policies import environments

from components.alert_rules import AlertRulesSettings
from infra import stack as stack_module
from infra.config import parse
from infra.stack import SECTIONS
from toolkit import docs
from toolkit.policy_runner import load_config
from toolkit.stackfile import REPO, STACKS_DIR, load_stack_file

STACKS = ("dev", "staging", "prod")
KEY = re.compile(r"cofounder:[A-Za-z][A-Za-z0-9]*(?:\.(?:<name>|[A-Za-z0-9-]+)|\[i\])*")

#: Rules added after ``make docs`` took over, with the settings each environment gives them.
_TAG_ONLY = {"allowTagOnly": ["quay.io/prometheuscommunity/pgbouncer-exporter:v0.11.0"]}

#: policies/config/<stack>.json as they were hand-written before ``make docs`` generated them
#: (plus the rules added since, last in each).
HAND_WRITTEN = {
    "dev": {
        "rds-instance-multi-az": {"required": False},
        "rds-instance-deletion-protection": {"required": False},
        "rds-instance-backup-retention": {"minimumDays": 1},
        "elasticache-replication-group-automatic-failover": {"required": False},
        "k8s-hpa-min-replicas": {"minimum": 1},
        "k8s-hpa-max-replicas-bounded": {"maximum": 10},
        "eks-cluster-version-supported": {"minimumVersion": "1.32"},
        "capacity-time-to-scale": {"peakMultiplier": 5, "timeToScaleGoalSeconds": 60, "scaleUpWithinSeconds": 60,
                                   "goalApps": ["backend", "worker"],
                                   "requireHeadroomCoverage": False, "readyGoalSeconds": 300},
        "capacity-connection-budget": {"reservedConnections": 10},
        "elb-deletion-protection": {"required": False},
        "cloudfront-waf-attached": {"required": False},
        # added with the network_policy family (not in the files before make docs generated them)
        "k8s-namespace-default-deny": "advisory",
        "eks-vpc-cni-network-policy-enabled": "advisory",
        "k8s-workload-image-digest": _TAG_ONLY,
        "k8s-app-image-from-project-registry": {"requireDigest": False},
        "cloudfront-distribution-custom-certificate": {"enforcementLevel": "advisory",
                                                       "allowDefaultCertificate": False},
        "cloudwatch-log-group-encrypted": "advisory",
        "cloudfront-vpc-origin-https-only": {"enforcementLevel": "advisory", "allowHttpOrigin": False},
        "cloudwatch-log-group-retention": {"minimumDays": 7},
        "rds-instance-class-not-burstable": {"allowBurstable": True},
        "elasticache-node-type-not-burstable": {"allowBurstable": True},
    },
    "staging": {
        "rds-instance-multi-az": {"required": False},
        "rds-instance-deletion-protection": {"required": False},
        "rds-instance-backup-retention": {"minimumDays": 7},
        "elasticache-replication-group-automatic-failover": {"required": True},
        "k8s-hpa-min-replicas": {"minimum": 2},
        "k8s-hpa-max-replicas-bounded": {"maximum": 20},
        "eks-cluster-version-supported": {"minimumVersion": "1.32"},
        "capacity-time-to-scale": {"peakMultiplier": 5, "timeToScaleGoalSeconds": 60, "scaleUpWithinSeconds": 60,
                                   "goalApps": ["backend", "worker"],
                                   "requireHeadroomCoverage": True},
        "capacity-connection-budget": {"reservedConnections": 10},
        "elb-deletion-protection": {"required": False},
        "k8s-workload-image-digest": _TAG_ONLY,
        "k8s-app-image-from-project-registry": {"requireDigest": False},
        "cloudfront-distribution-custom-certificate": {"enforcementLevel": "advisory",
                                                       "allowDefaultCertificate": False},
        "cloudfront-vpc-origin-https-only": {"enforcementLevel": "advisory", "allowHttpOrigin": False},
        "cloudwatch-log-group-retention": {"minimumDays": 30},
        "rds-instance-class-not-burstable": {"allowBurstable": True},
        "elasticache-node-type-not-burstable": {"allowBurstable": True},
    },
    "prod": {
        "rds-instance-multi-az": {"required": True},
        "rds-instance-deletion-protection": {"required": True},
        "rds-instance-backup-retention": {"minimumDays": 14},
        "elasticache-replication-group-automatic-failover": {"required": True},
        "k8s-hpa-min-replicas": {"enforcementLevel": "mandatory", "minimum": 2},
        "k8s-hpa-max-replicas-bounded": {"maximum": 50},
        "k8s-scaled-deployment-has-pdb": "mandatory",
        "eks-cluster-version-supported": {"minimumVersion": "1.32"},
        "capacity-time-to-scale": {"enforcementLevel": "mandatory", "peakMultiplier": 5, "timeToScaleGoalSeconds": 45,
                                   "scaleUpWithinSeconds": 60,
                                   "goalApps": ["backend", "worker"], "requireHeadroomCoverage": True},
        "capacity-connection-budget": {"reservedConnections": 20},
        "k8s-workload-image-digest": {"enforcementLevel": "mandatory", **_TAG_ONLY},
        "k8s-app-image-from-project-registry": {"enforcementLevel": "mandatory", "requireDigest": True},
        "cloudfront-distribution-custom-certificate": {"allowDefaultCertificate": True},
        "cloudfront-vpc-origin-https-only": {"allowHttpOrigin": True},
    },
}


def _row(markdown: str, key: str) -> list[str]:
    """The cells of the configuration table row for ``key``."""
    for line in markdown.splitlines():
        if line.startswith(f"| `{key}` |"):
            return [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    raise AssertionError(f"no row for {key}")


def _copy_stacks(tmp_path: Path) -> Path:
    target = tmp_path / "stacks"
    shutil.copytree(STACKS_DIR, target)
    return target


def _edit_stack(stacks_dir: Path, source: str, target: str, edit: typing.Callable[[dict], None]) -> None:
    doc = yaml.safe_load((stacks_dir / f"Pulumi.{source}.yaml").read_text())
    edit(doc["config"])
    (stacks_dir / f"Pulumi.{target}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


# --- freshness ---------------------------------------------------------------------------------


def test_every_generated_file_is_committed_as_generated(tmp_path):
    files = docs.generate()
    docs.write(tmp_path, files)
    stale = [str(rel) for rel in files
             if not (REPO / rel).is_file() or (REPO / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not stale, f"stale generated files {stale}: run make docs and commit the result"
    extra = sorted(p.name for p in (REPO / docs.POLICY_CONFIG_DIR).glob("*.json")
                   if docs.POLICY_CONFIG_DIR / p.name not in files)
    assert not extra, f"policy configs of no stack {extra}: run make docs (it removes them) and commit"


def test_generation_is_byte_stable():
    assert docs.generate() == docs.generate()


# --- the configuration reference is read from the code -----------------------------------------


def test_a_changed_default_changes_the_configuration_doc(monkeypatch):
    stacks = docs.load_stacks()
    before = _row(docs.configuration_md(stacks), "cofounder:alertRules.latencyForMinutes")
    assert before[2] == "`5`"
    field = {f.name: f for f in dataclasses.fields(AlertRulesSettings)}["latency_for_minutes"]
    monkeypatch.setattr(field, "default", 7)
    after = _row(docs.configuration_md(stacks), "cofounder:alertRules.latencyForMinutes")
    assert after[2] == "`7`"
    assert after[4:7] == ["**`5`**"] * 3  # every stack now differs from the (patched) default


def test_a_stack_value_shows_in_its_column_bold_when_it_differs(tmp_path):
    stacks_dir = _copy_stacks(tmp_path)
    _edit_stack(stacks_dir, "staging", "staging", lambda c: c.setdefault("cofounder:keda", {}).update(replicas=4))
    stacks = docs.load_stacks(stacks_dir)
    cells = _row(docs.configuration_md(stacks), "cofounder:keda.replicas")
    assert [s.name for s in stacks] == list(STACKS)
    assert cells[2] == "`2`" and cells[4:7] == ["**`1`**", "**`4`**", "`2`"]


def test_entries_of_a_mapping_are_listed_by_name():
    cells = _row(docs.configuration_md(docs.load_stacks()), "cofounder:apps.<name>.maxReplicas")
    assert cells[4].startswith("frontend: **`5`**<br>backend: **`5`**")


def _resolves(key: str) -> bool:
    """Whether ``key`` names a setting the loader reads (any entry name under a mapping)."""
    section, *parts = re.split(r"\.|(?=\[i\])", key.removeprefix("cofounder:"))
    if section not in SECTIONS:
        return False
    hint = SECTIONS[section]
    for part in parts:
        base, _ = docs._unwrap(hint)
        container, element = docs._element(hint)
        if part == "[i]":
            if container is not list:
                return False
            hint = element
        elif container is dict:
            hint = element  # `<name>` or a concrete entry name
        elif dataclasses.is_dataclass(base):
            fields = {docs.camel(f.name): f.name for f in dataclasses.fields(base) if f.init}
            if part not in fields:
                return False
            hint = docs.hints_of(typing.cast(type, base))[fields[part]]
        else:
            return False
    return True


def test_every_listed_key_is_a_setting_of_the_loader():
    text = (REPO / docs.CONFIGURATION_MD).read_text()
    listed = re.findall(r"^\| `(cofounder:[^`]+)` \|", text, flags=re.MULTILINE)
    assert len(listed) > 200
    assert [k for k in listed if not _resolves(k)] == []
    assert sorted({k.split(".")[0].split("[")[0] for k in listed}) == sorted(f"cofounder:{s}" for s in SECTIONS)


def test_every_key_the_doc_mentions_is_a_setting():
    mentioned = set(KEY.findall((REPO / docs.CONFIGURATION_MD).read_text()))
    assert sorted(k for k in mentioned if not _resolves(k)) == []


def test_the_resolver_rejects_what_the_loader_rejects():
    assert _resolves("cofounder:cluster.nodeGroups.system.maxSize")
    assert not _resolves("cofounder:cluster.nodeGroups.system.maxSizes")
    assert not _resolves("cofounder:database.multiAz")


#: A stack key in prose: ``cofounder:`` and a section, then ``.field``, ``.<placeholder>`` or
#: ``[i]``; not a Pulumi type token (``cofounder:data:Postgres``) nor the annotation domain
#: ``cofounder.dev/...``.
PROSE_KEY = re.compile(r"cofounder:[a-z][A-Za-z0-9]*(?:\.(?:<[a-z]+>|[A-Za-z0-9-]+)|\[i\])*(?![A-Za-z0-9:])")


def _pack_texts() -> list[tuple[str, str]]:
    """Every string the pack's modules hold, with where: rule descriptions and fixes, config-schema
    descriptions, violation messages (an f-string's expressions read as ``<name>``), docstrings."""
    import ast
    found = []
    for path in sorted((REPO / "policies").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "<name>" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            found.append((f"{path.relative_to(REPO)}:{node.lineno}", text))
    return found


def _stack_key(key: str) -> bool:
    """A key the loader reads: a section's setting (any entry name under a mapping) or a scalar."""
    name = key.removeprefix("cofounder:")
    if name in stack_module.SCALARS:
        return True
    return _resolves(re.sub(r"<[a-z]+>", "<name>", key))


def test_every_stack_key_the_pack_names_is_a_setting():
    """A fix that names a key that does not exist sends the reader nowhere (it once said
    cofounder:database.multiAz for cofounder:postgres.multiAz)."""
    named = [(where, key) for where, text in _pack_texts() for key in PROSE_KEY.findall(text)]
    assert len({key for _, key in named}) > 10  # the scan finds the keys the fixes name
    assert ("policies/cofounder_policies/database.py", "cofounder:postgres.multiAz") in {
        (where.split(":")[0], key) for where, key in named}
    assert [(where, key) for where, key in named if not _stack_key(key)] == []


def test_the_pack_key_scan_catches_a_wrong_key():
    assert PROSE_KEY.findall("Fix: multiAz=true (cofounder:database.multiAz).") == ["cofounder:database.multiAz"]
    assert not _stack_key("cofounder:database.multiAz")
    assert _stack_key("cofounder:apps.<app>.probes.readinessPath") and _stack_key("cofounder:environment")
    assert PROSE_KEY.findall("type cofounder:data:Postgres, annotation cofounder.dev/db-pool-size") == []


# --- policy configs ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_pack_settings_of_every_rule_are_those_of_the_hand_written_files(stack):
    """Generating the files changed nothing the pack sees: level and settings of every rule."""
    assert docs.effective(load_config(stack), stack) == docs.effective(HAND_WRITTEN[stack], "hand-written")


@pytest.mark.parametrize("stack", STACKS)
def test_the_committed_file_is_the_stack_profile_plus_its_derived_values(stack):
    settings = parse(stack, load_stack_file(stack).config)
    assert load_config(stack) == docs.policy_config(settings)
    assert load_config(stack)["capacity-connection-budget"] == {
        "reservedConnections": settings.postgres.reserved_connections}
    # the one replica cap: the loader holds the apps to it, the pack the declared autoscalers
    assert load_config(stack)["k8s-hpa-max-replicas-bounded"] == {
        "maximum": settings.scaling.max_replicas_per_app}
    assert max(a.max_replicas for a in settings.apps.values()) <= settings.scaling.max_replicas_per_app


def test_a_new_staging_stack_gets_stagings_profile_and_its_own_derived_values(tmp_path):
    stacks_dir = _copy_stacks(tmp_path)

    def qa(config: dict) -> None:
        config["cofounder:scaling"] = {"timeToScaleGoalSeconds": 90, "baselineReplicas": {"backend": 3},
                                       "maxReplicasPerApp": 30}
        config["cofounder:postgres"]["reservedConnections"] = 30
        config["cofounder:queues"] = {"maxAgentRunSeconds": 600, "maxReceiveCount": 3}

    _edit_stack(stacks_dir, "staging", "qa", qa)
    settings = parse("qa", load_stack_file("qa", stacks_dir).config)
    assert settings.environment == "staging"
    expected = {
        **environments.PROFILES["staging"],
        "capacity-time-to-scale": {"peakMultiplier": 5, "timeToScaleGoalSeconds": 90, "scaleUpWithinSeconds": 60,
                                   "goalApps": ["backend", "worker"],
                                   "baselineReplicas": {"backend": 3}, "requireHeadroomCoverage": True,
                                   "readyGoalSeconds": 60,
                                   "nodePodShare": 0.9},
        "capacity-connection-budget": {"reservedConnections": 30},
        "k8s-hpa-max-replicas-bounded": {"maximum": 30},
        "cloudfront-distribution-custom-certificate": {"enforcementLevel": "advisory", "allowDefaultCertificate": False},
        "cloudfront-vpc-origin-https-only": {"enforcementLevel": "advisory", "allowHttpOrigin": False},
        "sqs-queue-max-receive-count": {"maxReceiveCount": 3},
        "sqs-queue-visibility-covers-agent-run": {"maxAgentRunSeconds": 600},
        # staging's region; no usage assumption differs from the defaults (the budget is the declared one)
        "capacity-cost-within-budget": {"region": "us-east-1", "nodePodShare": 0.9, "usage": {}},
    }
    assert docs.policy_config(settings) == expected
    files = docs.generate(stacks_dir)
    assert json.loads(files[docs.POLICY_CONFIG_DIR / "qa.json"]) == expected
    assert "| Default | dev | qa (staging) | staging | prod |" in files[docs.POLICIES_MD]


def test_a_profile_cannot_set_a_value_derived_from_the_stack(monkeypatch):
    monkeypatch.setitem(environments.PROFILES, "staging",
                        {**environments.PROFILES["staging"], "capacity-connection-budget": {"reservedConnections": 5}})
    with pytest.raises(ValueError, match="reservedConnections"):
        docs.policy_config(parse("staging", load_stack_file("staging").config))


def test_a_profile_naming_an_unknown_rule_fails(monkeypatch):
    monkeypatch.setitem(environments.PROFILES, "dev", {**environments.PROFILES["dev"], "rds-multi-az": {}})
    with pytest.raises(ValueError, match="rds-multi-az"):
        docs.policy_config(parse("dev", load_stack_file("dev").config))


def test_profiles_cover_exactly_the_environments_a_stack_may_declare():
    declared = typing.get_args(stack_module.Environment)
    assert typing.get_args(environments.Environment) == declared
    assert tuple(environments.PROFILES) == declared


def test_policies_doc_shows_each_stacks_enforcement():
    text = (REPO / docs.POLICIES_MD).read_text()
    assert "| [`k8s-scaled-deployment-has-pdb`](#k8s-scaled-deployment-has-pdb) | `workloads` | advisory | " \
           "advisory | advisory | **mandatory** |" in text
    assert "| `reservedConnections` | `integer`, at least 5, at most 1000 | `10` | `10` | `10` | **`20`** |" in text


def test_the_readme_is_a_front_page_that_starts_with_the_two_commands():
    """README.md stays the front page (at most 15 KB; reference material lives in docs/) and its
    first commands are the main job and the tests."""
    text = (REPO / "README.md").read_text()
    assert len(text.encode()) <= 15_000, f"README.md is {len(text.encode())} bytes; move detail into docs/"
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first_block[:2]] == [["make", "preview"], ["make", "test"]]


# --- the pack's settings are the stack settings' own schema -------------------------------------


def test_a_rule_takes_a_stack_setting_with_the_bounds_and_default_of_its_settings_field(monkeypatch):
    from cofounder_policies import settings as pack_settings

    from components.queue import QueueSettings

    schema = docs._schema(docs._policies()["sqs-queue-max-receive-count"])["maxReceiveCount"]
    assert schema == pack_settings.setting("queues.maxReceiveCount")
    assert {k: v for k, v in schema.items() if k != "description"} == {
        "type": "integer", "minimum": 1, "maximum": 1000, "default": 2}
    assert schema["description"].startswith("Deliveries before a message moves to its DLQ")
    assert schema["description"].endswith("(cofounder:queues.maxReceiveCount)")
    field = {f.name: f for f in dataclasses.fields(QueueSettings)}["max_receive_count"]
    monkeypatch.setattr(field, "default", 3)
    assert json.loads(docs.pack_settings_json())["queues.maxReceiveCount"]["default"] == 3


def test_every_setting_the_pack_takes_is_a_setting_and_every_rule_config_of_a_setting_uses_it():
    from cofounder_policies import settings as pack_settings

    generated = json.loads(docs.pack_settings_json())
    assert sorted(generated) == sorted(pack_settings.USED)
    used = [value for p in docs._policies().values() for value in docs._schema(p).values()]
    # a rule's config that names a stack setting is that setting's generated schema, not a copy
    for key, schema in generated.items():
        assert schema in used, f"no rule takes cofounder:{key} (drop it from USED)"
    for value in used:
        named = re.search(r"\((cofounder:[a-zA-Z.]+)\)$", value.get("description", ""))
        if named and named.group(1).removeprefix("cofounder:") in generated:
            assert value == generated[named.group(1).removeprefix("cofounder:")]


def test_a_setting_the_pack_does_not_list_is_refused_with_the_fix():
    from cofounder_policies import settings as pack_settings

    with pytest.raises(KeyError, match=r"cofounder:queues\.retentionDays is not in cofounder_policies\.settings\.USED"):
        pack_settings.setting("queues.retentionDays")
