"""Derived figures shown by the preview, stored in snapshots and compared by the review diff.

A report is a function ``Program -> dict | None`` registered in ``REPORTS`` under a stable name;
it returns ``None`` when the stack declares nothing it applies to. Each dict has a ``title``,
``rows`` (a list of flat dicts, shown as a table) and optionally ``notes`` (lines of text) and
``ok`` (False when the stack misses a target the report checks).
"""

from __future__ import annotations

from typing import Callable

from toolkit.harness import Program

Report = dict
REPORTS: dict[str, Callable[[Program], Report | None]] = {}


def report(name: str):
    """Register a report function under ``name``."""
    def wrap(fn: Callable[[Program], Report | None]):
        REPORTS[name] = fn
        return fn
    return wrap


def build_reports(program: Program) -> dict[str, Report]:
    out = {}
    for name, fn in sorted(REPORTS.items()):
        result = fn(program)
        if result is not None:
            out[name] = result
    return out


# Report modules register themselves on import (kept last: they import ``report`` from here).
from toolkit import app_reports  # noqa: E402,F401
from toolkit import cluster_reports  # noqa: E402,F401
from toolkit import connections_report  # noqa: E402,F401
from toolkit import edge_reports  # noqa: E402,F401
