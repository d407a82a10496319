"""Reusable Pulumi components, one per file, each named after what it builds."""

import pulumi


class ComponentArgsError(pulumi.RunError, ValueError):
    """Invalid component arguments; printed by the CLI as one line."""
