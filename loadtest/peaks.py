"""The stack's peak figures for the load test: ``cofounder:scaling`` in a stack file, if present.

Kept apart from the locustfile so it can be imported without locust (which patches the
standard library with gevent on import).
"""

from __future__ import annotations

from pathlib import Path

import yaml

STACKS_DIR = Path(__file__).resolve().parent.parent / "stacks"


def stack_scaling(stack: str | None, stacks_dir: Path = STACKS_DIR) -> dict:
    """``cofounder:scaling`` of ``stacks/Pulumi.<stack>.yaml`` ({} when absent or no stack)."""
    if not stack:
        return {}
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise SystemExit(f"--stack {stack}: {path} does not exist")
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    scaling = config.get("cofounder:scaling") or {}
    return scaling if isinstance(scaling, dict) else {}
