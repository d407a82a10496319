"""``build/preview/<stack>.burst.svg``: demand against Ready capacity over the simulated burst.

Drawn with matplotlib (pinned in requirements.txt) on its Agg backend, no display needed. The SVG
is byte-stable for the same burst: a fixed ``svg.hashsalt`` (element ids), no ``Date`` in the
metadata, text as paths in the bundled DejaVu font, so the file only changes when the figures do.
Its description names a digest of the burst document and of this module, so ``write`` skips
the drawing (and loading matplotlib, about a second) when the chart on disk is already that one.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

STYLE: Any = {"svg.hashsalt": "cofounder-burst", "svg.fonttype": "path", "font.family": "DejaVu Sans",
         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}


def svg(stack: str, burst: dict) -> str:
    """The chart of one ``.burst.json`` document: per app, demand (dashed) and Ready pods (solid),
    the goal as a vertical line, and the node count per group on a second axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = burst.get("series") or []
    apps = sorted({app for point in series for app in point["apps"]})
    groups = sorted({g for point in series for g in point["nodes"]})
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=100)
        t = [p["t"] for p in series]
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, app in enumerate(apps):
            color = colors[i % len(colors)]
            ax.plot(t, [p["apps"][app]["demand"] for p in series], linestyle="--", linewidth=1, color=color,
                    label=f"{app}: replicas the peak needs")
            spread = (burst.get("distribution") or {}).get(app) or {}

            def s(v):
                return "never" if v is None else f"{v} s"
            ax.step(t, [p["apps"][app]["ready"] for p in series], where="post", linewidth=1.8, color=color,
                    label=f"{app}: Ready, worst case (p50 {s(spread.get('p50'))}, p95 {s(spread.get('p95'))}, "
                          f"worst {s(spread.get('worst'))})")
        goal = burst.get("targetSeconds")
        if goal is not None:
            ax.axvline(goal, color="black", linewidth=1, linestyle=":")
            ax.annotate(f"goal (p95) {goal} s", (goal, ax.get_ylim()[1]), xytext=(3, -12), textcoords="offset points")
        ax.set_xlabel("seconds after the load step")
        ax.set_ylabel("pods")
        nodes_ax = ax.twinx()
        for i, g in enumerate(groups):
            nodes_ax.step(t, [p["nodes"][g] for p in series], where="post", linewidth=0.9, color="grey",
                          linestyle=("-", "-.", ":")[i % 3], alpha=0.8, label=f"nodes: {g}")
        nodes_ax.set_ylabel("nodes")
        nodes_ax.set_ylim(bottom=0)
        ax.set_ylim(bottom=0)
        handles = ax.get_legend_handles_labels()[0] + nodes_ax.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + nodes_ax.get_legend_handles_labels()[1]
        ax.legend(handles, labels, loc="lower right", fontsize=7, frameon=False)
        worst = burst.get("worstApp")
        ax.set_title(f"{stack}: 5x burst, demand against Ready pods, every timing at its high end "
                     f"(slowest app at p95: {worst})")
        fig.tight_layout()
        out = io.StringIO()
        fig.savefig(out, format="svg", metadata={"Date": None, "Description": digest(stack, burst)})
        plt.close(fig)
    return out.getvalue()


def digest(stack: str, burst: dict) -> str:
    """What the chart is drawn from: the stack, the burst document and this module's code."""
    text = json.dumps([stack, burst], sort_keys=True) + Path(__file__).read_text()
    return "burst-data " + hashlib.sha256(text.encode()).hexdigest()[:16]


def write(path: Path, stack: str, burst: dict) -> bool:
    """Draw the chart to ``path`` unless the file there is already this burst's; True if drawn."""
    if path.is_file() and digest(stack, burst) in path.read_text():
        return False
    path.write_text(svg(stack, burst))
    return True
