"""Reports on the EKS platform: the pre-warmed headroom the placeholder pods hold for a burst."""

from __future__ import annotations

from collections.abc import Hashable

from capacity.headroom import HeadroomFigures, placeholders
from toolkit.harness import Program, reveal

PRIORITY_CLASS = "kubernetes:scheduling.k8s.io/v1:PriorityClass"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RELEASE = "kubernetes:helm.sh/v3:Release"


def headroom_figures(program: Program) -> list[tuple[Hashable, HeadroomFigures]]:
    """Placeholder Deployments (pods at a negative priority) and the capacity each holds."""
    return placeholders([reveal(pc.inputs) for pc in program.of_type(PRIORITY_CLASS)],
                        [(dep.name, reveal(dep.inputs)) for dep in program.of_type(DEPLOYMENT)])


def headroom(program: Program) -> dict | None:
    found = headroom_figures(program)
    if not found:
        return None
    rows = [{"deployment": name, "replicas": f.replicas, "cpu/replica": f"{f.cpu_millicores}m",
             "memory/replica": f"{f.memory_mib}Mi", "total cpu": f"{f.total_cpu_millicores}m",
             "total memory": f"{f.total_memory_mib}Mi"} for name, f in found]
    scan = next((reveal(r.inputs).get("values", {}).get("extraArgs", {}).get("scan-interval")
                 for r in program.of_type(RELEASE) if r.inputs.get("chart") == "cluster-autoscaler"), None)
    notes = [
        "A burst up to the totals schedules at once: real pods preempt the placeholders on running nodes.",
        "The evicted placeholders go Pending and make the Cluster Autoscaler add a node, restoring the headroom.",
        "Only the part of a burst beyond the headroom waits for a node: "
        f"one scan interval ({scan or 'n/a'}) plus EC2 boot and node join (typically 60-120 s).",
        "Pods absorbed = replicas x min(cpu/replica // pod cpu, memory/replica // pod memory).",
    ]
    return {"title": "Pre-warmed headroom (placeholder pods)", "key": ["deployment"], "rows": rows, "notes": notes,
            "ok": all(f.replicas > 0 for _, f in found)}
