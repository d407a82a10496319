"""The shared mock harness for every test.

All tests run code under the Pulumi SDK's own mock runtime through ``toolkit.harness`` (the
same machinery the offline preview and the policy runner use):
- ``stack_program(name)``: the whole program for ``stacks/Pulumi.<name>.yaml``, cached per session;
- ``run_program(fn, config=...)``: any function (a component under test) as a program;
- ``run_stack_with(stack, overrides)``: the whole program with some config keys replaced.
The harness resets the SDK's global settings at the start of every run, so runs are isolated.
"""

from __future__ import annotations

import functools

import pytest

from toolkit import harness
from toolkit.stackfile import stack_names

STACKS = stack_names()


@functools.lru_cache(maxsize=None)
def _cached_stack(stack: str) -> harness.Program:
    return harness.run_stack(stack)


@pytest.fixture
def stack_program():
    return _cached_stack


@pytest.fixture
def run_program():
    return harness.run


@pytest.fixture
def run_stack_with():
    return harness.run_stack


# --- Kubernetes objects against the official OpenAPI schema --------------------------------

K8S_SCHEMA_VERSION = "1.34.0"  # the Kubernetes minor the stacks pin (cofounder:cluster.kubernetesVersion)


def manifest(resource: harness.Resource) -> dict:
    """The Kubernetes object a captured ``kubernetes:<group>/<version>:<Kind>`` resource declares."""
    _, group_version, kind = resource.type.split(":")
    group, version = group_version.split("/")
    api_version = version if group == "core" else f"{group}/{version}"
    body = harness.reveal({k: v for k, v in resource.inputs.items() if k not in ("apiVersion", "kind")})
    return {"apiVersion": api_version, "kind": kind, **body}


@pytest.fixture
def validate_k8s():
    """Validate a captured Kubernetes resource (or a manifest dict) strictly; raise on any error."""
    import kubernetes_validate

    def check(resource, version: str = K8S_SCHEMA_VERSION) -> dict:
        doc = manifest(resource) if isinstance(resource, harness.Resource) else resource
        kubernetes_validate.validate(doc, version, strict=True)
        return doc
    return check


# --- Secrets only inside secret wrappers ---------------------------------------------------


def _plain_strings(value, path: str):
    """Every string outside a secret wrapper, with its path."""
    if harness.is_secret(value):
        return
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _plain_strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _plain_strings(v, f"{path}[{i}]")


def secret_leaks(program: harness.Program) -> list[str]:
    """Where a generated secret (a RandomPassword result, or anything embedding one, such as a URL)
    appears in a resource input or a stack output outside a secret wrapper."""
    secrets = {r.outputs["result"] for r in program.of_type("random:index/randomPassword:RandomPassword")}
    leaks = []
    for r in program.resources:
        for path, text in _plain_strings(r.inputs, r.urn):
            leaks += [path for s in secrets if s in text]
    for path, text in _plain_strings(program.outputs, "outputs"):
        leaks += [path for s in secrets if s in text]
    return leaks
