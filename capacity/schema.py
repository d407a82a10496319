"""The vocabulary every ``<X>Settings`` dataclass uses to say what a stack may set, once.

Pure Python (the capacity arithmetic and the policy pack import it too):
- bounds as ``Annotated`` metadata: ``Annotated[int, Between(1, 35)]``,
  ``Annotated[str, Matches(r"17(\\.\\d+)?", "17 or a full version such as 17.6")]``,
  ``Annotated[int, OneOf(CLOUDWATCH_LOG_RETENTION_DAYS)]``; closed sets as ``Literal[...]``;
- cross-field rules as a ``checks()`` method yielding ``(field, value, allowed)``;
- documentation as a ``#:`` comment on the line above the field (``field_docs``).

``problems(settings)`` evaluates bounds and checks. Components call it through
``components.require_valid`` before declaring anything, the config loader (``infra/config.py``)
through its reader, so a setting has one rule and one wording wherever it is given.
"""

from __future__ import annotations

import ast
import collections.abc
import dataclasses
import inspect
import re
import textwrap
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from capacity.numbers import plain

#: Forward references in Args type hints (``pulumi.Input[T]`` names ``'Output[T]'``); the
#: components package fills in the real ``Output`` so nothing here imports pulumi.
_LOCALNS: dict[str, Any] = {"T": Any, "Output": Any}


@dataclass(frozen=True)
class Between:
    """A number between ``minimum`` and ``maximum`` (inclusive; either may be open)."""

    minimum: float | None = None
    maximum: float | None = None

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"a value between {plain(self.minimum)} and {plain(self.maximum)}"
        if self.minimum is not None:
            return f"a value of at least {plain(self.minimum)}"
        return f"a value of at most {plain(self.maximum)}" if self.maximum is not None else "a number"

    def allows(self, value: Any) -> bool:
        return ((self.minimum is None or value >= self.minimum)
                and (self.maximum is None or value <= self.maximum))


@dataclass(frozen=True)
class Matches:
    """A string matching ``pattern`` in full; ``expected`` says what that is, for the error."""

    pattern: str
    expected: str = ""

    def describe(self) -> str:
        return self.expected or f"a value matching {self.pattern}"

    def allows(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of numbers (a set an AWS API accepts, such as log retentions);
    ``expected`` names the set in the error."""

    values: tuple
    expected: str = "one of"

    def describe(self) -> str:
        return f"{self.expected}{':' if self.expected != 'one of' else ''} " + ", ".join(map(str, self.values))

    def allows(self, value: Any) -> bool:
        return value in self.values


Constraint = Between | Matches | OneOf


@dataclass(frozen=True)
class Problem:
    """One setting that is not allowed: its path (field names and list indexes), value, rule."""

    path: tuple
    value: Any
    allowed: str

    def key(self, style: typing.Callable[[str], str] = lambda s: s) -> str:
        return dotted(self.path, style)


def dotted(path: tuple, style: typing.Callable[[str], str] = lambda s: s) -> str:
    """A path of field names, mapping keys and list indexes as a key: ``app_calls.backend[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (("." if out else "") + style(part))
    return out


def camel(name: str) -> str:
    """The stack-file spelling of a field name: ``backup_retention_days`` -> ``backupRetentionDays``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class CamelCase:
    """A Settings dataclass read from and written as the stack file's camelCase keys (a stack
    output, the pack's config): unknown keys and nulls are ignored on the way in."""

    @classmethod
    def from_camel(cls, values: dict) -> Any:
        names = {camel(f.name): f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{names[k]: v for k, v in values.items() if k in names and v is not None})

    def as_camel(self) -> dict:
        return {camel(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]


def constraints(hint: Any) -> tuple[Any, list[Constraint]]:
    """The type inside ``Annotated[...]`` (``Optional`` kept) and its constraints."""
    found: list[Constraint] = []
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        found = [e for e in extras if isinstance(e, (Between, Matches, OneOf))]
        hint = base
    return hint, found


def _field_problems(path: tuple, value: Any, hint: Any, recursive: bool) -> Iterator[Problem]:
    base, rules = constraints(hint)
    if value is None:
        return
    for rule in rules:
        if not rule.allows(value):
            yield Problem(path, value, rule.describe())
            return
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if recursive:
            yield from problems(value, path, recursive)
    elif isinstance(value, (list, tuple)):
        inner = _element_hint(base)
        for i, item in enumerate(value):
            yield from _field_problems(path + (i,), item, inner, recursive)
    elif isinstance(value, dict):
        inner = _element_hint(base, mapping=True)
        for k, item in value.items():
            yield from _field_problems(path + (str(k),), item, inner, recursive)


def _element_hint(hint: Any, mapping: bool = False) -> Any:
    """The element type of ``list[X]`` / ``Sequence[X]`` (or the value type of ``dict[K, X]``),
    looking through ``Optional``."""
    hint, _ = constraints(hint)
    for candidate in (hint, *typing.get_args(hint)):
        origin, args = typing.get_origin(candidate), typing.get_args(candidate)
        if not mapping and origin in (list, tuple, collections.abc.Sequence) and args:
            return args[0]
        if mapping and origin in (dict, collections.abc.Mapping) and len(args) == 2:
            return args[1]
    return Any


def hints_of(cls: type) -> dict[str, Any]:
    """A dataclass's field types with their ``Annotated`` metadata. ``pulumi.Input[T]`` refers
    to ``Output`` by a forward reference; Args classes resolve it through ``_LOCALNS``."""
    return typing.get_type_hints(cls, localns=_LOCALNS, include_extras=True)


def problems(settings: Any, path: tuple = (), recursive: bool = True) -> list[Problem]:
    """Every bound a settings dataclass breaks, then what its ``checks()`` reports.

    ``recursive=False`` leaves nested settings dataclasses to the caller (the config loader
    checks each nested block where it reads it); list and mapping items are always checked.
    """
    found: list[Problem] = []
    hints = hints_of(type(settings))
    for f in dataclasses.fields(settings):
        found += _field_problems(path + (f.name,), getattr(settings, f.name), hints[f.name], recursive)
    if found:
        return found  # cross-field rules assume each field is in range
    checks = getattr(settings, "checks", None)
    for name, value, allowed in (checks() if checks else ()):
        found.append(Problem(path + tuple(_split(name)), value, allowed))
    return found


def _split(name: str) -> list:
    """``policies[0].value`` -> ["policies", 0, "value"]."""
    out: list = []
    for part in name.replace("]", "").split("."):
        head, *indexes = part.split("[")
        out.append(head)
        out += [int(i) for i in indexes]
    return out


def field_docs(cls: type) -> dict[str, str]:
    """Each field's ``#:`` documentation, read from the class source (and its bases')."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                comment: list[str] = []
                row = node.lineno - 2
                while row >= 0 and lines[row].strip().startswith("#:"):
                    comment.insert(0, lines[row].strip()[2:].strip())
                    row -= 1
                if comment:
                    docs[node.target.id] = " ".join(comment)
    return docs
