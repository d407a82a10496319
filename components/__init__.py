"""Reusable Pulumi components, one per file, each named after what it builds.

Each component file declares ``<X>Settings``, what a stack may set (types, defaults, bounds,
``#:`` docs, in the vocabulary of ``capacity/schema.py``, re-exported here), and
``<X>Args(<X>Settings)``, which adds only the wiring (ids, ARNs, providers, Outputs). The
component calls ``require_valid`` first, so bad arguments fail as one line before anything is
declared, with the same rule and wording the stack files get.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import pulumi

from capacity import schema
from capacity.schema import (
    Between,
    Constraint,
    Matches,
    OneOf,
    Problem,
    camel,
    constraints,
    field_docs,
    hints_of,
    problems,
)

__all__ = ["CLOUDWATCH_LOG_RETENTION_DAYS", "LOG_RETENTION", "Between", "ComponentArgsError", "Constraint",
           "Matches", "OneOf", "Problem", "args_for", "camel",
           "constraints", "field_docs", "hints_of", "problems", "require_valid", "restricted_container"]

schema._LOCALNS["Output"] = pulumi.Output
#: The retentions CloudWatch Logs accepts (PutRetentionPolicy); any other value fails at deploy time.
CLOUDWATCH_LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                                 2192, 2557, 2922, 3288, 3653)
LOG_RETENTION = OneOf(CLOUDWATCH_LOG_RETENTION_DAYS, "a retention CloudWatch Logs accepts")
_Args = TypeVar("_Args")


def restricted_container() -> dict[str, Any]:
    """A container ``securityContext`` that PSA ``restricted`` admits, with a read-only root: no
    privilege escalation, every capability dropped (the pod sets non-root and seccomp). A fresh
    copy each time, so a caller may add to it."""
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


class ComponentArgsError(pulumi.RunError, ValueError):
    """Invalid component arguments; printed by the CLI as one line."""


def args_for(settings: Any, args_cls: type[_Args], **wiring: Any) -> _Args:
    """``args_cls`` (a component's Args) from a stack's settings plus the wiring only the program
    knows (ids, ARNs, providers, Outputs). Fields of ``settings`` that ``args_cls`` lacks (a
    section composed of several components' settings) are left out."""
    names = {f.name for f in dataclasses.fields(args_cls) if f.init}  # type: ignore[arg-type]
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings) if f.name in names}
    return args_cls(**{**values, **wiring})


def require_valid(component: str, args: Any) -> None:
    """Raise ``ComponentArgsError`` for the first problem of ``args`` (a Settings or Args dataclass)."""
    found = problems(args)
    if found:
        p = found[0]
        raise ComponentArgsError(f"{component}: {p.key()} = {p.value!r} is not allowed: expected {p.allowed}")
