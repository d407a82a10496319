"""The drift report: what `pulumi refresh --preview-only --json` found changed outside Pulumi.

.github/workflows/drift.yml runs the refresh per stack with the stack's read-only preview role
and turns its JSON into ``report.md`` (the body of that stack's drift issue) and ``status``
(``drift`` or ``clean``). Standard library only: the job runs it before any install.

The input is the CLI's preview digest (pulumi/pulumi pkg/backend/display/json.go
ShowPreviewDigest): ``steps``, each with ``op``, ``urn``, ``oldState``/``newState`` (secret values
already replaced by ``"[secret]"``), ``diffReasons`` and ``detailedDiff``. A refresh step has the
state Pulumi holds as ``oldState`` and what the provider read back as ``newState``; no
``newState`` means the resource is gone from the cloud. The report names resources and
properties, never values: the issue may be readable by more people than the stack's state.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Entries of the state that are not cloud resources: the stack itself and provider instances.
NOT_CLOUD = ("pulumi:pulumi:Stack", "pulumi:providers:")


@dataclass(frozen=True)
class Drift:
    urn: str
    #: Dotted property paths that differ, as the provider's diff names them.
    properties: tuple[str, ...]
    #: The resource no longer exists in the cloud.
    gone: bool = False

    @property
    def type(self) -> str:
        return _type(self.urn)

    @property
    def name(self) -> str:
        return self.urn.split("::")[-1]


def _type(urn: str) -> str:
    """The resource type in ``urn:pulumi:<stack>::<project>::<parent types$>type::<name>``."""
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) > 3 else ""


def _changed_outputs(step: dict[str, Any]) -> tuple[str, ...]:
    old = (step.get("oldState") or {}).get("outputs") or {}
    new = (step.get("newState") or {}).get("outputs") or {}
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def drifts(digest: dict[str, Any]) -> list[Drift]:
    """The drifted resources of a refresh preview digest, sorted by URN. A step is drift when the
    provider's diff names properties (``detailedDiff``, else ``diffReasons``), when the outputs it
    read back differ from the state's, or when the resource is gone."""
    out = []
    for step in digest.get("steps") or []:
        urn = step.get("urn", "")
        if _type(urn).startswith(NOT_CLOUD) or step.get("op") == "same":
            continue
        if step.get("oldState") and not step.get("newState"):
            out.append(Drift(urn, (), gone=True))
            continue
        props = tuple(sorted(step.get("detailedDiff") or {})) or tuple(sorted(step.get("diffReasons") or ())) \
            or _changed_outputs(step)
        if props:
            out.append(Drift(urn, props))
    return sorted(out, key=lambda d: d.urn)


def report(stack: str, found: list[Drift], run_url: str) -> str:
    """The issue body: one row per drifted resource, and what to do (docs/ci.md "Drift")."""
    lines = [f"`pulumi refresh --preview-only` on stack `{stack}` found {len(found)} resource(s) "
             f"changed outside Pulumi ([run]({run_url})).", "",
             "| resource | type | changed properties |", "|---|---|---|"]
    for d in found:
        changed = "**gone from the cloud**" if d.gone else ", ".join(f"`{p}`" for p in d.properties)
        lines.append(f"| `{d.name}` | `{d.type}` | {changed} |")
    lines += ["", "Values are not shown here. To see them, and to act on this report (revert, adopt in "
              "code, or accept with `pulumi refresh`), follow docs/ci.md \"Drift\". This issue is "
              "updated by each run that still finds drift and closed by the first that finds none."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--digest", type=Path, required=True, help="output of pulumi refresh --preview-only --json")
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md and status")
    parser.add_argument("--run-url", default="")
    args = parser.parse_args(argv)
    try:
        digest = json.loads(args.digest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: {args.digest}: not a refresh preview digest ({exc})", file=sys.stderr)
        return 2
    found = drifts(digest)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "status").write_text("drift\n" if found else "clean\n")
    (args.out / "report.md").write_text(report(args.stack, found, args.run_url))
    print(f"{args.stack}: {len(found)} drifted resource(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
