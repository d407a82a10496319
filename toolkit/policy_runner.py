"""``make policy``: the CrossGuard pack in ``policies/`` run against one stack, as the CLI runs it.

1. The program runs under the SDK's mocks with the stack's config (``toolkit.harness.run_stack``).
2. The pack starts exactly as ``pulumi preview --policy-pack policies`` starts it: the Python
   analyzer shim's command, ``python -u -m pulumi.policy <engine address> .`` with ``policies/``
   as the working directory. ``PolicyPack`` prints its gRPC port on stdout.
3. Over the Analyzer protocol (``pulumi.runtime.proto``): Handshake, ConfigureStack,
   GetAnalyzerInfo, Configure (the schema defaults and ``policies/config/<stack>.json``,
   reconciled as the CLI does), ``Analyze`` per resource with its inputs, ``AnalyzeStack`` once
   with every resource's outputs (as the engine does at the end of an update).
4. SIGINT stops the pack cleanly (``PolicyPack`` stops its server on KeyboardInterrupt).

Violations are printed grouped by enforcement level with the resource URN and the fix (the
policy's description); any mandatory violation ends with exit code 1. ``run_policies(stack)``
returns the same results as data for other tools (the review diff report).

Usage: ``python -m toolkit.policy_runner [--stack dev] [--config policies/config/dev.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pulumi
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from toolkit.errors import main_guard
from toolkit.harness import PROJECT, Program, Resource, run_stack
from toolkit.stackfile import REPO, load_stack_file

PACK_DIR = REPO / "policies"
CONFIG_DIR = PACK_DIR / "config"
#: The CLI passes its engine's gRPC address; nothing offline listens, and the pack only needs it
#: for logging through the engine, which it does not do.
ENGINE_ADDRESS = "127.0.0.1:0"
STARTUP_SECONDS = 60
LEVELS = {analyzer_pb2.ADVISORY: "advisory", analyzer_pb2.MANDATORY: "mandatory",
          analyzer_pb2.REMEDIATE: "remediate", analyzer_pb2.DISABLED: "disabled"}
LEVEL_VALUES = {name: value for value, name in LEVELS.items()}


class PolicyConfigError(pulumi.RunError):
    """The policy config file names a policy or a setting the pack does not have, or a bad value."""


def _struct(values: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def load_config(stack: str, path: Path | None = None) -> dict:
    """The policy config file for ``stack`` (``policies/config/<stack>.json``), {} if there is none."""
    path = path or CONFIG_DIR / f"{stack}.json"
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise PolicyConfigError(f"{_shown(path)} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyConfigError(f"{_shown(path)}: expected an object keyed by policy name")
    return doc


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _check_value(where: str, value: Any, spec: dict) -> None:
    """``value`` against the setting's JSON schema (the pack's configSchema entry) with the
    jsonschema library, Draft 7; the message says what the schema allows."""
    if jsonschema.Draft7Validator(spec).is_valid(value):
        return
    kind = spec.get("type")
    article = 'an' if kind in ('integer', 'array', 'object') else 'a'
    allowed = f"one of {spec['enum']}" if "enum" in spec else f"{article} {kind}"
    if "minimum" in spec or "maximum" in spec:
        allowed += f" between {spec.get('minimum', float('-inf')):g} and {spec.get('maximum', float('inf')):g}"
    raise PolicyConfigError(f"{where} = {json.dumps(value)} is not allowed: expected {allowed}")


def reconcile(info: analyzer_pb2.AnalyzerInfo, config: dict, source: str) -> dict[str, analyzer_pb2.PolicyConfig]:
    """Each policy's enforcement level and settings: schema defaults, then the config file.

    Like the CLI, an ``all`` key sets every policy's level. Unlike the CLI, which ignores them,
    unknown policy names and settings are errors here, so a typo cannot silently disable a rule.
    """
    policies = {p.name: p for p in info.policies}
    for name in config:
        if name != "all" and name not in policies:
            raise PolicyConfigError(f"{source}: {name} is not a policy of the pack "
                                    f"(known: {', '.join(sorted(policies))})")
    result = {}
    for name, policy in policies.items():
        level = LEVELS[policy.enforcementLevel]
        raw = config.get(name, {})
        if "all" in config:
            level = config["all"]
        settings = {k: v["default"] for k, v in _to_dict(policy.configSchema.properties).items()
                    if "default" in v}
        if isinstance(raw, str):
            level = raw
        else:
            schema = _to_dict(policy.configSchema.properties)
            for key, value in raw.items():
                if key == "enforcementLevel":
                    level = value
                    continue
                if key not in schema:
                    raise PolicyConfigError(f"{source}: {name}.{key} is not a setting of the policy "
                                            f"(known: {', '.join(sorted(schema)) or 'none'})")
                _check_value(f"{source}: {name}.{key}", value, schema[key])
                settings[key] = value
        if level not in LEVEL_VALUES:
            raise PolicyConfigError(f"{source}: {name} enforcement level {level!r} is not allowed: "
                                    f"expected one of {', '.join(LEVEL_VALUES)}")
        result[name] = analyzer_pb2.PolicyConfig(enforcementLevel=LEVEL_VALUES[level],
                                                 properties=_struct(settings))
    return result


def _to_dict(struct_map) -> dict:
    from google.protobuf import json_format
    return {k: json_format.MessageToDict(v) for k, v in struct_map.items()}


class PolicyPackProcess:
    """The pack as a child process, started and stopped the way the CLI does it."""

    def __init__(self, stack: str, python: str = sys.executable, pack_dir: Path = PACK_DIR,
                 stack_config: dict[str, str] | None = None):
        env = dict(os.environ, PULUMI_PROJECT=PROJECT, PULUMI_STACK=stack, PULUMI_DRY_RUN="true",
                   PULUMI_CONFIG=json.dumps(stack_config or {}))
        self.proc = subprocess.Popen([python, "-u", "-m", "pulumi.policy", ENGINE_ADDRESS, "."],
                                     cwd=pack_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stderr is not None  # both are pipes
        ready, _, _ = select.select([self.proc.stdout], [], [], STARTUP_SECONDS)
        line = self.proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            if self.proc.poll() is None:
                self.proc.kill()
            stderr = self.proc.communicate()[1].decode(errors="replace")
            raise RuntimeError(f"the policy pack in {pack_dir} did not start (no port on stdout):\n{stderr}")
        self.port = int(line)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def stop(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> PolicyPackProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _options(resource: Resource) -> analyzer_pb2.AnalyzerResourceOptions:
    opts = resource.options
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=bool(opts.get("protect")),
        ignoreChanges=list(opts.get("ignoreChanges", [])),
        deleteBeforeReplace=bool(opts.get("deleteBeforeReplace")),
        deleteBeforeReplaceDefined="deleteBeforeReplace" in opts,
        additionalSecretOutputs=list(opts.get("additionalSecretOutputs", [])),
        parent=resource.parent or "",
    )


def _provider(program: Program, resource: Resource) -> analyzer_pb2.AnalyzerProviderResource | None:
    urn = resource.options.get("provider")
    found = [r for r in program.resources if r.urn == urn] if urn else []
    if not found:
        return None  # a default provider: the mocks do not register it as a resource
    p = found[0]
    return analyzer_pb2.AnalyzerProviderResource(type=p.type, properties=_struct(p.inputs), urn=p.urn, name=p.name)


def _violation(diag: analyzer_pb2.AnalyzeDiagnostic, fallback_urn: str | None) -> dict:
    message = diag.message
    if message.startswith(diag.description):
        message = message[len(diag.description):].strip()
    return {"policy": diag.policyName, "enforcement": LEVELS.get(diag.enforcementLevel, "advisory"),
            "urn": diag.urn or fallback_urn or "", "message": message, "description": diag.description}


def analyze(program: Program, config: dict, *, source: str = "policy config",
            python: str = sys.executable, stack_config: dict[str, str] | None = None) -> tuple[list[dict], dict]:
    """Send ``program``'s resources to the pack; returns (violations, pack info)."""
    with PolicyPackProcess(program.stack, python=python, stack_config=stack_config) as pack:
        stub = pack.stub
        try:
            stub.Handshake(analyzer_pb2.AnalyzerHandshakeRequest(
                engine_address=ENGINE_ADDRESS, root_directory=str(PACK_DIR), program_directory=str(PACK_DIR)))
        except grpc.RpcError as exc:  # the CLI tolerates packs without Handshake, as here
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        stub.ConfigureStack(analyzer_pb2.AnalyzerStackConfigureRequest(
            stack=program.stack, project=PROJECT, organization="organization", dry_run=True))
        info = stub.GetAnalyzerInfo(empty_pb2.Empty())
        stub.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=reconcile(info, config, source)))

        violations = []
        for r in program.resources:
            response = stub.Analyze(analyzer_pb2.AnalyzeRequest(
                urn=r.urn, type=r.type, name=r.name, properties=_struct(r.inputs),
                options=_options(r), provider=_provider(program, r)))
            violations += [_violation(d, r.urn) for d in response.diagnostics]
        stack_response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
            analyzer_pb2.AnalyzerResource(
                urn=r.urn, type=r.type, name=r.name, properties=_struct(r.outputs),
                options=_options(r), provider=_provider(program, r), parent=r.parent or "",
                dependencies=list(r.options.get("dependsOn", [])))
            for r in program.resources]))
        violations += [_violation(d, None) for d in stack_response.diagnostics]
    return violations, {"name": info.name, "policies": len(info.policies)}


def run_policies(stack: str, program: Program | None = None, config_path: Path | None = None) -> list[dict]:
    """Structured results: one dict per violation with policy, enforcement, urn, message, description."""
    program = program or run_stack(stack)
    path = config_path or CONFIG_DIR / f"{stack}.json"
    violations, _ = analyze(program, load_config(stack, path), source=_shown(path),
                            stack_config=load_stack_file(stack).config)
    return violations


def render(stack: str, violations: list[dict], resources: int, components: int = 0) -> str:
    # The same split as `make preview`'s "resources per type" line: the pack sees both kinds.
    counted = f"{resources} resources and {components} components" if components else f"{resources} resources"
    lines = [f"Policy pack policies/ against stack '{stack}' ({counted}, offline, "
             f"served over the Analyzer protocol as `pulumi preview --policy-pack` does)"]
    grouped: dict[str, list[dict]] = defaultdict(list)
    for v in violations:
        grouped[v["enforcement"]].append(v)
    for level in ("mandatory", "advisory"):
        found = sorted(grouped.get(level, []), key=lambda v: (v["policy"], v["urn"]))
        lines.append("")
        lines.append(f"== {level} violations: {len(found)}")
        for v in found:
            lines.append(f"  [{v['policy']}] {v['urn'] or '(stack)'}")
            for line in v["message"].splitlines():
                lines.append(f"      {line}")
            lines.append(f"      fix: {v['description']}")
    mandatory = len(grouped.get("mandatory", []))
    lines.append("")
    lines.append(f"violations: {mandatory} mandatory, {len(grouped.get('advisory', []))} advisory"
                 + (" -- FAILED: a mandatory violation blocks the update" if mandatory else ""))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--config", default=None, help="policy config file (default policies/config/<stack>.json)")
    args = parser.parse_args(argv)
    program = run_stack(args.stack)
    violations = run_policies(args.stack, program, Path(args.config) if args.config else None)
    components = sum(1 for r in program.resources if r.component)
    print(render(args.stack, violations, len(program.resources) - components, components), end="")
    return 1 if any(v["enforcement"] == "mandatory" for v in violations) else 0


if __name__ == "__main__":
    main_guard(main)
