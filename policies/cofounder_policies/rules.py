"""The two shapes every rule in this pack takes, and small readers for resource properties.

``resource_rule`` wraps a check ``(props, settings) -> messages`` into a
``ResourceValidationPolicy`` that only looks at the listed resource types; ``stack_rule`` wraps
``(resources, settings) -> (message, urn)`` pairs into a ``StackValidationPolicy``. ``settings``
is the policy's config: the defaults declared in its schema, overridden by the stack's policy
config file (``policies/config/<stack>.json``), so a rule is usable without any config.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

ResourceCheck = Callable[[Mapping[str, Any], Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[Any], Mapping[str, Any]], Iterable[tuple[str, str | None]]]


def _schema(config: Mapping[str, dict] | None) -> tuple[PolicyConfigSchema | None, dict]:
    if not config:
        return None, {}
    defaults = {key: spec["default"] for key, spec in config.items() if "default" in spec}
    return PolicyConfigSchema(properties=dict(config)), defaults


def resource_rule(name: str, description: str, level: EnforcementLevel, types: Sequence[str],
                  check: ResourceCheck, config: Mapping[str, dict] | None = None) -> ResourceValidationPolicy:
    """A rule on each resource of ``types``; every message ``check`` yields is one violation."""
    schema, defaults = _schema(config)
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report_violation) -> None:
        if args.resource_type not in wanted:
            return
        settings = {**defaults, **args.get_config()}
        for message in check(args.props, settings):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=level, config_schema=schema)


def stack_rule(name: str, description: str, level: EnforcementLevel, check: StackCheck,
               config: Mapping[str, dict] | None = None) -> StackValidationPolicy:
    """A rule on the whole stack; ``check`` yields ``(message, urn or None)`` per violation."""
    schema, defaults = _schema(config)

    def validate(args: StackValidationArgs, report_violation) -> None:
        settings = {**defaults, **args.get_config()}
        for message, urn in check(args.resources, settings):
            report_violation(message, urn)

    return StackValidationPolicy(name=name, description=description, validate=validate,
                                 enforcement_level=level, config_schema=schema)


def get(value: Any, path: str, default: Any = None) -> Any:
    """``a.b.0.c`` into nested mappings and sequences; ``default`` where the path is absent."""
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif _is_list(value) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return default
        if value is None:
            return default
    return value


def is_set(value: Any, path: str) -> bool:
    """Whether ``path`` holds a value. One that is unknown during a preview (the ARN of a key
    created in the same update) counts: the engine fills it in."""
    try:
        return get(value, path) not in (None, "")
    except UnknownValueError:
        return True


def known(value: Any, path: str) -> Any:
    """``get``, with a value unknown during a preview read as None."""
    try:
        return get(value, path)
    except UnknownValueError:
        return None


def items(value: Any) -> list:
    """A list property as a list (absent or null is empty)."""
    return list(value) if _is_list(value) else []


def _is_list(value: Any) -> bool:
    # The pack hands lists over as read-only Sequence proxies, not lists.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def plain(value: Any) -> Any:
    """A property as plain dicts and lists for the pure ``capacity`` functions: integral numbers
    as ints (the wire has only doubles), values unknown during a preview as None."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: plain(_known(value, k)) for k in value}
    if _is_list(value):
        return [plain(_known(value, i)) for i in range(len(value))]
    return value


def _known(container: Any, key: Any) -> Any:
    try:
        return container[key]
    except UnknownValueError:
        return None


def of_type(resources: Sequence[Any], *types: str) -> list:
    return [r for r in resources if r.resource_type in types]
