"""The stack's figures for the load test: ``cofounder:scaling`` in a stack file, and its public URL.

Kept apart from the locustfile so it can be imported without locust (which patches the
standard library with gevent on import).
"""

from __future__ import annotations

import shutil
import subprocess
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


def stack_url(stack: str, pulumi: str | None = None) -> str:
    """The deployed stack's public URL: its ``url`` output, read with the Pulumi CLI."""
    pulumi = pulumi or shutil.which("pulumi")
    if pulumi is None:
        raise SystemExit(f"--stack {stack} without --host: the Pulumi CLI is needed to read the stack's url "
                         f"output (or give --host https://...)")
    result = subprocess.run([pulumi, "stack", "output", "url", "--stack", stack], capture_output=True, text=True,
                            cwd=STACKS_DIR.parent, timeout=120)
    url = result.stdout.strip()
    if result.returncode != 0 or not url.startswith(("https://", "http://")):
        raise SystemExit(f"--stack {stack}: `pulumi stack output url` gave no URL ({result.stderr.strip() or url}); "
                         f"deploy the stack first or give --host")
    return url
