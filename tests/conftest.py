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
