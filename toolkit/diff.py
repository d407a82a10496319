"""The review diff: two desired-state snapshots of a stack in, a Markdown report out.

Pure functions over snapshot documents (``toolkit/snapshot.py``, format
``cofounder-desired-state/v1``) and optional policy results (``run_policies(stack)`` rows:
``policy``, ``enforcement``, ``urn``, ``message``); ``toolkit/review.py`` builds the inputs
from git. Nothing here touches git, the SDK or the clock, so the same inputs give the same
bytes.

What the report can and cannot know: it compares what the program *declares* at BASE and in
the working tree. Which property changes force a replacement comes from ``REPLACE_FORCING``,
a best-effort table taken from the provider's schema for the stateful types this project uses;
the real ``pulumi preview --diff`` (CI, with credentials) is authoritative.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

#: Types whose deletion or replacement loses data (or, for KMS keys, the ability to read it).
STATEFUL_TYPES: dict[str, str] = {
    "aws:rds/instance:Instance": "RDS instance",
    "aws:rds/cluster:Cluster": "RDS cluster",
    "aws:rds/clusterInstance:ClusterInstance": "RDS cluster instance",
    "aws:elasticache/replicationGroup:ReplicationGroup": "ElastiCache replication group",
    "aws:elasticache/cluster:Cluster": "ElastiCache cluster",
    "aws:s3/bucket:Bucket": "S3 bucket",
    "aws:s3/bucketV2:BucketV2": "S3 bucket",
    "aws:sqs/queue:Queue": "SQS queue",
    "aws:ebs/volume:Volume": "EBS volume",
    "aws:kms/key:Key": "KMS key",
    "aws:dynamodb/table:Table": "DynamoDB table",
    "aws:efs/fileSystem:FileSystem": "EFS file system",
}

#: Top-level input properties (camelCase, as in snapshots) whose change makes the provider
#: replace the resource (ForceNew in the upstream provider schema). Best effort: the RDS instance
#: entries were checked against the provider source (``dbSubnetGroupName`` and ``engineVersion``
#: are updatable in place there, so they are not listed); the rest follow the provider docs.
REPLACE_FORCING: dict[str, frozenset[str]] = {
    "aws:rds/instance:Instance": frozenset({
        "identifier", "identifierPrefix", "engine", "storageEncrypted", "kmsKeyId",
        "availabilityZone", "username", "dbName", "characterSetName", "ncharCharacterSetName",
        "snapshotIdentifier", "timezone", "restoreToPointInTime", "customIamInstanceProfile"}),
    "aws:rds/cluster:Cluster": frozenset({
        "clusterIdentifier", "clusterIdentifierPrefix", "engine", "engineMode",
        "storageEncrypted", "kmsKeyId", "availabilityZones", "databaseName", "masterUsername",
        "dbSubnetGroupName", "snapshotIdentifier", "sourceRegion", "restoreToPointInTime"}),
    "aws:rds/clusterInstance:ClusterInstance": frozenset({
        "identifier", "identifierPrefix", "clusterIdentifier", "engine", "availabilityZone",
        "dbSubnetGroupName"}),
    "aws:elasticache/replicationGroup:ReplicationGroup": frozenset({
        "replicationGroupId", "engine", "atRestEncryptionEnabled", "kmsKeyId", "subnetGroupName",
        "port", "preferredCacheClusterAzs", "snapshotArns", "snapshotName",
        "globalReplicationGroupId", "dataTieringEnabled"}),
    "aws:elasticache/cluster:Cluster": frozenset({
        "clusterId", "engine", "subnetGroupName", "port", "availabilityZone", "snapshotArns",
        "snapshotName", "replicationGroupId"}),
    "aws:s3/bucket:Bucket": frozenset({"bucket", "bucketPrefix", "objectLockEnabled"}),
    "aws:s3/bucketV2:BucketV2": frozenset({"bucket", "bucketPrefix", "objectLockEnabled"}),
    "aws:sqs/queue:Queue": frozenset({"name", "namePrefix", "fifoQueue"}),
    "aws:ebs/volume:Volume": frozenset({"availabilityZone", "encrypted", "kmsKeyId", "snapshotId",
                                        "outpostArn"}),
    "aws:kms/key:Key": frozenset({"customerMasterKeySpec", "keyUsage", "multiRegion",
                                  "xksKeyId", "customKeyStoreId"}),
    "aws:dynamodb/table:Table": frozenset({"name"}),
    "aws:efs/fileSystem:FileSystem": frozenset({"creationToken", "encrypted", "kmsKeyId",
                                                "performanceMode", "availabilityZoneName"}),
}

#: What AWS does when a stateful resource is modified in place (not replaced), per top-level
#: input. Sources, read 2026-12-07:
#: - RDS: User Guide "Settings for DB instances" (USER_ModifyInstance.Settings.html) and "Using the
#:   schedule modifications setting" (USER_ModifyInstance.ApplyImmediately.html); API reference
#:   ModifyDBInstance ("If you modify the instance class, an outage occurs during the change. The
#:   change is applied during the next maintenance window, unless ApplyImmediately is specified as
#:   true"); "Maintenance for Multi-AZ deployments" (the standby is changed first, then a failover,
#:   usually about 60 s); "Upgrading the PostgreSQL DB engine" (a Multi-AZ pair is upgraded at
#:   the same time: an outage).
#: - ElastiCache: API reference ModifyReplicationGroup, ApplyImmediately ("If false, changes to the
#:   nodes in the replication group are applied on the next maintenance reboot, or the next
#:   failure reboot"); "Scaling clusters" (online vertical scaling for Valkey and Redis OSS 3.2.10+;
#:   shard and replica count changes run at once, online resharding).
#: - SQS: API reference SetQueueAttributes (changes apply at once; up to 60 s to propagate, up to
#:   15 minutes for MessageRetentionPeriod); no maintenance window, no outage.
#: A property that is not listed follows the resource's ``applyImmediately`` (the provider
#: default is false: the next maintenance window) with no outage stated.
IN_PLACE: dict[str, dict[str, tuple[str, str]]] = {
    # property -> (when: "window" follows applyImmediately, "now" ignores it; the AWS behaviour)
    "aws:rds/instance:Instance": {
        "instanceClass": ("window", "an outage while the class changes; with multiAz the standby is "
                                    "changed first and RDS fails over to it (usually about 60 s)"),
        "engineVersion": ("window", "an outage: the engine is upgraded, a Multi-AZ pair at the same time"),
        "storageType": ("window", "a brief outage as the change starts, degraded performance after"),
        "allocatedStorage": ("window", "no outage; performance may be degraded during the change"),
        "iops": ("window", "no outage; performance may be degraded during the change"),
        "multiAz": ("window", "no outage; performance may be degraded while the standby is built"),
        "parameterGroupName": ("now", "the group is attached at once, but its parameters apply only "
                                      "after a reboot (an outage; with multiAz a failover)"),
        "backupRetentionPeriod": ("now", "between two non-zero values; to or from 0 it is an outage, in the "
                                         "maintenance window unless applyImmediately"),
        "deletionProtection": ("now", "ignores applyImmediately"),
        "password": ("now", "ignores applyImmediately"),
        "performanceInsightsEnabled": ("now", "ignores applyImmediately"),
        "maintenanceWindow": ("now", ""),
        "backupWindow": ("now", ""),
    },
    "aws:elasticache/replicationGroup:ReplicationGroup": {
        "nodeType": ("window", "online scaling: data is copied to new nodes, then a DNS switch with a "
                               "brief interruption of writes"),
        "engineVersion": ("window", "nodes are upgraded one at a time; each primary fails over to a "
                                    "replica (a brief interruption of writes)"),
        "numNodeGroups": ("now", "online resharding starts at once; slots move while the group serves"),
        "replicasPerNodeGroup": ("now", "replicas are added or removed at once, online"),
        "parameterGroupName": ("window", "parameters apply at once or after a reboot, per parameter"),
        "snapshotRetentionLimit": ("now", ""),
        "snapshotWindow": ("now", ""),
        "maintenanceWindow": ("now", ""),
    },
    "aws:sqs/queue:Queue": {},
}
#: Inputs that change no behaviour of the resource (AWS tags), left out of the in-place flag.
_NOT_BEHAVIOUR = frozenset({"tags", "tagsAll"})
#: Types whose in-place changes all apply at once, with no maintenance window.
_NO_WINDOW = frozenset({"aws:sqs/queue:Queue"})


#: Below GitHub's 65,536-character comment limit, with room for a sticky-comment header.
DEFAULT_LIMIT = 60_000
MARKER = "<!-- cofounder-review-report -->"
_SECRET = re.compile(r"^\[secret:[0-9a-f]+\]$")
#: A cell longer than this is cut, unless it carries an image digest: a reviewer checks digests
#: character for character, so they are always shown whole.
_VALUE_WIDTH = 400
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
#: What an absent input and these values mean to the provider alike: no row for the change.
_EMPTY: tuple[Any, ...] = (None, {}, [])


# ---------------------------------------------------------------------------------------------
# The diff itself
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One property (or option) that differs: ``old``/``new`` are display strings."""

    path: str
    old: str
    new: str
    forces_replace: bool = False


@dataclass
class ResourceChange:
    op: str  # create | update | delete | replace
    urn: str
    type: str
    name: str
    custom: bool
    changes: list[Change] = field(default_factory=list)
    moved_from: str | None = None  # URN at BASE when only the URN changed (delete + create)
    moved_to: str | None = None

    @property
    def stateful(self) -> bool:
        return self.custom and self.type in STATEFUL_TYPES


@dataclass(frozen=True)
class Flag:
    """A stateful resource at risk: listed at the top of the report, never cut."""

    stack: str
    urn: str
    type: str
    name: str
    what: str


@dataclass
class StackDiff:
    stack: str
    base_note: str | None
    head_note: str | None
    resources: list[ResourceChange]
    outputs: list[Change]
    reports: list[dict]
    policies: dict | None
    flags: list[Flag]
    #: The working tree failed to build this stack: its error, and no diff at all.
    head_error: str | None = None
    #: The ``cost`` and ``burst`` reports' documents at BASE and in the working tree (None: absent).
    cost: tuple[dict | None, dict | None] = (None, None)
    burst: tuple[dict | None, dict | None] = (None, None)

    def count(self, op: str) -> int:
        return sum(1 for r in self.resources if r.op == op)

    @property
    def new_mandatory(self) -> list[dict]:
        """Mandatory violations of the working tree that BASE does not have (all of them when
        BASE has no policy results to compare with: nothing shows they are old)."""
        p = self.policies
        if not p or not p["available"]:
            return []
        return [r for r in p["rows"] if r["enforcement"] == "mandatory"
                and (r["new"] or p["base_counts"] is None)]

    @property
    def unchanged(self) -> bool:
        """Both sides built, and nothing a reviewer reads differs: folded to one line."""
        p = self.policies
        same_policies = bool(p and p["available"] and p["base_counts"] is not None
                             and not p["resolved"] and not any(r["new"] for r in p["rows"]))
        return (not (self.head_error or self.base_note or self.head_note or self.resources or self.outputs
                     or self.flags) and same_policies and self.cost[0] == self.cost[1]
                and self.burst[0] == self.burst[1] and all(r["status"] == "unchanged" for r in self.reports))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of nested inputs: ``a.b[0].c`` -> scalar; empty containers stay leaves."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key in sorted(value):
            out.update(_flatten(value[key], f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{i}]"))
    else:
        out[prefix] = value
    return out


def _is_secret(value: Any) -> bool:
    return isinstance(value, str) and bool(_SECRET.match(value))


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) <= _VALUE_WIDTH or _DIGEST.search(text):
        return text
    return text[: _VALUE_WIDTH - 1] + f"… ({len(text)} characters)"


_ABSENT = object()


def _top(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def property_changes(old: dict, new: dict, type_: str = "") -> list[Change]:
    """Leaf-level differences of two input maps; secrets never shown, only that they changed."""
    forcing = REPLACE_FORCING.get(type_, frozenset())
    a, b = _flatten(old), _flatten(new)
    changes = []
    for path in sorted(set(a) | set(b)):
        va, vb = a.get(path, _ABSENT), b.get(path, _ABSENT)
        if va == vb or (va is _ABSENT and vb in _EMPTY) or (vb is _ABSENT and va in _EMPTY):
            continue
        if _is_secret(va) or _is_secret(vb):
            if va is _ABSENT:
                old_s, new_s = "(absent)", "(secret set)"
            elif vb is _ABSENT:
                old_s, new_s = "(secret)", "(absent)"
            else:
                old_s, new_s = "(secret)", "(secret changed)"
        else:
            old_s, new_s = _show(va), _show(vb)
        changes.append(Change(path, old_s, new_s, _top(path) in forcing))
    return changes


def in_place_note(change: ResourceChange, inputs: dict) -> str | None:
    """What AWS does with an in-place modification of a database, cache or queue, and when
    (``IN_PLACE``); None when only tags or Pulumi options changed."""
    props = sorted({_top(c.path) for c in change.changes if not c.path.startswith("options.")} - _NOT_BEHAVIOUR)
    if not props:
        return None
    label, known = STATEFUL_TYPES[change.type], IN_PLACE[change.type]
    if change.type in _NO_WINDOW:
        when = "applied at once, no maintenance window (up to 60 s to propagate; 15 min for the retention period)"
        return f"{label} modified in place ({', '.join(f'`{p}`' for p in props)}): {when}; no outage"
    window = inputs.get("maintenanceWindow")
    deferred = ("as soon as possible (applyImmediately: true)" if inputs.get("applyImmediately") is True
                else f"in the next maintenance window{f' ({window})' if window else ''} (applyImmediately is not set)")
    parts = []
    for prop in props:
        when, what = known.get(prop, ("window", ""))
        timing = deferred if when == "window" else "at once"
        parts.append(f"`{prop}` {timing}" + (f": {what}" if what and what != timing else ""))
    return f"{label} modified in place: " + "; ".join(parts)


def _option_changes(old: dict, new: dict) -> list[Change]:
    return [Change(f"options.{c.path}", c.old, c.new)
            for c in property_changes(old or {}, new or {})]


def _index(doc: dict | None) -> dict[str, dict]:
    return {r["urn"]: r for r in (doc or {}).get("resources", [])}


def diff_stack(stack: str, base: dict | None, head: dict | None, *,
               base_note: str | None = None, head_note: str | None = None,
               base_policies: list[dict] | None = None,
               head_policies: list[dict] | None = None,
               policy_note: str | None = None, head_error: str | None = None) -> StackDiff:
    """Compare two snapshots of one stack (``None`` = that side is empty, say why in a note).

    With ``head_error`` (the working tree failed to build the stack) nothing is compared: an
    empty working tree would read as every resource deleted, when nothing is known.
    """
    if head_error:
        return StackDiff(stack=stack, base_note=base_note, head_note=None, resources=[], outputs=[],
                         reports=[], policies=None, flags=[], head_error=head_error)
    old, new = _index(base), _index(head)
    changes: list[ResourceChange] = []
    for urn in sorted(set(old) | set(new)):
        a, b = old.get(urn), new.get(urn)
        r = b or a
        assert r is not None  # the URN comes from one side at least
        if a is None:
            changes.append(ResourceChange("create", urn, r["type"], r["name"], r["custom"]))
        elif b is None:
            changes.append(ResourceChange("delete", urn, r["type"], r["name"], r["custom"]))
        else:
            props = property_changes(a.get("inputs", {}), b.get("inputs", {}), r["type"])
            props += _option_changes(a.get("options", {}), b.get("options", {}))
            if props:
                op = "replace" if any(c.forces_replace for c in props) else "update"
                changes.append(ResourceChange(op, urn, r["type"], r["name"], r["custom"], props))

    # A URN change (new parent, renamed resource) is a delete + create unless an alias exists.
    deleted = {(c.type, c.name): c for c in changes if c.op == "delete"}
    for c in changes:
        if c.op == "create" and (c.type, c.name) in deleted:
            gone = deleted[(c.type, c.name)]
            c.moved_from, gone.moved_to = gone.urn, c.urn

    flags = []
    for c in changes:
        if not c.stateful:
            continue
        label = STATEFUL_TYPES[c.type]
        if c.op == "delete":
            why = (f"{label} deleted: its URN changes to `{c.moved_to}` (delete + create "
                   f"unless an alias is declared)" if c.moved_to else f"{label} deleted")
            flags.append(Flag(stack, c.urn, c.type, c.name, why))
        elif c.op == "replace":
            forced = ", ".join(f"`{p.path}`" for p in c.changes if p.forces_replace)
            flags.append(Flag(stack, c.urn, c.type, c.name,
                              f"{label} replaced (data lost unless restored): {forced} forces replacement"))
        elif c.op == "update" and any(p.path == "options.protect" and p.new in ("(absent)", "false")
                                      for p in c.changes):
            flags.append(Flag(stack, c.urn, c.type, c.name, f"{label} loses `protect`"))
        if c.op == "update" and c.type in IN_PLACE:
            note = in_place_note(c, (new.get(c.urn) or {}).get("inputs", {}))
            if note:
                flags.append(Flag(stack, c.urn, c.type, c.name, note))

    return StackDiff(
        stack=stack, base_note=base_note, head_note=head_note, resources=changes,
        outputs=property_changes((base or {}).get("outputs", {}), (head or {}).get("outputs", {})),
        reports=_report_changes(_generic((base or {}).get("reports", {})), _generic((head or {}).get("reports", {}))),
        policies=_policy_changes(base_policies, head_policies, policy_note),
        flags=flags,
        cost=(_data(base, "cost"), _data(head, "cost")),
        burst=(_data(base, "burst"), _data(head, "burst")),
    )


#: Reports with a section of their own (money and seconds), not a table among the others.
OWN_SECTIONS = ("cost", "burst")
#: Stacks whose burst is drawn as a chart in the report (GitHub renders Mermaid in comments).
CHART_STACKS = ("prod",)


def _generic(reports: dict) -> dict:
    return {k: v for k, v in reports.items() if k not in OWN_SECTIONS}


def _data(doc: dict | None, report: str) -> dict | None:
    return (((doc or {}).get("reports") or {}).get(report) or {}).get("data")


def _row_id(row: dict, key: list[str] | None) -> tuple:
    """What names a row: its declared key columns, or (no key declared) the whole row."""
    if key:
        return ("key", *(str(row.get(c, "")) for c in key))
    return ("row", *sorted((c, json.dumps(v, sort_keys=True, default=str)) for c, v in row.items()))


def _pair_rows(rows_a: list[dict], rows_b: list[dict], key: list[str] | None) -> tuple[list, list[dict]]:
    """Each head row with its BASE row (None: new) and the BASE rows left unpaired.

    Rows pair only on the report's declared key. A key value that names more than one row on
    either side pairs nothing by key: those rows match whole, so a changed one shows as gone and
    new, never as a change between two different rows."""
    ids_a, ids_b = [_row_id(r, key) for r in rows_a], [_row_id(r, key) for r in rows_b]
    repeated = {i for ids in (ids_a, ids_b) for i in ids if ids.count(i) > 1} if key else set()
    ids_a = [_row_id(r, None) if i in repeated else i for r, i in zip(rows_a, ids_a, strict=True)]
    ids_b = [_row_id(r, None) if i in repeated else i for r, i in zip(rows_b, ids_b, strict=True)]
    waiting: dict[tuple, list[dict]] = {}
    for i, r in zip(ids_a, rows_a, strict=True):
        waiting.setdefault(i, []).append(r)
    pairs = [(r, waiting[i].pop(0) if waiting.get(i) else None) for i, r in zip(ids_b, rows_b, strict=True)]
    return pairs, [r for rows in waiting.values() for r in rows]


def _row_label(row: dict, key: list[str] | None, cols: list[str]) -> str:
    return " / ".join(str(row.get(c, "")) for c in (key or cols))


def _report_changes(old: dict, new: dict) -> list[dict]:
    """Per report: its head rows with each changed cell shown as ``new (was old)``, rows paired
    by the report's declared ``key`` columns (``toolkit/reports.py``)."""
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        ref = b or a
        rows_a = (a or {}).get("rows", [])
        rows_b = (b or {}).get("rows", [])
        cols = list(dict.fromkeys(c for r in (rows_b or rows_a) for c in r))
        key = (ref or {}).get("key") or None
        pairs, gone = _pair_rows(rows_a, rows_b, key)
        rows, changed = [], a is None or b is None
        for row, prev in pairs:
            cells = []
            for c in cols:
                v = row.get(c, "")
                if prev is not None and prev.get(c, "") != v:
                    cells.append(f"**{v}** (was {prev.get(c, '')})")
                    changed = True
                elif prev is None and a is not None:
                    cells.append(f"**{v}**")
                    changed = True
                else:
                    cells.append(str(v))
            rows.append(cells)
        changed = changed or bool(gone) or (a or {}).get("notes") != (b or {}).get("notes")
        out.append({
            "name": name, "title": (ref or {}).get("title", name), "columns": cols, "rows": rows,
            "removed_rows": [_row_label(r, key, cols) for r in gone], "notes": (b or {}).get("notes", []),
            "ok": (b or {}).get("ok", True) if b else None,
            "was_ok": (a or {}).get("ok", True) if a else None,
            "status": "added" if a is None else "removed" if b is None else
                      "changed" if changed else "unchanged",
        })
    return out


def _policy_key(v: dict) -> tuple:
    return (str(v.get("policy", "")), str(v.get("urn", "")), str(v.get("message", "")))


def _policy_changes(base: list[dict] | None, head: list[dict] | None, note: str | None) -> dict:
    if head is None:
        return {"available": False, "note": note or "no policy results"}
    old = {_policy_key(v) for v in base or []}
    new = {_policy_key(v) for v in head}
    rows = []
    for v in sorted(head, key=lambda v: (str(v.get("enforcement", "")),) + _policy_key(v)):
        rows.append({**{k: str(v.get(k, "")) for k in ("policy", "enforcement", "urn", "message")},
                     "new": base is not None and _policy_key(v) not in old})
    resolved = sorted(k for k in old if k not in new) if base is not None else []
    counts: dict[str, int] = {}
    for v in head:
        counts[str(v.get("enforcement", ""))] = counts.get(str(v.get("enforcement", "")), 0) + 1
    base_counts: dict[str, int] = {}
    for v in base or []:
        e = str(v.get("enforcement", ""))
        base_counts[e] = base_counts.get(e, 0) + 1
    return {"available": True, "note": note, "rows": rows, "resolved": resolved,
            "counts": counts, "base_counts": base_counts if base is not None else None}


# ---------------------------------------------------------------------------------------------
# Rendering, with the size cap
# ---------------------------------------------------------------------------------------------

#: What each detail level keeps; the renderer tries them in order until the report fits.
LEVELS = [
    (0, None),
    (1, "folded property diffs"),
    (2, "folded property diffs and the per-resource lines"),
    (3, "folded property diffs, per-resource lines, report tables and policy details"),
]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def _delta(new: int, old: int | None) -> str:
    if old is None or new == old:
        return str(new)
    return f"{new} ({new - old:+d})"


def _render_stack(d: StackDiff, level: int) -> list[str]:
    if d.unchanged:
        return [f"no change in `{d.stack}`", ""]
    lines = [f"### Stack `{d.stack}`", ""]
    if d.head_error:
        return lines + ["> **working tree: failed to build.** Not compared with BASE; the error is "
                        "at the top of this report.", ""]
    for side, note in (("BASE", d.base_note), ("working tree", d.head_note)):
        if note:
            lines += [f"> **{side}: {note}** Treated as empty.", ""]
    custom = [r for r in d.resources if r.custom]
    comps = [r for r in d.resources if not r.custom]
    if not d.resources:
        lines += ["No resource changes.", ""]
    else:
        lines.append(f"{len(custom)} resource and {len(comps)} component changes.")
        lines.append("")
    if d.resources and level < 2:
        body = []
        order = {"replace": 0, "delete": 1, "create": 2, "update": 3}
        for r in sorted(d.resources, key=lambda r: (order[r.op], r.urn)):
            mark = " ⚠ stateful" if r.stateful and r.op in ("delete", "replace") else ""
            extra = ""
            if r.moved_from:
                extra = f" (URN changed from {_code(r.moved_from)})"
            elif r.moved_to:
                extra = " (URN changes; see create)"
            kind = "" if r.custom else " (component)"
            body.append(f"- **{r.op}** {_code(r.type)} {_code(r.name)}{kind}{mark}{extra}")
            if r.changes and level < 1:
                plural = "" if len(r.changes) == 1 else "s"
                body.append(f"  <details><summary>{len(r.changes)} property change{plural}</summary>\n")
                body.append("  | property | BASE | working tree | |")
                body.append("  |---|---|---|---|")
                for c in r.changes:
                    note = "forces replacement" if c.forces_replace else ""
                    body.append(f"  | {_code(c.path)} | {_cell(c.old)} | {_cell(c.new)} | {note} |")
                body.append("\n  </details>")
            elif r.changes:
                forced = [c.path for c in r.changes if c.forces_replace]
                summary = f"  - {len(r.changes)} property changes (detail cut for size)"
                if forced:
                    summary += "; forcing replacement: " + ", ".join(_code(p) for p in forced)
                body.append(summary)
        if len(body) > 20:
            lines += [f"<details><summary>Resource changes ({len(d.resources)})</summary>", ""]
            lines += body
            lines += ["", "</details>", ""]
        else:
            lines += body + [""]
    elif d.resources:
        lines += ["_Per-resource lines cut for size._", ""]

    if d.outputs:
        lines += ["**Stack outputs changed:** " + ", ".join(
            f"{_code(c.path)} {_cell(c.old)} → {_cell(c.new)}" if level < 2 else _code(c.path)
            for c in d.outputs), ""]

    lines += _render_policies(d.policies, level)
    lines += _render_cost(d.cost, level)
    lines += _render_burst(d.stack, d.burst, level)
    lines += _render_reports(d.reports, level)
    return lines


def _money(value: float | None) -> str:
    return "n/a" if value is None else f"${value:,.2f}"


def _change(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return "n/a"
    return f"{new - old:+,.2f}" if round(new - old, 2) else "0"


#: Moving parts named beside a cost total's change; the rest are summed as "n more lines".
MOVING_PARTS = 4
_SCALE_LINE = {"minScale": "monthlyMinScale", "maxScale": "monthlyMaxScale"}


def _moving_parts(base: dict | None, head: dict, scale: str) -> str:
    """A total's change with the lines that make it up: ``0 = +280.32 (a: nodes) − 280.32 (a: headroom)``."""
    field = _SCALE_LINE[scale]
    total = _change(head["monthly"][scale], (base or {}).get("monthly", {}).get(scale))
    if base is None or total == "n/a":
        return total
    old = {(x["resource"], x["item"]): x.get(field) or 0 for x in base.get("lines", [])}
    new = {(x["resource"], x["item"]): x.get(field) or 0 for x in head["lines"]}
    deltas = sorted(((round(new.get(k, 0) - old.get(k, 0), 2), k) for k in {*old, *new}),
                    key=lambda d: (-abs(d[0]), -d[0], d[1]))
    deltas = [d for d in deltas if d[0]]
    if not deltas:
        return total
    parts = [(v, f"{_cell(r)}: {_cell(i)}") for v, (r, i) in deltas[:MOVING_PARTS]]
    rest = deltas[MOVING_PARTS:]
    if rest:
        parts.append((round(sum(v for v, _ in rest), 2), f"{len(rest)} more lines"))
    shown = "".join(f"{('+' if v >= 0 else '−') if n == 0 else (' + ' if v >= 0 else ' − ')}{abs(v):,.2f} ({what})"
                    for n, (v, what) in enumerate(parts))
    return f"{total} = {shown}"


def _incomplete(doc: dict | None) -> str | None:
    """``incomplete: N lines unpriced`` for a cost document that lacks prices (older ones say only
    ``complete: false``), or None."""
    if doc is None or doc.get("complete", True):
        return None
    if doc.get("incomplete"):
        return str(doc["incomplete"])
    n = sum(1 for x in doc.get("lines", []) if x.get("unitPrice") is None)
    return f"incomplete: {n} line{'s' if n != 1 else ''} unpriced"


def _render_cost(cost: tuple[dict | None, dict | None], level: int) -> list[str]:
    """Monthly cost at both scales, BASE against the working tree, and the lines that changed."""
    base, head = cost
    if head is None:
        return [] if base is None else ["**Cost per month:** the working tree has no cost report.", ""]
    bm, hm = (base or {}).get("monthly", {}), head["monthly"]
    # An incomplete side leads, before any total: its unpriced lines count nothing, so its total and
    # the change would otherwise read as a cheaper stack.
    sides = (("working tree", _incomplete(head)), ("BASE", _incomplete(base)))
    holes = [f"**{label}: {text}**" for label, text in sides if text]
    lines = [f"{'; '.join(holes)}. Totals and the change count the priced lines only.", ""] if holes else []
    priced = " (priced lines)" if holes else ""
    lines += [f"**Cost per month** ({head['currency']}, {head['region']} list prices read {head['pricesAsOf']}; "
              "docs/cost-and-burst.md):", "",
              f"| scale | BASE{priced} | working tree{priced} | change (and the lines that make it) |",
              "|---|---|---|---|"]
    for key, label in (("minScale", "minimum"), ("maxScale", "maximum")):
        lines.append(f"| {label} | {_money(bm.get(key))} | {_money(hm[key])} | {_moving_parts(base, head, key)} |")
    lines.append("")
    if head.get("budgetUsd") is not None:
        over = hm["maxScale"] > head["budgetUsd"]
        lines += [f"Budget {_money(head['budgetUsd'])}: maximum scale is {'**over** it' if over else 'within'} it.",
                  ""]
    missing = [m["key"] for m in head.get("missingPrices", [])]
    if missing:
        lines += [f"Not priced (no amount counted): {', '.join(_code(k) for k in missing)}.", ""]
    if head.get("cappedNodeGroups"):
        lines += [f"The maxSize cap bites at maximum scale: {', '.join(head['cappedNodeGroups'])}.", ""]
    old = {(x["resource"], x["item"]): x for x in (base or {}).get("lines", [])}
    new = {(x["resource"], x["item"]): x for x in head["lines"]}
    changed = [k for k in new if k not in old or (old[k]["monthlyMinScale"], old[k]["monthlyMaxScale"])
               != (new[k]["monthlyMinScale"], new[k]["monthlyMaxScale"])] + [k for k in old if k not in new]
    if base is not None and changed and level < 3:
        lines += ["| resource | item | minimum | maximum |", "|---|---|---|---|"]
        for k in changed:
            a, b = old.get(k, {}), new.get(k, {})
            cells = [f"{_money(a.get(s))} → {_money(b.get(s))}" for s in ("monthlyMinScale", "monthlyMaxScale")]
            lines.append(f"| {_cell(k[0])} | {_cell(k[1])} | {cells[0]} | {cells[1]} |")
        lines.append("")
    elif base is not None and not changed:
        lines += ["No cost line changed.", ""]
    return lines


def _render_burst(stack: str, burst: tuple[dict | None, dict | None], level: int) -> list[str]:
    """Seconds until each app's peak replicas are Ready, BASE against the working tree; a chart for prod."""
    base, head = burst
    if head is None:
        return [] if base is None else ["**5x burst:** the working tree has no burst report.", ""]
    goal = head["targetSeconds"]
    spread = head.get("distribution") or {}
    lines = [f"**5x burst, seconds until the peak's replicas are Ready, p95 of the seeded draws** (goal {goal} s):",
             "", "| app | BASE | working tree | p50 / worst | |", "|---|---|---|---|---|"]
    before = (base or {}).get("readySeconds", {})
    for app, ready in sorted(head["readySeconds"].items()):
        ok = ready is not None and ready <= goal
        was = before.get(app, "n/a") if base is not None else "n/a"
        other = spread.get(app) or {}
        extra = f"{_secs(other.get('p50'))} / {_secs(other.get('worst'))}" if other else "n/a"
        lines.append(f"| {app} | {_secs(was)} | {_secs(ready)} | {extra} | {'✅' if ok else '❌'} |")
    lines.append("")
    advice = head.get("headroomToMeet")
    if advice:
        lines += [_cell(advice["text"]), ""]
    if stack in CHART_STACKS and level < 3:
        lines += _mermaid(stack, base, head)
    return lines


def _secs(value) -> str:
    if value == "n/a":
        return "n/a"
    return "never" if value is None else f"{value} s"


def _mermaid(stack: str, base: dict | None, head: dict) -> list[str]:
    """Pods Ready across all apps, BASE and working tree, against the demand: a Mermaid ``xychart-beta``."""
    step = 10
    end = max(p["t"] for p in (base or {}).get("series", []) + head["series"])
    times = list(range(0, end + 1, step))

    def at(series: list[dict], t: int, what: str) -> int:
        point = max((p for p in series if p["t"] <= t), key=lambda p: p["t"], default=None)
        return sum(v[what] for v in point["apps"].values()) if point else 0

    demand = [at(head["series"], t, "demand") for t in times]
    ready = [at(head["series"], t, "ready") for t in times]
    lines_ = [demand, ready] + ([[at(base["series"], t, "ready") for t in times]] if base else [])
    top = max(max(x) for x in lines_) + 5
    legend = ("lines: demand (pods the peak needs), Ready in the working tree"
              + (", Ready at BASE" if base else ""))
    out = ["```mermaid", "xychart-beta",
           f'    title "{stack}: pods Ready after the 5x step, all apps (goal {head["targetSeconds"]} s)"',
           f'    x-axis "seconds" [{", ".join(map(str, times))}]', f'    y-axis "pods" 0 --> {top}']
    out += [f"    line [{', '.join(map(str, series))}]" for series in lines_]
    return out + ["```", "", f"_{legend}._", ""]

def _render_policies(p: dict | None, level: int) -> list[str]:
    if not p or not p["available"]:
        return [f"**Policy results:** not available ({(p or {}).get('note') or 'not run'}).", ""]
    base_counts = p["base_counts"]
    kinds = sorted(set(p["counts"]) | set(base_counts or {}))
    counts = ", ".join(f"{k}: {_delta(p['counts'].get(k, 0), None if base_counts is None else base_counts.get(k, 0))}"
                       for k in kinds) or "no violations"
    new = sum(1 for r in p["rows"] if r["new"])
    since = (f"; {new} new, {len(p['resolved'])} resolved since BASE" if base_counts is not None
             else " (no BASE results to compare)")
    lines = [f"**Policy results:** {counts}{since}.", ""]
    if p.get("note"):
        lines += [f"_{p['note']}_", ""]
    if p["rows"] and level < 3:
        lines += [f"<details><summary>Violations ({len(p['rows'])})</summary>", "",
                  "| enforcement | policy | resource | message | |", "|---|---|---|---|---|"]
        for r in p["rows"]:
            lines.append(f"| {r['enforcement']} | {_code(r['policy'])} | {_code(r['urn'].split('::')[-1])} "
                         f"| {_cell(r['message'])} | {'new' if r['new'] else ''} |")
        for policy, urn, message in p["resolved"]:
            lines.append(f"| resolved | {_code(policy)} | {_code(urn.split('::')[-1])} | {_cell(message)} | |")
        lines += ["", "</details>", ""]
    return lines


def _render_reports(reports: list[dict], level: int) -> list[str]:
    if not reports:
        return ["**Capacity reports:** none declared.", ""]
    same = [r for r in reports if r["status"] == "unchanged"]
    moved = [r for r in reports if r["status"] != "unchanged"]
    lines = [f"**Capacity reports:** {len(moved)} changed"
             + (f"; unchanged: {', '.join(_cell(r['title']) for r in same)}" if same else "") + ".", ""]
    if not moved:
        return lines
    lines += [f"<details><summary>Changed capacity reports ({len(moved)})</summary>", ""]
    for r in moved:
        ok = "" if r["ok"] is None else (" ✅" if r["ok"] else " ❌ target missed")
        was = "" if r["was_ok"] is None or r["was_ok"] == r["ok"] else \
            f" (was {'ok' if r['was_ok'] else 'missed'})"
        lines.append(f"- {_cell(r['title'])}: {r['status']}{ok}{was}")
        if level >= 3 or r["status"] == "removed" or not r["columns"]:
            continue
        lines += ["", "  | " + " | ".join(_cell(c) for c in r["columns"]) + " |",
                  "  |" + "---|" * len(r["columns"])]
        lines += ["  | " + " | ".join(_cell(c) for c in row) + " |" for row in r["rows"]]
        if r["removed_rows"]:
            lines.append("  Rows gone since BASE: " + ", ".join(_cell(k) for k in r["removed_rows"]))
        for note in r["notes"]:
            lines.append(f"  {_cell(note)}")
        lines.append("")
    lines += ["", "</details>", ""]
    return lines


def new_mandatory(diffs: list[StackDiff]) -> int:
    """How many mandatory violations the change adds: ``make diff`` exits non-zero when any."""
    return sum(len(d.new_mandatory) for d in diffs)


def verdict(diffs: list[StackDiff]) -> str:
    """The report's first line: does this change block the merge?"""
    failed = [d.stack for d in diffs if d.head_error]
    count = new_mandatory(diffs)
    if count or failed:
        parts = [f"{count} new mandatory violation{'' if count == 1 else 's'}"] if count else []
        parts += [f"the working tree failed to build for {', '.join(failed)}"] if failed else []
        return f"❌ **blocks merge: {'; '.join(parts)}**"
    unknown = [d.stack for d in diffs if not (d.policies and d.policies["available"])]
    return "✅ **no new mandatory violation**" + (
        f" (policy results not available for {', '.join(unknown)})" if unknown else "")


def _header(diffs: list[StackDiff], base_label: str, head_label: str) -> list[str]:
    """Verdict, new mandatory violations, failed builds, stateful resources, then the per-stack
    summary: everything a reviewer must see, before any per-stack detail (which is what the size
    cap cuts)."""
    lines = [verdict(diffs), MARKER, "", "## Offline review: what this change declares, per stack", "",
             f"BASE {base_label} → working tree {head_label}.", "",
             "> Desired state computed offline under the Pulumi SDK's mocks with each stack's real "
             "config; no cloud was contacted. Replacement detection is a best-effort table of "
             "replace-forcing properties for stateful types: the real `pulumi preview --diff` "
             "(CI, with credentials) is authoritative.", ""]
    blocking = [(d.stack, r) for d in diffs for r in d.new_mandatory]
    if blocking:
        lines += [f"### ❌ New mandatory violations ({len(blocking)})", "",
                  "| stack | policy | resource | message |", "|---|---|---|---|"]
        for stack, r in blocking:
            lines.append(f"| {stack} | {_code(r['policy'])} | {_code(r['urn'].split('::')[-1])} "
                         f"| {_cell(r['message'])} |")
        lines += ["", "The policy pack rejects `pulumi preview` and `pulumi up` of the stack with these; "
                  "`make diff` exits 1.", ""]
    failed = [d for d in diffs if d.head_error]
    if failed:
        lines += [f"### ❌ The working tree failed to build: {', '.join(_code(d.stack) for d in failed)}",
                  "", "Not compared with BASE: the program did not run, so nothing is known about "
                  "what it would create, change or delete. Fix the error and run `make diff` again.",
                  ""]
        for d in failed:
            lines += [f"**{_code(d.stack)}**:", "", "```text", (d.head_error or "").replace("```", "'''"),
                      "```", ""]
    flags = [f for d in diffs for f in d.flags]
    if flags:
        lines += [f"### ⚠ Stateful resources at risk ({len(flags)})", "",
                  "| stack | resource | type | what |", "|---|---|---|---|"]
        for f in flags:
            lines.append(f"| {f.stack} | {_code(f.name)} | {_code(f.type)} | {_cell(f.what)} |")
        lines.append("")
    elif len(failed) < len(diffs):
        lines += ["No stateful resource is deleted, replaced or modified in place"
                  + (" in the stacks that built." if failed else "."), ""]
    if not failed and not any(d.resources or d.outputs for d in diffs):
        lines += ["**No resource changes in any stack.**", ""]
    lines += ["| stack | create | update | delete | replace-risk | new mandatory | policy violations "
              "| cost at max scale | BASE |", "|---|---|---|---|---|---|---|---|---|"]
    for d in diffs:
        base = "empty (see below)" if d.base_note else "built"
        if d.head_error:
            lines.append(f"| `{d.stack}` ❌ working tree failed to build | n/a | n/a | n/a | n/a | n/a "
                         f"| n/a | n/a | {base} |")
            continue
        if d.policies and d.policies["available"]:
            total = sum(d.policies["counts"].values())
            base_total = sum(d.policies["base_counts"].values()) if d.policies["base_counts"] is not None else None
            pol, new = _delta(total, base_total), str(len(d.new_mandatory))
        else:
            pol = new = "n/a"
        b, h = d.cost
        cost = "n/a" if h is None else _change(h["monthly"]["maxScale"], (b or {}).get("monthly", {}).get("maxScale"))
        lines.append(f"| `{d.stack}` | {d.count('create')} | {d.count('update')} | "
                     f"{d.count('delete')} | {d.count('replace')} | {new} | {pol} | {cost} | {base} |")
    lines.append("")
    return lines


def render(diffs: list[StackDiff], *, base_label: str, head_label: str,
           limit: int = DEFAULT_LIMIT) -> str:
    """The Markdown report, at the most detailed level that fits in ``limit`` characters."""
    head = _header(diffs, base_label, head_label)
    text = ""
    for level, cut in LEVELS:
        body = [line for d in diffs for line in _render_stack(d, level)]
        note = [f"_Cut to fit a GitHub comment: {cut}. Run `make diff` locally for the full report._", ""] \
            if cut else []
        text = "\n".join(head + note + body).rstrip("\n") + "\n"
        if len(text) <= limit:
            return text
    # Last resort: keep the header (flags and summaries) whole, truncate the per-stack part.
    note = ["_Cut to fit a GitHub comment: everything below the summary was truncated. "
            "Run `make diff` locally for the full report._", ""]
    top = "\n".join(head + note) + "\n"
    rest = "\n".join(body)
    room = max(limit - len(top) - 40, 0)
    return top + rest[:room] + "\n\n_[truncated]_\n"
