"""The shared mock harness for every test.

All tests run code under the Pulumi SDK's own mock runtime through ``toolkit.harness`` (the
same machinery the offline preview and the policy runner use):
- ``stack_program(name)``: the whole program for ``stacks/Pulumi.<name>.yaml``, cached per session;
- ``stack_policies(name)``: the policy pack's results for that program, cached per session;
- ``run_program(fn, config=...)``: any function (a component under test) as a program;
- ``run_stack_with(stack, overrides)``: the whole program with some config keys replaced.
The harness resets the SDK's global settings at the start of every run, so runs are isolated.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pickle
from pathlib import Path

import pytest

from toolkit import harness
from toolkit.stackfile import stack_names

STACKS = stack_names()
# The burst SVG costs matplotlib's import and a drawing per preview; only the test of the chart
# itself draws (tests/test_cost_reports.py lifts this), every other preview skips it.
os.environ.setdefault("COFOUNDER_BURST_CHART", "off")
# Credentials rotate by period (infra/data.py rotation_date): every run of the suite, and every
# review build it starts, is for the same day, so the declared state does not move with the clock.
os.environ.setdefault("COFOUNDER_ROTATION_DATE", "2026-12-01")


#: Under pytest-xdist, where the workers share what they compute once (set by ``_share_across_workers``).
_SHARED: list[Path] = []


def _once_per_session(name: str, compute):
    """``compute()``, once per session: under xdist the first worker to need it pickles the result
    into the session's shared temporary folder while holding a lock on that name, and the others
    wait for it and load it, so no two workers spend the same minute on one stack."""
    if not _SHARED:
        return compute()
    path = _SHARED[0] / f"{name}.pickle"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():
            return pickle.loads(path.read_bytes())
        result = compute()
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result))
        partial.replace(path)  # a worker that dies mid-write leaves no half file behind
        return result


@functools.cache
def _cached_stack(stack: str) -> harness.Program:
    """The program of one stack file, run once per session (and shared by the xdist workers)."""
    return _once_per_session(f"program-{stack}", lambda: harness.run_stack(stack))


@pytest.fixture(scope="session", autouse=True)
def _share_across_workers(tmp_path_factory):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "shared"
        shared.mkdir(exist_ok=True)
        _SHARED[:] = [shared]


@pytest.fixture
def stack_program():
    return _cached_stack


@functools.cache
def _cached_policies(stack: str) -> tuple[dict, ...]:
    from toolkit import policy_runner
    return _once_per_session(f"policies-{stack}",
                             lambda: tuple(policy_runner.run_policies(stack, _cached_stack(stack))))


@pytest.fixture
def stack_policies():
    """``stack_policies(name)``: the pack's results (over gRPC) for the unmodified stack, once per session."""
    return lambda stack: list(_cached_policies(stack))


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


# --- Custom resources against the CRD schema of the controller version the program pins -----

SCHEMAS = Path(__file__).parent / "schemas"


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD vendored in tests/schemas/."""
    import yaml

    found = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                found[key] = version["schema"]["openAPIV3Schema"]
    return found


def _unknown_fields(value, schema: dict, path: str) -> list[str]:
    """Fields the structural schema does not declare: the API server would silently prune them."""
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    properties = schema.get("properties")
    if properties is None:
        return []
    out = []
    for key, item in value.items():
        if key not in properties:
            out.append(f"{path}.{key}")
        elif isinstance(item, list) and "items" in properties[key]:
            for i, element in enumerate(item):
                out += _unknown_fields(element, properties[key]["items"], f"{path}.{key}[{i}]")
        else:
            out += _unknown_fields(item, properties[key], f"{path}.{key}")
    return out


@pytest.fixture
def validate_crd():
    """Validate a captured custom resource against its vendored CRD: types, enums, required
    fields (jsonschema) and no field the schema lacks. Returns the object."""
    import jsonschema

    def check(resource: harness.Resource) -> dict:
        body = harness.reveal(resource.inputs)
        key = (body["apiVersion"], body["kind"])
        schema = _crd_schemas().get(key)
        assert schema is not None, f"no CRD for {key} in tests/schemas/"
        doc = {k: v for k, v in body.items() if k != "metadata"}
        jsonschema.validate(doc, schema)
        assert _unknown_fields(doc, schema, "") == []
        return body
    return check
