"""The stack's budget, last: its amount is the cost model's maximum over everything declared before it."""

from __future__ import annotations

from components import args_for
from components.cost_budget import CostBudget, CostBudgetArgs
from components.declared import Recorder
from infra.stack import StackConfig


def build_budget(cfg: StackConfig, declared: Recorder) -> CostBudget | None:
    """The AWS Budget (maximum-scale estimate x (1 + margin)), its encrypted topic, the anomaly alerts."""
    if not cfg.budget.enabled:
        return None
    settings = cfg.budget
    return CostBudget("budget", args_for(
        settings, CostBudgetArgs, name_prefix=cfg.name_prefix, declared=declared, region=cfg.region,
        cost=cfg.cost, node_pod_share=cfg.scaling.node_pod_share,
        cost_allocation_tag_value=cfg.default_tags.get(settings.cost_allocation_tag, "")))
