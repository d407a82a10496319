"""PromQL helpers for the tests: parse with promql-parser, collect the metric names an expression reads."""

from __future__ import annotations

import re

import promql_parser

# Grafana variables that are not valid PromQL on their own; dashboards use only these.
_GRAFANA_RANGE_VARIABLES = re.compile(r"\$__(rate_interval|interval|range)")


def parse(expr: str):
    """Parse an expression (raises ValueError on a syntax error)."""
    return promql_parser.parse(_GRAFANA_RANGE_VARIABLES.sub("5m", expr))


def metric_names(expr: str) -> set[str]:
    """Names of every series selector in ``expr`` (by name or by ``__name__`` matcher)."""
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                found = re.search(r'__name__="([^"]+)"', str(node))
                assert found, f"selector without a metric name: {node}"
                names.add(found.group(1))

    promql_parser.walk(parse(expr), visit)
    return names


def label_values_metric(query: str) -> str | None:
    """The metric of a Grafana ``label_values(metric, label)`` variable query."""
    found = re.fullmatch(r"label_values\((\w+)\s*,\s*\w+\)", query.strip())
    return found.group(1) if found else None
