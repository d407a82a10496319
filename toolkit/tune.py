"""make tune: the HPA settings a recorded load test supports, as a diff against the stack file.

The seed asks for HPA triggers tuned from load tests. ``loadtest/locustfile.py`` writes the hold's
figures to ``build/loadtest/<stack>.json`` (its docstring gives the contract); this reads that
result and the stack's settings and prints, per app the load reached:

- the **measured per-pod capacity**: the app's requests per second in the hold over the replicas
  it ran (``--pods`` of the load test, or here). It counts only when the app's endpoints held the
  stack's ``p99LatencyMs`` and its failure limit: a capacity measured over the limit is not one,
  and the app is refused (exit 1) instead of tuned on it;
- the **target** per pod (``requestsPerSecondTarget``, for an app that scales on its request
  rate): the capacity times ``--target-share`` (0.7), the room that keeps the p99 while the HPA
  reacts to a step;
- **minReplicas**: the pods that serve today's peak at the target (the app's share of
  ``cofounder:scaling.peakRps``, by the requests it took in the hold), at least ``--min-floor``;
- **maxReplicas**: the pods that serve ``peakMultiplier`` times that peak at the target (flagged
  when over ``maxReplicasPerApp``);
- **headroom**: the placeholders that hold every app's first step at once (to the peak's
  replicas, as prod's scale-up policy takes it) plus ``--headroom-slack`` (20 %), in the stack's
  placeholder size. Apps the test did not reach (the worker) keep their settings and their step.

Paths map to apps as CloudFront routes them (components/edge_distribution.py): ``api/*`` to the
backend; ``_next/static/*`` and ``public/*`` to the assets bucket (no pods, not counted); the rest
to the frontend when pages come from the app. The backend's ``activeAgentsTarget`` is not tuned:
an HTTP test does not measure agent runs.

The output is advice: the diff is printed, never applied (``--write`` applies it). Exit 0 when every
reached app is tuned, 1 when one is refused, 2 on bad input (a one-line error).
"""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import json
import math
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from capacity.headroom import cpu_millicores, memory_mib
from components.edge_distribution import API_PATH, PUBLIC_PATH, STATIC_PATH
from infra.config import parse
from infra.stack import StackConfig
from loadtest.peaks import parse_pods
from toolkit.errors import main_guard
from toolkit.stackfile import REPO, STACKS_DIR, StackFileError, load_stack_file

DEFAULT_TARGET_SHARE = 0.7
DEFAULT_MIN_FLOOR = 2
DEFAULT_HEADROOM_SLACK = 0.2
DEFAULT_MAX_FAILURE_RATIO = 0.01


class TuneError(StackFileError):
    """The result file or an option is not usable: a one-line error, exit code 2."""


@dataclass(frozen=True)
class Measured:
    """What the hold showed of one app: its rate, its worst endpoint's p99, its failure share."""

    app: str
    requests: int
    rps: float
    p99_ms: float
    failure_ratio: float
    pods: int
    share: float  # of the hold's requests that reached pods

    @property
    def capacity(self) -> float:
        return self.rps / self.pods


@dataclass(frozen=True)
class Tuning:
    """One app's recommendation, or the reason it has none."""

    app: str
    measured: Measured
    refused: str | None = None
    target: float | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    #: Pods that serve peakMultiplier x the app's peak at the target: the burst's first step goes there.
    needed: int = 0
    over_cap: bool = False


def app_for_path(path: str, html_origin: str) -> str | None:
    """The app a GET of ``path`` reaches through CloudFront, or None for the assets bucket."""
    bare = path.split("?")[0].lstrip("/")
    if fnmatch.fnmatchcase(bare, API_PATH):
        return "backend"
    if fnmatch.fnmatchcase(bare, STATIC_PATH) or fnmatch.fnmatchcase(bare, PUBLIC_PATH):
        return None
    return "frontend" if html_origin == "app" else None


def load_result(path: Path) -> dict:
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        raise TuneError(f"{path}: no load-test result there (run loadtest/locustfile.py, or give --result)") from None
    except ValueError as exc:
        raise TuneError(f"{path}: not JSON ({exc})") from None
    missing = [key for key in ("hold_seconds", "endpoints") if key not in result]
    if not isinstance(result, dict) or missing or not isinstance(result.get("endpoints"), dict):
        raise TuneError(f"{path}: not a load-test result: missing {', '.join(missing) or 'endpoints mapping'} "
                        f"(loadtest/locustfile.py's JSON contract)")
    return result


def measure(result: dict, cfg: StackConfig, pods: dict[str, int], source: Path) -> list[Measured]:
    """Per app the hold reached: its requests, rate, worst p99 and failures, over its pods."""
    html_origin = cfg.edge.html_origin
    by_app: dict[str, list[dict]] = {}
    for name, endpoint in sorted(result["endpoints"].items()):
        app = app_for_path(name, html_origin)
        if app is not None and name != "Aggregated":
            by_app.setdefault(app, []).append(endpoint)
    total = sum(e["requests"] for endpoints in by_app.values() for e in endpoints)
    if not total:
        raise TuneError(f"{source}: no request of the hold reached an app's pods (paths: "
                        f"{', '.join(sorted(result['endpoints'])) or 'none'})")
    recorded = {**(result.get("pods") or {}), **pods}
    out = []
    for app, endpoints in sorted(by_app.items()):
        if app not in cfg.apps:
            raise TuneError(f"{source}: paths reach {app}, which {cfg.stack_file} does not declare in cofounder:apps")
        if not recorded.get(app):
            raise TuneError(f"{source}: the replicas {app} ran during the hold are not recorded: give "
                            f"--pods {app}=<replicas> (kubectl -n cofounder get deploy {app})")
        requests = sum(e["requests"] for e in endpoints)
        out.append(Measured(
            app=app, requests=requests, rps=sum(e["rps"] for e in endpoints),
            p99_ms=max(e["p99_ms"] for e in endpoints),
            failure_ratio=sum(e["failures"] for e in endpoints) / requests if requests else 0.0,
            pods=int(recorded[app]), share=requests / total))
    return out


def _floor_tenth(value: float) -> float:
    return math.floor(value * 10) / 10


def tune(measured: list[Measured], cfg: StackConfig, target_share: float = DEFAULT_TARGET_SHARE,
         min_floor: int = DEFAULT_MIN_FLOOR, max_failure_ratio: float = DEFAULT_MAX_FAILURE_RATIO) -> list[Tuning]:
    """The settings each measured app's capacity supports (see the module docstring)."""
    scaling = cfg.scaling
    if not scaling.peak_rps:
        raise TuneError(f"{cfg.stack_file}: cofounder:scaling.peakRps is not set: the peak the settings serve")
    out = []
    for m in measured:
        if m.p99_ms > scaling.p99_latency_ms:
            out.append(Tuning(m.app, m, refused=f"p99 {m.p99_ms:g} ms over the {scaling.p99_latency_ms} ms "
                                                 f"limit: {m.capacity:.1f} rps per pod is not a capacity"))
            continue
        if m.failure_ratio > max_failure_ratio:
            out.append(Tuning(m.app, m, refused=f"failures {m.failure_ratio:.2%} over {max_failure_ratio:.2%}"))
            continue
        target = max(0.1, _floor_tenth(m.capacity * target_share))
        peak = scaling.peak_rps * m.share
        minimum = max(min_floor, math.ceil(peak / target))
        needed = max(minimum, math.ceil(peak * scaling.peak_multiplier / target))
        maximum = needed
        app = cfg.apps[m.app]
        if app.requests_per_second_target is None:
            # it scales on other metrics too (CPU, active agents), which an HTTP test does not
            # load: the requests only ever raise its bounds
            minimum, maximum = max(minimum, app.min_replicas), max(maximum, app.max_replicas)
        out.append(Tuning(m.app, m, target=target, min_replicas=minimum, max_replicas=maximum, needed=needed,
                          over_cap=maximum > scaling.max_replicas_per_app))
    return out


def headroom_replicas(tunings: list[Tuning], cfg: StackConfig, slack: float = DEFAULT_HEADROOM_SLACK) -> int:
    """Placeholders (the stack's size) for every app's first step at once, plus ``slack``."""
    tuned = {t.app: t for t in tunings if t.refused is None}
    cpu = memory = 0
    for name, app in cfg.apps.items():
        t = tuned.get(name)
        start = t.min_replicas if t is not None and t.min_replicas is not None else app.min_replicas
        # the time-to-scale report's step: the peak's replicas are minReplicas (or the declared
        # baseline) times the multiplier
        baseline = cfg.scaling.baseline_replicas.get(name, app.min_replicas)
        step = max(0, min(app.max_replicas, math.ceil(baseline * cfg.scaling.peak_multiplier)) - start)
        if t is not None:
            http_step = t.needed - start
            step = http_step if app.requests_per_second_target is not None else max(step, http_step)
        cpu += step * cpu_millicores(app.cpu_request)
        memory += step * memory_mib(app.memory_request)
    size = cfg.cluster.headroom
    return math.ceil(max(cpu / size.cpu_millicores, memory / size.memory_mib) * (1 + slack))


def _yaml_number(value: int | float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def changes(tunings: list[Tuning], cfg: StackConfig, headroom: int) -> list[tuple[list[str], int | float]]:
    """The stack-file keys to set: ``(path under config, value)``, only where the value differs."""
    out: list[tuple[list[str], int | float]] = []
    for t in tunings:
        if t.refused is not None:
            continue
        app = cfg.apps[t.app]
        if app.requests_per_second_target is not None and t.target != app.requests_per_second_target:
            assert t.target is not None
            out.append((["cofounder:apps", t.app, "requestsPerSecondTarget"], t.target))
        if t.min_replicas != app.min_replicas:
            assert t.min_replicas is not None
            out.append((["cofounder:apps", t.app, "minReplicas"], t.min_replicas))
        if t.max_replicas != app.max_replicas:
            assert t.max_replicas is not None
            out.append((["cofounder:apps", t.app, "maxReplicas"], t.max_replicas))
    if headroom != cfg.cluster.headroom.replicas:
        out.append((["cofounder:cluster", "headroom", "replicas"], headroom))
    return out


_KEY = re.compile(r"^(?P<indent> *)(?P<key>[^\s#-][^#]*?):(?:\s|$)")


def _block(lines: list[str], start: int, end: int, indent: int) -> list[tuple[int, str, int]]:
    """The keys directly inside ``lines[start:end]`` at the first indent deeper than ``indent``."""
    found, child = [], None
    for i in range(start, end):
        m = _KEY.match(lines[i])
        if not m or lines[i].lstrip().startswith("#"):
            continue
        level = len(m["indent"])
        if level <= indent:
            break
        child = level if child is None else child
        if level == child:
            found.append((i, m["key"].strip(), level))
    return found


def set_key(text: str, path: list[str], value: int | float) -> str:
    """``text`` (a stack file) with ``config.<path>`` set to ``value``, comments and layout kept.

    Block mappings are edited on the key's line (or the key is added under its parent); a flow
    mapping (``headroom: {replicas: 18, ...}``) is edited inside the braces."""
    lines = text.split("\n")
    start, end, indent = 0, len(lines), -1
    for depth, key in enumerate(["config", *path]):
        entries = _block(lines, start, end, indent)
        match = next(((i, level) for i, name, level in entries if name == key), None)
        if match is None:
            if depth == 0:
                raise TuneError("the stack file has no config mapping")
            child = entries[0][2] if entries else indent + 2
            last = key == path[-1]
            lines.insert(start, " " * child + (f"{key}: {_yaml_number(value)}" if last else f"{key}:"))
            if last:
                return "\n".join(lines)
            start, end, indent = start + 1, start + 1, child
            continue
        line, level = match
        rest = lines[line].split(":", 1)[1]
        if key == path[-1]:
            comment = re.search(r"\s+#.*$", rest)
            lines[line] = lines[line][:level] + f"{key}: {_yaml_number(value)}" + (comment.group(0) if comment else "")
            return "\n".join(lines)
        flow = rest.strip()
        if flow.startswith("{"):
            if depth != len(path) - 1:
                raise TuneError(f"{'.'.join(path[:depth])} is a flow mapping; make tune edits one level inside it")
            field, number = path[depth], _yaml_number(value)  # the last key, inside the braces
            edited, n = re.subn(rf"(\b{re.escape(field)}:\s*)[^,}}]+", rf"\g<1>{number}", lines[line], count=1)
            if not n:
                edited = lines[line].replace("{", f"{{{field}: {_yaml_number(value)}, ", 1)
            lines[line] = edited
            return "\n".join(lines)
        end = next((i for i in range(line + 1, len(lines))
                    if (m := _KEY.match(lines[i])) and len(m["indent"]) <= level), len(lines))
        start, indent = line + 1, level
    return "\n".join(lines)


def _table(tunings: list[Tuning], cfg: StackConfig, headroom: int) -> str:
    rows = ["  app       pods  rps/pod  p99 ms  share  target/pod  min  max   verdict",
            "  " + "-" * 74]
    for t in tunings:
        m, app = t.measured, cfg.apps[t.app]
        if t.refused:
            rows.append(f"  {t.app:<9} {m.pods:>4}  {m.capacity:>7.1f}  {m.p99_ms:>6g}  {m.share:>5.0%}  "
                        f"{'-':>10}  {'-':>3}  {'-':>3}   refused: {t.refused}")
            continue
        target = f"{t.target:g}" + ("" if app.requests_per_second_target is not None else "*")
        cap = f"  over maxReplicasPerApp {cfg.scaling.max_replicas_per_app}" if t.over_cap else ""
        rows.append(f"  {t.app:<9} {m.pods:>4}  {m.capacity:>7.1f}  {m.p99_ms:>6g}  {m.share:>5.0%}  "
                    f"{target:>10}  {t.min_replicas:>3}  {t.max_replicas:>3}   ok{cap}")
    size = cfg.cluster.headroom
    rows.append(f"  headroom: {headroom} placeholders of {size.cpu_millicores}m/{size.memory_mib}Mi (now "
                f"{size.replicas}) hold every app's first step plus slack")
    if any(t.refused is None and cfg.apps[t.app].requests_per_second_target is None for t in tunings):
        rows.append("  * the app does not scale on its request rate (no requestsPerSecondTarget): the target is "
                    "what it would be, and its bounds are only raised (its other metrics are not under test)")
    return "\n".join(rows)


def _check_loads(stack: str, text: str, name: str) -> None:
    """The edited stack file must still load: the diff is never advice the loader would refuse."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / name).write_text(text)
        try:
            parse(stack, load_stack_file(stack, Path(folder)).config, f"stacks/{name} (as tuned)")
        except StackFileError as exc:
            raise TuneError(f"the tuned stack file would not load ({exc}): a bug in make tune's edit") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--result", default=None, help="load-test result (default build/loadtest/<stack>.json)")
    parser.add_argument("--pods", default="", help="app=replicas during the hold, over the result's own")
    parser.add_argument("--target-share", type=float, default=DEFAULT_TARGET_SHARE)
    parser.add_argument("--min-floor", type=int, default=DEFAULT_MIN_FLOOR)
    parser.add_argument("--headroom-slack", type=float, default=DEFAULT_HEADROOM_SLACK)
    parser.add_argument("--stacks-dir", default=str(STACKS_DIR))
    parser.add_argument("--write", action="store_true", help="apply the diff to the stack file")
    args = parser.parse_args()
    if not 0 < args.target_share <= 1:
        raise TuneError(f"--target-share {args.target_share}: allowed: above 0, at most 1")
    if args.min_floor < 1 or not 0 <= args.headroom_slack <= 1:
        raise TuneError("--min-floor: at least 1; --headroom-slack: 0 to 1")
    try:
        pods = parse_pods(args.pods)
    except ValueError as exc:
        raise TuneError(str(exc)) from None
    stacks_dir = Path(args.stacks_dir)
    stack_file = load_stack_file(args.stack, stacks_dir)
    path = stacks_dir / f"Pulumi.{args.stack}.yaml"
    cfg = parse(args.stack, stack_file.config, f"stacks/{path.name}")
    source = Path(args.result) if args.result else REPO / "build" / "loadtest" / f"{args.stack}.json"
    result = load_result(source)
    tunings = tune(measure(result, cfg, pods, source), cfg, args.target_share, args.min_floor)
    headroom = headroom_replicas(tunings, cfg, args.headroom_slack)
    print(f"== HPA tuning for {args.stack} from {source.name} (hold {result['hold_seconds']:g} s, "
          f"verdict {result.get('verdict', '?')}; peak {cfg.scaling.peak_rps:g} rps x {cfg.scaling.peak_multiplier:g}, "
          f"p99 limit {cfg.scaling.p99_latency_ms} ms, target share {args.target_share:g})")
    print(_table(tunings, cfg, headroom))
    before = path.read_text()
    after = before
    for keys, value in changes(tunings, cfg, headroom):
        after = set_key(after, keys, value)
    if after != before:
        _check_loads(args.stack, after, path.name)
        sys.stdout.writelines(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                                   f"a/stacks/{path.name}", f"b/stacks/{path.name}"))
        if args.write:
            path.write_text(after)
            print(f"written to stacks/{path.name}")
    else:
        print(f"stacks/{path.name} already holds these settings")
    return 1 if any(t.refused for t in tunings) else 0


if __name__ == "__main__":
    main_guard(main)
