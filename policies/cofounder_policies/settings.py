"""The stack settings that rules take as their config, with the schema their Settings define.

A rule that checks a stack setting (the replica cap, the scaling targets, the reserved database
connections, the queues' attempts) takes the stack's value as its config: ``make docs`` writes
the value into ``policies/config/<stack>.json`` (toolkit/docs.py ``DERIVED``). Its type, bounds,
default and description are those of the setting's field in its Settings class, defined once
beside the component; ``make docs`` writes them into ``settings.json`` here, because the pack
cannot import the components (they load the Pulumi providers) and must not restate them.
``tests/test_docs.py`` fails when that file is stale.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

#: Every stack key (``<section>.<key>``, below ``cofounder:``) some rule takes as config.
USED = (
    "edge.allowDefaultCertificate",
    "loadBalancer.allowHttpOrigin",
    "postgres.reservedConnections",
    "queues.maxAgentRunSeconds",
    "queues.maxReceiveCount",
    "scaling.baselineReplicas",
    "scaling.goalApps",
    "scaling.maxReplicasPerApp",
    "scaling.nodePodShare",
    "scaling.peakMultiplier",
    "scaling.readyGoalSeconds",
    "scaling.requireHeadroomCoverage",
    "scaling.scaleUpWithinSeconds",
    "scaling.timeToScaleGoalSeconds",
)

SCHEMA_FILE = Path(__file__).with_name("settings.json")


def _schemas() -> dict[str, dict]:
    try:
        return json.loads(SCHEMA_FILE.read_text())
    except FileNotFoundError:
        return {}


_SCHEMAS = _schemas()


def setting(key: str) -> dict:
    """The JSON schema of the rule config that carries ``cofounder:<key>``."""
    if key not in USED:
        raise KeyError(f"cofounder:{key} is not in cofounder_policies.settings.USED: add it, then run make docs")
    if key not in _SCHEMAS:
        raise KeyError(f"{SCHEMA_FILE.name} has no cofounder:{key}: run make docs")
    return copy.deepcopy(_SCHEMAS[key])
