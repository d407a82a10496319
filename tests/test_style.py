"""Style rules the code is held to (issue 23, item 5: constructors read as the architecture).

No function in components/, infra/ or policies/ is over ``MAX_FUNCTION_LINES`` lines: a longer
one is split into helpers named after what they build (``EksCluster._node_group``,
``Postgres._parameter_group``, ...), so that a constructor reads as a list of the parts it makes.
"""

from __future__ import annotations

import ast

from toolkit.stackfile import REPO

MAX_FUNCTION_LINES = 60
CHECKED = ("components", "infra", "policies")

#: Functions still to be split, as (path, qualified name) -> their length when listed. Empty: every
#: function is within the limit. A function may be listed here only while its split is pending,
#: never to exempt it for good; an entry that is no longer over the limit fails the test too.
STILL_TO_SPLIT: dict[tuple[str, str], int] = {}


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, length in lines) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            qualified = f"{prefix}{node.name}"
            assert node.end_lineno is not None
            yield qualified, node.end_lineno - node.lineno + 1
            yield from _functions(node, f"{qualified}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def function_lengths() -> dict[tuple[str, str], int]:
    """Every function in the checked trees, as (path, qualified name) -> lines (``end_lineno - lineno + 1``)."""
    found = {}
    for top in CHECKED:
        for path in sorted((REPO / top).rglob("*.py")):
            if ".venv" in path.parts:
                continue
            relative = path.relative_to(REPO).as_posix()
            for qualified, length in _functions(ast.parse(path.read_text(), filename=relative)):
                found[(relative, qualified)] = length
    return found


def test_the_checked_trees_hold_functions():
    lengths = function_lengths()
    assert any(path.startswith("components/") for path, _ in lengths)
    assert ("components/eks_cluster.py", "EksCluster.__init__") in lengths


def test_no_function_is_over_the_limit():
    offenders = {key: length for key, length in function_lengths().items()
                 if length > MAX_FUNCTION_LINES and key not in STILL_TO_SPLIT}
    listing = "\n".join(f"  {path}: {name} is {length} lines"
                        for (path, name), length in sorted(offenders.items(), key=lambda kv: -kv[1]))
    assert not offenders, (f"functions over {MAX_FUNCTION_LINES} lines (split them into helpers named "
                           f"after what they build):\n{listing}")


def test_the_allowlist_holds_only_functions_still_over_the_limit():
    lengths = function_lengths()
    stale = [f"{path}: {name}" for (path, name) in STILL_TO_SPLIT
             if lengths.get((path, name), 0) <= MAX_FUNCTION_LINES]
    assert not stale, "split or gone, remove from STILL_TO_SPLIT:\n  " + "\n  ".join(stale)
