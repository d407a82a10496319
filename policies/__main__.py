"""The CoFounder policy pack: assembles the rules from cofounder_policies and serves them.

The Pulumi CLI runs this file with this folder as the working directory (``--policy-pack
policies``); ``PolicyPack`` prints its gRPC port and serves the Analyzer protocol until stopped.
"""

from cofounder_policies import ALL
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="cofounder-policies",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=ALL,
)
