"""``make diff``: the offline review report of a change, written for a pull-request comment.

Builds the desired-state snapshot (``toolkit/snapshot.py``) of every stack twice, at BASE and in
the working tree, and renders the comparison (``toolkit/diff.py``) to
``build/review/report.md``; the snapshots land beside it in ``base/`` and ``head/``.

Each side is built by *that tree's own code*: BASE is checked out into a temporary detached git
worktree and its ``python -m toolkit.preview`` runs in a subprocess with the worktree as working
directory and as ``PYTHONPATH``. The editable install of the repository (``-e .``) resolves
``components``/``infra``/``toolkit`` through a finder that setuptools *appends* to
``sys.meta_path``, so the ``PYTHONPATH`` entry wins; the driver checks that every one of them was
really imported from the tree it builds, and refuses to build otherwise. Nothing is installed.
A BASE that predates the toolkit or fails to build is reported as such and treated as empty. A
stack whose *working tree* fails to build is not diffed at all: the report leads with its build
error (an empty head would read as "every resource deleted"), and the command exits 1. It also
exits 1, after writing the report, when the change adds a mandatory policy violation, so CI shows
red; the report's first line says which ("blocks merge: ...").

Usage: ``python -m toolkit.review [--base REF] [--out build/review] [--limit 60000]``
(default BASE: the merge base of HEAD with main; a shallow clone is deepened first).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from capacity.rotation import ROTATION_DATE_ENV, rotation_date
from toolkit import diff
from toolkit.stackfile import REPO

#: The driver's exit code when the preview succeeded and the policy run did not.
POLICIES_FAILED = 3

#: Runs inside the tree being built (cwd = PYTHONPATH = the tree): proves the tree's own packages
#: are the ones imported, then runs that tree's preview and, when asked, its policy runner. Both
#: get the stack's program from the tree's ``toolkit.harness.run_stack``, which is memoised here
#: before either is imported, so one process runs the program once for both (a third of the
#: work of two processes). A tree whose modules call it differently just runs it twice.
_DRIVER = r"""
import asyncio, importlib, json, runpy, sys, traceback
from pathlib import Path
tree = Path.cwd().resolve()
for name in ("toolkit", "infra", "components", "capacity"):
    if not (tree / name).is_dir():
        continue
    mod = importlib.import_module(name)
    where = [Path(p).resolve() for p in getattr(mod, "__path__", [mod.__file__])]
    if not all(w.is_relative_to(tree) for w in where):
        sys.exit(f"import shadowing failed: {name} came from {where[0]}, not from {tree}")
stack, out, policies_out = sys.argv[1:4]
try:
    from toolkit import harness
except ImportError:
    harness = None
if harness is not None and hasattr(harness, "run_stack"):
    programs, run_stack = {}, harness.run_stack
    def memoised(name, *args, **kwargs):
        if any(a is not None for a in (*args, *kwargs.values())):
            return run_stack(name, *args, **kwargs)
        if name not in programs:
            programs[name] = run_stack(name)
        return programs[name]
    harness.run_stack = memoised
sys.argv = ["toolkit.preview", "--stack", stack, "--out", out]
try:
    runpy.run_module("toolkit.preview", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
if policies_out:
    try:
        asyncio.set_event_loop(asyncio.new_event_loop())  # the preview closed the SDK's loop
        from toolkit.policy_runner import run_policies
        results = run_policies(stack)
        Path(policies_out).write_text(json.dumps(list(results), sort_keys=True, indent=1, default=str))
    except BaseException:
        traceback.print_exc()
        sys.exit(POLICIES_FAILED)
""".replace("POLICIES_FAILED", str(POLICIES_FAILED))


class ReviewError(Exception):
    """A problem the user must fix (an unknown BASE), printed as one line."""


@dataclass(frozen=True)
class Side:
    """One side of the comparison: snapshot documents per stack, or why there are none."""

    label: str
    docs: dict[str, dict]
    notes: dict[str, str]
    policies: dict[str, list[dict]]
    policy_notes: dict[str, str]
    #: Stacks whose preview failed: the tail of its stderr (also summarised in ``notes``).
    errors: dict[str, str] = field(default_factory=dict)
    #: Stacks whose snapshot (and policy results) came from the cache instead of a build.
    cached: list[str] = field(default_factory=list)


def _git(repo: Path, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=check)


def _rev(repo: Path, ref: str) -> str | None:
    out = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return out.stdout.strip() if out.returncode == 0 else None


def _fetch_main(repo: Path) -> list[str]:
    """Deepen a shallow clone and fetch main from origin; returns what was tried, as phrases."""
    if _git(repo, "remote", "get-url", "origin").returncode != 0:
        return ["nothing fetched: no remote 'origin'"]

    def attempt(done: str, failed: str, *args: str) -> str:
        res = _git(repo, "fetch", "--quiet", *args)
        return done if res.returncode == 0 else f"{failed}: " + " ".join(res.stderr.split())

    tried = []
    if _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        tried.append(attempt("deepened the shallow clone from origin",
                             "could not deepen the shallow clone", "--unshallow", "origin"))
    tried.append(attempt("fetched main from origin", "could not fetch main from origin",
                         "origin", "+refs/heads/main:refs/remotes/origin/main"))
    return tried


def resolve_base(repo: Path, ref: str | None) -> tuple[str | None, str]:
    """The BASE commit and its label; ``None`` when the default merge base cannot be found."""
    if ref:
        sha = _rev(repo, ref)
        if sha is None:
            fetched = _fetch_main(repo)
            sha = _rev(repo, ref) or _rev(repo, f"origin/{ref}")
        if sha is None:
            raise ReviewError(f"BASE={ref} is not a commit in this clone ({'; '.join(fetched)}); "
                              f"pass a commit, tag or branch that exists")
        return sha, f"`{ref}` ({sha[:12]})"
    tried: list[str] = []
    for attempt in range(2):
        for main in ("main", "origin/main"):
            if _rev(repo, main):
                res = _git(repo, "merge-base", "HEAD", main)
                if res.returncode == 0:
                    sha = res.stdout.strip()
                    return sha, f"merge base with `{main}` ({sha[:12]})"
        if attempt == 0:
            tried = _fetch_main(repo)
    return None, ("unavailable: no merge base with main could be found in this clone ("
                  + "; ".join(tried) + "); pass BASE=<ref>")


@contextmanager
def base_worktree(repo: Path, sha: str):
    """A temporary detached worktree of ``sha``, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix="review-base-"))
    try:
        _git(repo, "worktree", "add", "--detach", "--force", str(path), sha, check=True)
        yield path
    finally:
        _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
        _git(repo, "worktree", "prune")


def stacks_in(tree: Path) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in (tree / "stacks").glob("Pulumi.*.yaml"))


#: How much of a failed build's stderr the report quotes: a traceback's end says what broke.
ERROR_LINES = 15
ERROR_CHARS = 3000


def _run_driver(tree: Path, stack: str, out: Path, policies: Path | None) -> tuple[int, str | None]:
    """Run the driver in ``tree``: its exit code, and on failure the last lines of its stderr."""
    # The report draws the burst as Mermaid: the preview's SVG chart (and loading matplotlib) is
    # not needed in a review build (toolkit/preview.py CHART_ENV).
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", "COFOUNDER_BURST_CHART": "off"}
    res = subprocess.run([sys.executable, "-c", _DRIVER, stack, str(out), str(policies or "")], cwd=tree,
                         env=env, capture_output=True, text=True)
    if res.returncode == 0:
        return 0, None
    # Paths relative to the tree: the same error reads the same from any checkout.
    stderr = res.stderr.replace(f"{tree}{os.sep}", "")
    lines = [ln.rstrip() for ln in stderr.strip().splitlines() if ln.strip()]
    return res.returncode, "\n".join(lines[-ERROR_LINES:])[-ERROR_CHARS:] or f"exit code {res.returncode}"


def _one_line(error: str) -> str:
    return " / ".join(error.splitlines()[-2:])


@dataclass(frozen=True)
class Cache:
    """Built snapshots of one git tree, reused by the next ``make diff`` of the same tree.

    A snapshot depends on the tree's files, the stack, the driver above and the installed Python
    packages (the SDK's mocks and the providers' input types shape it), so the key is exactly
    those: a tree is named by its git tree hash, which changes with any file's content or mode.
    Only successful builds are kept. BASE is always a commit; the working tree is cached only when
    ``git status`` shows nothing at all (no modified or untracked file), when it equals ``HEAD``'s
    tree. ``--no-cache`` (or ``REVIEW_CACHE=off``) builds everything.
    """

    root: Path
    tree_sha: str

    def entry(self, stack: str, with_policies: bool) -> Path:
        key = json.dumps([self.tree_sha, stack, with_policies, _DRIVER, environment_fingerprint(),
                          os.environ.get(ROTATION_DATE_ENV)])
        return self.root / hashlib.sha256(key.encode()).hexdigest()[:32]

    @contextmanager
    def building(self, stack: str, with_policies: bool):
        """Held while one entry is looked up and, if absent, built: a second ``make diff`` of the
        same tree at the same time waits for the first build and then reuses it."""
        lock = _mkdir(self.root) / f"{self.entry(stack, with_policies).name}.lock"
        with open(lock, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def restore(self, stack: str, snapshot: Path, policies: Path | None) -> bool:
        """Copy a stored build to where a fresh build would write it; False when there is none."""
        entry = self.entry(stack, policies is not None)
        if not (entry / "snapshot.json").is_file():
            return False
        shutil.copy2(entry / "snapshot.json", snapshot)
        if policies is not None:
            shutil.copy2(entry / "policies.json", policies)
        return True

    def store(self, stack: str, snapshot: Path, policies: Path | None) -> None:
        entry = self.entry(stack, policies is not None)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=_mkdir(self.root)))
        shutil.copy2(snapshot, staging / "snapshot.json")
        if policies is not None:
            shutil.copy2(policies, staging / "policies.json")
        try:
            staging.rename(entry)  # atomic: a concurrent run sees a whole entry or none
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another run stored it first


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


_FINGERPRINT: list[str] = []


def environment_fingerprint() -> str:
    """The Python version and every installed distribution with its version."""
    if not _FINGERPRINT:
        dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
        _FINGERPRINT.append(hashlib.sha256("\n".join([sys.version, *dists]).encode()).hexdigest())
    return _FINGERPRINT[0]


def tree_cache(repo: Path, root: Path | None, commit: str | None) -> Cache | None:
    """The cache of ``commit``'s tree, or of the working tree when ``commit`` is None and it is clean."""
    if root is None:
        return None
    if commit is None:
        if _git(repo, "status", "--porcelain", "--untracked-files=all").stdout.strip():
            return None
        commit = "HEAD"
    out = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{tree}}")
    return Cache(root, out.stdout.strip()) if out.returncode == 0 else None


def build_side(tree: Path, label: str, stacks: list[str], out: Path, jobs: int = 2,
               cache: Cache | None = None) -> Side:
    """Snapshots (and policy results, where the tree has a policy runner) of ``stacks``."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    docs: dict[str, dict] = {}
    notes: dict[str, str] = {}
    policies: dict[str, list] = {}
    policy_notes: dict[str, str] = {}
    errors: dict[str, str] = {}
    if not (tree / "toolkit" / "preview.py").is_file():
        for s in stacks:
            notes[s] = "predates the offline toolkit (no toolkit/preview.py), nothing to build."
        return Side(label, docs, notes, policies, policy_notes)
    has_policies = (tree / "toolkit" / "policy_runner.py").is_file()
    cached: list[str] = []

    def one(stack: str):
        if not (tree / "stacks" / f"Pulumi.{stack}.yaml").is_file():
            return stack, None, f"has no stacks/Pulumi.{stack}.yaml.", None, None, None
        snapshot, path = out / f"{stack}.json", (out / f"{stack}.policies.json" if has_policies else None)
        with cache.building(stack, path is not None) if cache else contextlib.nullcontext():
            if cache and cache.restore(stack, snapshot, path):
                code, error = 0, None
                cached.append(stack)
            else:
                code, error = _run_driver(tree, stack, out, path)
                if code == 0 and cache:
                    cache.store(stack, snapshot, path)
        if error and code != POLICIES_FAILED:
            return stack, None, f"failed to build: {_one_line(error)}", None, None, error
        doc = json.loads(snapshot.read_text())
        if path is None:
            return stack, doc, None, None, "toolkit/policy_runner.py is not in this tree yet", None
        if error:
            return stack, doc, None, None, f"policy run failed: {_one_line(error)}", None
        return stack, doc, None, json.loads(path.read_text()), None, None

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for stack, doc, note, pol, pol_note, error in pool.map(one, stacks):
            if doc is not None:
                docs[stack] = doc
            if note:
                notes[stack] = note
            if pol is not None:
                policies[stack] = pol
            if pol_note:
                policy_notes[stack] = pol_note
            if error:
                errors[stack] = error
    return Side(label, docs, notes, policies, policy_notes, errors, sorted(cached))


def compare(base: Side, head: Side, stacks: list[str]) -> list[diff.StackDiff]:
    return [diff.diff_stack(
        s, base.docs.get(s), head.docs.get(s),
        base_note=base.notes.get(s), head_note=head.notes.get(s), head_error=head.errors.get(s),
        base_policies=base.policies.get(s), head_policies=head.policies.get(s),
        policy_note=head.policy_notes.get(s)) for s in stacks]


@dataclass(frozen=True)
class Review:
    report: str
    #: Stacks the working tree could not build.
    head_failed: list[str]
    #: ``BASE dev``, ``HEAD prod``, ...: what came from the cache rather than a build.
    cached: list[str]
    #: Mandatory violations the change adds (``diff.new_mandatory``): ``make diff`` exits 1 on any.
    new_mandatory: int = 0


def review(repo: Path, base_ref: str | None, out: Path, limit: int = diff.DEFAULT_LIMIT,
           jobs: int = 2, only: list[str] | None = None, cache_root: Path | None = None) -> Review:
    """Write ``out/report.md`` comparing BASE with the working tree."""
    sha, base_label = resolve_base(repo, base_ref)
    head_sha = _rev(repo, "HEAD")
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no").stdout.strip())
    head_label = f"`HEAD` ({head_sha[:12] if head_sha else 'no commit'})" + \
        (" with uncommitted changes" if dirty else "")
    head_stacks = [s for s in stacks_in(repo) if not only or s in only]
    if sha is None:
        base = Side(base_label, {}, {s: f"BASE {base_label}." for s in head_stacks}, {}, {})
        stacks = head_stacks
    else:
        with base_worktree(repo, sha) as tree:
            stacks = sorted(set(head_stacks) | {s for s in stacks_in(tree) if not only or s in only})
            base = build_side(tree, base_label, stacks, out / "base", jobs, tree_cache(repo, cache_root, sha))
    head = build_side(repo, head_label, stacks, out / "head", jobs, tree_cache(repo, cache_root, None))
    diffs = compare(base, head, stacks)
    report = diff.render(diffs, base_label=base_label, head_label=head_label, limit=limit)
    (out / "report.md").write_text(report)
    return Review(report, sorted(head.notes),
                  [f"BASE {s}" for s in base.cached] + [f"HEAD {s}" for s in head.cached],
                  diff.new_mandatory(diffs))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default=None, help="git ref to compare with (default: merge base with main)")
    parser.add_argument("--out", default=str(REPO / "build" / "review"))
    parser.add_argument("--limit", type=int, default=diff.DEFAULT_LIMIT,
                        help="maximum report size in characters (GitHub comments: 65,536)")
    parser.add_argument("--jobs", type=int, default=2, help="stacks built in parallel")
    parser.add_argument("--stacks", default="", help="comma-separated stacks (default: all)")
    parser.add_argument("--cache", default=os.environ.get("REVIEW_CACHE", str(REPO / "build" / "review-cache")),
                        help="folder of builds reused per git tree, or 'off' (env: REVIEW_CACHE)")
    parser.add_argument("--no-cache", action="store_const", const="off", dest="cache", help="build every side")
    args = parser.parse_args()
    # BASE and the working tree are built for one day, so a rotation period that turns between the
    # two builds (or since a cached build) is not reported as the change's (infra/data.py).
    os.environ.setdefault(ROTATION_DATE_ENV, rotation_date().isoformat())
    only = [s for s in args.stacks.split(",") if s]
    cache_root = None if args.cache == "off" else Path(args.cache)
    try:
        result = review(REPO, args.base or None, Path(args.out), args.limit, args.jobs, only, cache_root)
    except ReviewError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = Path(args.out) / "report.md"
    if result.cached:
        print(f"Reused from {cache_root} (same git tree, same packages): {', '.join(result.cached)}")
    print(f"Review report ({len(result.report)} characters) written to {path}")
    status = 0
    if result.new_mandatory:
        print(f"error: the change adds {result.new_mandatory} mandatory policy violation"
              f"{'' if result.new_mandatory == 1 else 's'}: it blocks the merge (see {path})", file=sys.stderr)
        status = 1
    if result.head_failed:
        print(f"error: the working tree failed to build for {', '.join(result.head_failed)} (see {path})",
              file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
