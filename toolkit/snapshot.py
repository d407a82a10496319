"""The desired-state snapshot: a stable, secret-free JSON document of what a stack declares.

Format ``cofounder-desired-state/v1`` (documented in docs/reports.md):
- ``stack``, ``format``, ``note`` (what the document is and is not);
- ``resources``: sorted by URN; each with ``urn``, ``type``, ``name``, ``parent`` (URN or null),
  ``custom`` (false for components), ``protect`` and the other options that matter for review,
  and ``inputs`` exactly as the engine would receive them (camelCase);
- ``outputs``: the stack outputs;
- ``reports``: derived figures (capacity arithmetic and the like), keyed by report name.
Every secret is replaced by ``"[secret:<12 hex>]"``: a fingerprint of the offline placeholder or
mock value, so a changed secret shows as changed without anything secret in the file.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from toolkit.harness import Program, is_secret

FORMAT = "cofounder-desired-state/v1"
NOTE = ("Desired state declared by the Pulumi program for this stack, computed offline under the "
        "Pulumi SDK's mock runtime with the stack's real config. No cloud was contacted: this is "
        "what the program asks for, not what AWS or the cluster currently hold.")


def mask(value: Any, sort: bool = True) -> Any:
    """``value`` with every secret replaced by its fingerprint; ``sort=False`` keeps key order
    (for rendering tables whose column order means something)."""
    if is_secret(value):
        digest = hashlib.sha256(json.dumps(value.get("value"), sort_keys=True,
                                           default=str).encode()).hexdigest()[:12]
        return f"[secret:{digest}]"
    if isinstance(value, dict):
        items = sorted(value.items()) if sort else value.items()
        return {k: mask(v, sort) for k, v in items}
    if isinstance(value, list):
        return [mask(v, sort) for v in value]
    return value


def build(program: Program, reports: dict | None = None) -> dict:
    resources = []
    for r in sorted(program.resources, key=lambda r: r.urn):
        options = {k: v for k, v in sorted(r.options.items()) if v not in (None, False, [], {})}
        resources.append({
            "urn": r.urn,
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "custom": r.custom,
            "options": options,
            "inputs": mask(r.inputs),
        })
    return {
        "format": FORMAT,
        "stack": program.stack,
        "note": NOTE,
        "resources": resources,
        "outputs": mask(program.outputs),
        "reports": mask(reports or {}),
    }


def dumps(snapshot: dict) -> str:
    """Byte-stable serialization: sorted keys, two-space indent, trailing newline."""
    return json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
