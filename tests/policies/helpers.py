"""Run one rule's validate function on crafted resources, through pulumi_policy's own arg types."""

from __future__ import annotations

from cofounder_policies import ALL
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

POLICIES = {p.name: p for p in ALL}


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def violations(policy: str, type_: str, props: dict, config: dict | None = None) -> list[str]:
    """Messages ``policy`` reports for one resource of ``type_`` with inputs ``props``."""
    found = []
    args = ResourceValidationArgs(type_, props, f"urn:pulumi:test::cofounder::{type_}::x", "x", _opts(),
                                  None, config)
    POLICIES[policy].validate(args, lambda message, urn=None: found.append(message))
    return found


def resource(type_: str, name: str, props: dict, property_dependencies: dict | None = None) -> PolicyResource:
    return PolicyResource(type_, props, f"urn:pulumi:test::cofounder::{type_}::{name}", name, _opts(),
                          None, None, [], property_dependencies or {})


def stack_violations(policy: str, resources: list[PolicyResource], config: dict | None = None) -> list[tuple]:
    """(message, urn) pairs ``policy`` reports for a crafted stack."""
    found = []
    POLICIES[policy].validate(StackValidationArgs(resources, config),
                              lambda message, urn=None: found.append((message, urn)))
    return found
