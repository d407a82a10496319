"""Derived figures shown by the preview, stored in snapshots and compared by the review diff.

A report is a function ``Program -> dict | None`` listed in ``REPORTS`` under a stable name; it
returns ``None`` when the stack declares nothing it applies to. Each dict has a ``title``,
``rows`` (a list of flat dicts, shown as a table), ``key`` (the columns that name a row, unique
within the report: the review diff pairs BASE and working-tree rows on them) and optionally
``notes`` (lines of text) and ``ok`` (False when the stack misses a target the report checks). The report modules know
nothing of this one: imports run one way, from here to them.
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit import app_reports, cluster_reports, connections_report, cost_reports, edge_reports
from toolkit.harness import Program

Report = dict
REPORTS: dict[str, Callable[[Program], Report | None]] = {
    "agent-queues": app_reports.agent_queues_report,
    "burst": cost_reports.burst_report,
    "connections": connections_report.connection_budget,
    "cost": cost_reports.cost_report,
    "headroom": cluster_reports.headroom,
    "request-path": edge_reports.request_path,
    "time-to-scale": app_reports.time_to_scale_report,
}


def build_reports(program: Program) -> dict[str, Report]:
    out = {}
    for name, fn in sorted(REPORTS.items()):
        result = fn(program)
        if result is not None:
            out[name] = result
    return out
