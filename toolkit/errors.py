"""How the offline tools end on a user error: the message alone, as the Pulumi CLI prints a RunError."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pulumi

from toolkit.stackfile import StackFileError


def main_guard(fn: Callable[[], int]) -> None:
    """Run a command; a RunError or a bad stack file ends it with its message and exit code 2."""
    try:
        code = fn()
    except (pulumi.RunError, StackFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    finally:
        # The SDK leaves its event loop open; closing it here keeps interpreter shutdown quiet.
        loop = asyncio.get_event_loop_policy().get_event_loop()
        if not loop.is_closed():
            loop.close()
    sys.exit(code or 0)
