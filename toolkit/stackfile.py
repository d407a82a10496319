"""Reads ``stacks/Pulumi.<stack>.yaml`` into the config map the Pulumi CLI hands a program.

The CLI passes every key as ``<namespace>:<key>`` with scalars as strings and structured values
as JSON; this module does the same. A ``secure:`` value cannot be decrypted offline (no CLI, no
secrets provider): it becomes a placeholder marked secret, derived from the ciphertext so a
rotated secret still shows up as a change in the review diff, never the secret itself.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
STACKS_DIR = REPO / "stacks"


class StackFileError(Exception):
    """The stack file is missing or is not valid YAML of the expected shape."""


@dataclass(frozen=True)
class StackFile:
    stack: str
    path: Path
    config: dict[str, str]
    secret_keys: list[str]


def stack_names(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def _encode(value) -> tuple[str, bool]:
    if isinstance(value, dict) and set(value) == {"secure"}:
        digest = hashlib.sha256(str(value["secure"]).encode()).hexdigest()[:12]
        return f"offline-secret-{digest}", True
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool):
        return "true" if value else "false", False
    if isinstance(value, (int, float)):
        return str(value), False
    return json.dumps(value), _has_secure(value)


def _has_secure(value) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secure(v) for v in value)
    return False


def load_stack_file(stack: str, stacks_dir: Path = STACKS_DIR) -> StackFile:
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = ", ".join(stack_names(stacks_dir)) or "none"
        raise StackFileError(f"stacks/Pulumi.{stack}.yaml does not exist: known stacks are {known}")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        # PyYAML names the input "<unicode string>"; the reader needs the file, line and column.
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(str(part) for part in (getattr(exc, "context", None), getattr(exc, "problem", None))
                         if part) or type(exc).__name__
        raise StackFileError(f"stacks/Pulumi.{stack}.yaml{where} is not valid YAML: {what}") from None
    raw = doc.get("config") or {}
    if not isinstance(doc, dict) or not isinstance(raw, dict):
        raise StackFileError(f"stacks/Pulumi.{stack}.yaml: 'config' must be a mapping of keys")
    config, secrets = {}, []
    for key, value in raw.items():
        if ":" not in str(key):
            raise StackFileError(f"stacks/Pulumi.{stack}.yaml: config key {key!r} needs a namespace, "
                                 f"such as cofounder:{key}")
        config[key], secret = _encode(value)
        if secret:
            secrets.append(key)
    return StackFile(stack=stack, path=path, config=config, secret_keys=secrets)
