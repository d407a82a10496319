"""The CoFounder policy rules, one module per resource family.

Each family module exposes ``POLICIES`` (its rules, in the order they are reported). Nothing
here starts the pack: ``policies/__main__.py`` assembles ``ALL`` into a ``PolicyPack``, which
serves forever, so the rules stay importable for tests.
"""

from cofounder_policies import (
    budget,
    cache,
    capacity,
    cluster,
    database,
    edge,
    kms,
    load_balancer,
    logs,
    network,
    network_policy,
    queue,
    registry,
    secrets,
    workloads,
)

FAMILIES = (cluster, database, cache, queue, edge, load_balancer, network, network_policy, logs, kms,
            secrets, registry, workloads, capacity, budget)
ALL = [policy for family in FAMILIES for policy in family.POLICIES]
