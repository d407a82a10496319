"""The stack configuration reader: the only place in the project that reads ``pulumi.Config``.

``load()`` reads each ``cofounder:<section>`` block of ``stacks/Pulumi.<stack>.yaml`` straight into
the Settings class ``infra/stack.py`` lists for it, then runs the cross-section rules of
``infra/checks.py``. Every problem (wrong type, unknown or misspelt key, value out of range, a
component's own rule, a rule across sections) becomes one ``ConfigError`` naming the stack
file, the key, the value and what is allowed. ``ConfigError`` subclasses ``pulumi.RunError``, so
the CLI prints the message alone, without a traceback.

Adding a setting: add a field to the component's ``<X>Settings`` (snake_case; the YAML key is its
camelCase form) with a default, a ``#:`` doc line and its bounds (``Annotated[...]``) or a rule
in the class's ``checks()``; run ``make docs``. Nothing here changes.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import pulumi

from capacity.numbers import plain
from components import Between, camel, constraints, problems
from infra import checks
from infra.stack import PROJECT, SCALARS, SECTIONS, StackConfig

_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")


class ConfigError(pulumi.RunError):
    """A stack configuration value is missing or not allowed."""


#: Secrets the program generates itself (pulumi-random, kept as Pulumi secrets): a key of this
#: name in a stack file is a secret someone typed in, and the advice is to remove it. Keys are
#: compared lowercased without separators, at any depth (``cofounder:dbPassword``,
#: ``cofounder:postgres.password``).
GENERATED_SECRETS = {
    "password": "the database password (components/postgres.py, RandomPassword)",
    "dbpassword": "the database password (components/postgres.py, RandomPassword)",
    "databasepassword": "the database password (components/postgres.py, RandomPassword)",
    "masterpassword": "the database password (components/postgres.py, RandomPassword)",
    "authtoken": "the Redis auth token (components/redis.py, RandomPassword)",
    "redispassword": "the Redis auth token (components/redis.py, RandomPassword)",
    "redisauthtoken": "the Redis auth token (components/redis.py, RandomPassword)",
    "grafanaadminpassword": "the Grafana admin password (components/monitoring_stack.py, RandomPassword)",
    "grafanapassword": "the Grafana admin password (components/monitoring_stack.py, RandomPassword)",
    "statspassword": "PgBouncer's stats password (components/pgbouncer.py, RandomPassword)",
}
#: Names that read as a secret though the program does not generate them.
_SECRET_NAME = re.compile(r"(password|passwd|secret|token|apikey|privatekey|accesskey)$")


def _num(value: float | None) -> str | None:
    """A bound as a reader writes it (``capacity.numbers.plain``), or None."""
    return None if value is None else plain(value)


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return f"a mapping of settings ({hint.__name__})"
    return getattr(hint, "__name__", str(hint)).replace("list", "a list")


class Reader:
    """Turns raw YAML values into typed settings, failing with the stack file and the key."""

    def __init__(self, stack_file: str):
        self.stack_file = stack_file

    def fail(self, key: str, value: Any, allowed: str) -> typing.NoReturn:
        shown = json.dumps(value) if not isinstance(value, str) else repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise ConfigError(f"{self.stack_file}: {key} = {shown} is not allowed: expected {allowed}")

    def missing(self, key: str, allowed: str) -> typing.NoReturn:
        raise ConfigError(f"{self.stack_file}: {key} is missing: expected {allowed}")

    def unknown(self, key: str, name: str, known: list[str]) -> typing.NoReturn:
        flat = re.sub(r"[^a-z0-9]", "", name.lower())
        if flat in GENERATED_SECRETS:
            raise ConfigError(f"{self.stack_file}: {key} is a secret the program generates: "
                              f"{GENERATED_SECRETS[flat]}, kept as a Pulumi secret; remove the key from the "
                              "stack file (and, if it held a real value, rotate it: it is in git history)")
        if _SECRET_NAME.search(flat):
            raise ConfigError(f"{self.stack_file}: {key} is not a known setting and reads as a secret: "
                              "never put one in a stack file in plain text; a secret the program reads is "
                              f"declared as a setting and set with `pulumi config set --secret {key} <value>`, "
                              "which stores only its ciphertext")
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"{self.stack_file}: {key} is not a known setting: {hint}"
                          f"allowed keys are {', '.join(sorted(known))}")

    def value(self, key: str, raw: Any, hint: Any, bounds: Between | None = None) -> Any:
        """``raw`` as ``hint`` (bounds only sharpen a type error; ``problems`` checks them)."""
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            inner = [a for a in args if a is not type(None)]
            return None if raw is None else self.value(key, raw, inner[0], bounds)
        if origin is Literal:
            if raw not in args:
                self.fail(key, raw, "one of " + ", ".join(map(str, args)))
            return raw
        if dataclasses.is_dataclass(hint):
            return self.section(key, raw, typing.cast(type, hint))
        if origin is list:
            if not isinstance(raw, list):
                self.fail(key, raw, "a list")
            return [self.value(f"{key}[{i}]", item, args[0]) for i, item in enumerate(raw)]
        if origin is dict:
            if not isinstance(raw, dict):
                self.fail(key, raw, "a mapping")
            return {str(k): self.value(f"{key}.{k}", v, args[1]) for k, v in raw.items()}
        if hint is bool and not isinstance(raw, bool):
            self.fail(key, raw, "true or false")
        if hint is int:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or int(raw) != raw:
                self.fail(key, raw, "a whole number" + _range(bounds))
            return int(raw)
        if hint is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.fail(key, raw, "a number" + _range(bounds))
            return float(raw)
        if hint is str and not isinstance(raw, str):
            self.fail(key, raw, "a string")
        return raw

    def section(self, key: str, raw: Any, cls: type) -> Any:
        """A mapping read into ``cls``: every key known, every required key there, every rule kept."""
        if not isinstance(raw, dict):
            self.fail(key, raw, f"a mapping of settings ({cls.__name__})")
        hints = typing.get_type_hints(cls)
        annotated = typing.get_type_hints(cls, include_extras=True)
        fields = {camel(f.name): f for f in dataclasses.fields(cls) if f.init}
        for name in raw:
            if name not in fields:
                self.unknown(f"{key}.{name}", name, list(fields))
        values = {}
        for spelled, f in fields.items():
            sub = f"{key}.{spelled}"
            if spelled in raw:
                bounds = next((c for c in constraints(annotated[f.name])[1] if isinstance(c, Between)), None)
                values[f.name] = self.value(sub, raw[spelled], hints[f.name], bounds)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.missing(sub, _describe(hints[f.name]))
        obj = cls(**values)
        for problem in problems(obj, recursive=False):
            self.fail(f"{key}.{problem.key(camel)}", problem.value, problem.allowed)
        return obj


def _range(bounds: Between | None) -> str:
    if bounds is None:
        return ""
    lo, hi = _num(bounds.minimum), _num(bounds.maximum)
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    return f" of at least {lo}" if lo is not None else (f" of at most {hi}" if hi is not None else "")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def parse(stack: str, config: Mapping[str, str], stack_file: str | None = None) -> StackConfig:
    """A stack's configuration as the CLI hands it over (``<namespace>:<key>`` -> string, YAML
    mappings as JSON) read into ``StackConfig``, or ``ConfigError``. No Pulumi runtime needed."""
    reader = Reader(stack_file or f"stacks/Pulumi.{stack}.yaml")
    known = list(SECTIONS)
    for full in sorted(config):
        namespace, _, name = full.partition(":")
        if namespace == PROJECT and name not in known:
            reader.unknown(full, name, known)

    region = config.get("aws:region")
    if region is None:
        reader.missing("aws:region", "an AWS region such as us-east-1")
    if not _REGION.match(region):
        reader.fail("aws:region", region, "an AWS region name such as us-east-1")

    values: dict[str, Any] = {}
    for name, hint in SECTIONS.items():
        key, raw = f"{PROJECT}:{name}", config.get(f"{PROJECT}:{name}")
        if name in SCALARS:
            if raw is None:
                reader.missing(key, _describe(hint))
            values[_snake(name)] = reader.value(key, raw, hint)
            continue
        try:
            parsed = json.loads(raw) if raw is not None else {}
        except ValueError:  # the engine hands mappings as JSON; a bad one is a user error
            reader.fail(key, raw, "a YAML mapping")
        values[_snake(name)] = reader.value(key, {} if parsed is None else parsed, hint)

    result = StackConfig(stack=stack, stack_file=reader.stack_file, region=region,
                         default_tags=_default_tags(reader, config.get("aws:defaultTags")), **values)
    for check in checks.CHECKS:
        for problem in check(result):
            if isinstance(problem, str):
                raise ConfigError(f"{reader.stack_file}: {problem}")
            key, value, allowed = problem
            reader.fail(f"{PROJECT}:{key}", value, allowed)
    return result


def _default_tags(reader: Reader, raw: str | None) -> dict[str, str]:
    """``aws:defaultTags``' ``tags``, the AWS provider's tags on every resource (empty when unset)."""
    try:
        parsed = json.loads(raw) if raw is not None else {}
    except ValueError:
        reader.fail("aws:defaultTags", raw, "a YAML mapping with a tags mapping")
    tags = (parsed or {}).get("tags") if isinstance(parsed, dict) else None
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        reader.fail("aws:defaultTags.tags", tags, "a mapping of tag keys to string values")
    return {str(k): v for k, v in tags.items()}


def _runtime_config() -> dict[str, str]:
    """Every config key the engine handed the program, with its value."""
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.config.get_config_env())
    return {key: value for key in keys if (value := pulumi.runtime.config.get_config(key)) is not None}


def load() -> StackConfig:
    """Read and validate the current stack's configuration, or raise ``ConfigError``."""
    return parse(pulumi.get_stack(), _runtime_config())
