"""What the program declares, as the engine receives it: the cost model's input, computed in the program.

The stack's budget is derived from its maximum-scale cost estimate (``capacity/cost.py``), which
reads the declared resources' properties. The offline reports read them from the mock harness,
which sees what the engine receives; the program itself sees the same thing this way, identically
under ``pulumi up``/``pulumi preview`` and under the SDK's mocks:

- ``record()``, the program's first step (infra/__main__.py), registers a stack transformation
  (``pulumi.runtime.register_stack_transformation``, the in-process kind that the SDK runs inside
  every ``Resource.__init__``, so also under mocks; the newer ``register_resource_transform`` runs
  in the engine and does not). It keeps each custom resource's type token, name and properties,
  and changes nothing (it returns None).
- ``Recorder.declared()`` is an Output of those resources as ``capacity.fleet.Declared``: each
  resource's properties serialized exactly as the SDK serializes them for the engine
  (``pulumi.runtime.rpc.serialize_properties`` with the resource's input type, so keys are the
  engine's camelCase), secrets unwrapped, numbers as the wire has them (integral ones as ints), and
  every value unknown during a preview (the ARN of a resource not created yet) as None: what the
  cost model reads is config literals (classes, sizes, replicas), known in any preview. The
  Output itself is always known, so the budget built from it shows its amount in the preview.

Only the properties of the types the estimate reads are serialized (``capacity.cost.PROPERTIES_READ``,
about a third of a stack's resources); the others come with their type alone. Only resources
declared before ``declared()`` is called are in it: components/cost_budget.py calls
it after its own billable resources (key, topic), before the budget, which cannot depend on itself.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import rpc

from capacity.cost import PROPERTIES_READ
from capacity.fleet import Declared

#: The wire's secret wrapper (``pulumi.runtime.rpc``): a signature key and value, then ``value``.
_SIG, _SECRET = rpc._special_sig_key, rpc._special_secret_sig


def _plain(value: Any) -> Any:
    """Secrets unwrapped, integral floats as ints (the wire has only doubles), the rest unchanged."""
    if isinstance(value, dict):
        if value.get(_SIG) == _SECRET:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _input_type(resource: pulumi.Resource) -> type | None:
    """The input type a generated SDK passed as the resource's props (its metadata names the keys
    the engine receives): Pulumi's Python codegen names it ``<Resource>Args``, or
    ``<Resource>InitArgs`` when a type of the first name exists (``pulumi_aws.s3.BucketVersioning``,
    every Kubernetes kind), in the resource's own module. None when there is none: the SDK then
    translates keys with ``translate_input_property``, as here. tests/test_cost_budget.py checks
    that every resource of every stack comes out as the harness receives it."""
    cls = type(resource)
    module = importlib.import_module(cls.__module__)
    for name in (f"{cls.__name__}InitArgs", f"{cls.__name__}Args"):
        typ = getattr(module, name, None)
        if isinstance(typ, type) and typ.__module__ == cls.__module__ and pulumi._types.is_input_type(typ):
            return typ
    return None


async def engine_props(resource: pulumi.Resource, props: Mapping[str, Any]) -> dict:
    """``props`` as the engine receives them for ``resource`` (``pulumi/runtime/resource.py``
    ``prepare_resource``), unknown values as None."""
    typ = _input_type(resource)
    struct = await rpc.serialize_properties(props, {}, resource, None if typ else resource.translate_input_property,
                                            typ)
    return _plain(rpc.deserialize_properties(struct, keep_unknowns=False)) or {}


#: A recorded resource: the object, its type token, its name, its properties as the program gave them.
Record = tuple[pulumi.CustomResource, str, str, Mapping[str, Any]]


class Recorder:
    """A stack transformation that keeps every custom resource the program declares."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def __call__(self, args: pulumi.ResourceTransformationArgs) -> None:
        if isinstance(args.resource, pulumi.CustomResource):
            self.records.append((args.resource, args.type_, args.name, args.props))
        return None

    async def _declared(self, records: list[Record]) -> list[Declared]:
        async def one(resource: pulumi.CustomResource, type_: str, name: str, props: Mapping[str, Any]) -> Declared:
            if type_ not in PROPERTIES_READ:  # counted by its type alone: not worth serializing
                return Declared(type_, name, {})
            found = await engine_props(resource, props)
            # The harness's reports add the id (the cost model joins node groups to their launch
            # templates by it); unknown before the first create, when the model joins by name.
            return Declared(type_, name, {**found, "id": await resource.id.future()})
        return list(await asyncio.gather(*(one(*r) for r in records)))

    def declared(self) -> pulumi.Output[list[Declared]]:
        """Every custom resource declared so far, as the engine receives it; a known Output."""
        async def known() -> bool:
            return True

        async def not_secret() -> bool:
            return False

        return pulumi.Output(set(), asyncio.ensure_future(self._declared(list(self.records))),
                             asyncio.ensure_future(known()), asyncio.ensure_future(not_secret()))


def record() -> Recorder:
    """Start recording what the program declares (call it before declaring anything)."""
    recorder = Recorder()
    pulumi.runtime.register_stack_transformation(recorder)
    return recorder
