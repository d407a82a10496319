"""The stack's figures for the load test: ``cofounder:scaling`` in a stack file, and its public URL.

Kept apart from the locustfile so it can be imported without locust (which patches the
standard library with gevent on import). The figures are ``ScalingSettings`` (capacity/scale_up.py,
where ``peakUsers`` and ``peakRps`` are defined with their bounds), read from the file itself: the
load test is a tool outside the program.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from capacity import schema
from capacity.scale_up import ScalingSettings

REPO = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO / "stacks"


def stack_scaling(stack: str | None, stacks_dir: Path = STACKS_DIR) -> ScalingSettings:
    """``cofounder:scaling`` of ``stacks/Pulumi.<stack>.yaml`` (the defaults when absent or no stack)."""
    if not stack:
        return ScalingSettings()
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        raise SystemExit(f"--stack {stack}: {path} does not exist")
    config = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    values = config.get("cofounder:scaling") or {}
    if not isinstance(values, dict):
        raise SystemExit(f"{path}: cofounder:scaling is {values!r}; expected a mapping")
    try:
        scaling = ScalingSettings.from_camel(values)
    except TypeError as exc:
        raise SystemExit(f"{path}: cofounder:scaling: {exc}") from None
    problem = next(iter(schema.problems(scaling)), None)
    if problem:
        raise SystemExit(f"{path}: cofounder:scaling.{problem.key(schema.camel)} is {problem.value!r}; "
                         f"allowed: {problem.allowed}")
    return scaling


def stack_url(stack: str, pulumi: str | None = None) -> str:
    """The deployed stack's public URL: its ``url`` output, read with the Pulumi CLI."""
    pulumi = pulumi or shutil.which("pulumi")
    if pulumi is None:
        raise SystemExit(f"--stack {stack} without --host: the Pulumi CLI is needed to read the stack's url "
                         f"output (or give --host https://...)")
    result = subprocess.run([pulumi, "stack", "output", "url", "--stack", stack], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    url = result.stdout.strip()
    if result.returncode != 0 or not url.startswith(("https://", "http://")):
        raise SystemExit(f"--stack {stack}: `pulumi stack output url` gave no URL ({result.stderr.strip() or url}); "
                         f"deploy the stack first or give --host")
    return url


def parse_pods(text: str) -> dict[str, int]:
    """``frontend=6,backend=4`` (the replicas each app ran during the hold) as a mapping; a
    malformed entry is a ``ValueError`` naming it. The load test's and ``make tune``'s ``--pods``."""
    pods = {}
    for entry in (e.strip() for e in text.split(",") if e.strip()):
        app, _, count = entry.partition("=")
        if not app.strip() or not count.isdigit() or int(count) < 1:
            raise ValueError(f"--pods {text}: {entry!r} is not <app>=<replicas> with replicas >= 1")
        pods[app.strip()] = int(count)
    return pods
