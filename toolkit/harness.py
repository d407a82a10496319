"""Runs the Pulumi program under the SDK's own mock runtime and captures what it declares.

This is the one mock harness of the project: tests, the offline preview, the policy runner and
the review diff all go through ``run_stack`` (the program exactly as the CLI runs it:
``runpy.run_path("infra", run_name="__main__")`` with the stack file's config) or ``run`` (any
function, for component tests).

What is captured, and from where (all SDK machinery, nothing re-implemented):
- inputs (camelCase, as the engine receives them) and outputs: ``Mocks.new_resource``;
- parent and resource options: a stack transformation (``register_stack_transformation``),
  which the SDK itself runs for every resource;
- stack outputs: the root ``Stack`` resource's exports.
Computed outputs (ARNs, endpoints, ids) are plausible fakes from ``COMPUTED`` below. They are
not what AWS would return: the offline path shows the declared desired state, nothing more.
"""

from __future__ import annotations

import contextlib
import hashlib
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.sync_await import _sync_await

from toolkit.stackfile import REPO, STACKS_DIR, load_stack_file

PROJECT = "cofounder"
ACCOUNT = "123456789012"
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SECRET_SIG_VALUE = "1b47061264138c4ac30d75fd1eb44270"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_SIG_VALUE


def reveal(value: Any) -> Any:
    """The value with every secret wrapper removed (for assertions in tests only)."""
    if is_secret(value):
        return reveal(value.get("value"))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _normalize(value: Any) -> Any:
    """Integral floats back to ints (the wire format has only doubles)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    return value


@dataclass
class Resource:
    """One declared resource: what `pulumi up` would send to its provider."""

    urn: str
    type: str
    name: str
    custom: bool
    inputs: dict
    outputs: dict
    parent: str | None
    options: dict = field(default_factory=dict)

    @property
    def component(self) -> bool:
        return not self.custom


@dataclass
class Program:
    """Everything one run of the program declared."""

    stack: str
    resources: list[Resource]
    outputs: dict

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise AssertionError(f"expected one {type_} named {name!r}, found {names}")
        return found[0]

    def get(self, urn: str) -> Resource:
        return next(r for r in self.resources if r.urn == urn)

    def children(self, parent: Resource, type_: str | None = None) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn and (type_ is None or r.type == type_)]

    def component_of(self, resource: Resource) -> Resource | None:
        """The outermost component a resource belongs to (None for top-level resources)."""
        top = None
        current = resource
        while current.parent is not None:
            current = self.get(current.parent)
            top = current
        return top


# ---------------------------------------------------------------------------------------------
# Fake computed outputs, per resource type. Each returns the outputs the provider would compute.
# ---------------------------------------------------------------------------------------------


def _arn(type_: str, name: str, region: str) -> str:
    module = type_.split(":")[1].split("/")[0]
    kind = type_.split(":")[-1].lower()
    return f"arn:aws:{module}:{region}:{ACCOUNT}:{kind}/{name}"


def _region_code(region: str) -> str:
    """ElastiCache's short region code in endpoint names: us-east-1 -> use1."""
    parts = region.split("-")
    return parts[0] + "".join(p[0] for p in parts[1:-1]) + parts[-1]


def _fake_secret(name: str, length: int) -> str:
    out = ""
    while len(out) < length:
        out += hashlib.sha256(f"{name}{len(out)}".encode()).hexdigest()
    return "Mock" + out[: max(length - 4, 0)]


def _hex(seed: str, length: int) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()[:length]


def _bucket(bucket: str, region: str) -> dict:
    return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}", "bucketDomainName": f"{bucket}.s3.amazonaws.com",
            "bucketRegionalDomainName": f"{bucket}.s3.{region}.amazonaws.com", "region": region}


#: Stand-in AZ id numbers per zone letter (az3 last: CloudFront VPC origins skip use1-az3).
_ZONE_IDS = dict(zip("abcdef", (1, 2, 4, 5, 6, 3), strict=True))

COMPUTED: dict[str, Callable[[str, dict, str], dict]] = {
    "aws:ec2/vpc:Vpc": lambda name, i, region: {"defaultSecurityGroupId": f"sg-{name}"},
    # A resource that names its own region (pulumi-aws 7's per-resource ``region``) lives there.
    "aws:cloudwatch/logGroup:LogGroup": lambda name, i, region: {
        "arn": f"arn:aws:logs:{i.get('region', region)}:{ACCOUNT}:log-group:{i.get('name', name)}"},
    "aws:iam/role:Role": lambda name, i, region: {
        "arn": f"arn:aws:iam::{ACCOUNT}:role/{i.get('name', name)}", "name": i.get("name", name)},
    "aws:iam/policy:Policy": lambda name, i, region: {
        "arn": f"arn:aws:iam::{ACCOUNT}:policy/{i.get('name', name)}"},
    "aws:rds/instance:Instance": lambda name, i, region: {
        "address": f"{i.get('identifier', name)}.c0ffee123456.{region}.rds.amazonaws.com",
        "endpoint": f"{i.get('identifier', name)}.c0ffee123456.{region}.rds.amazonaws.com:{i.get('port', 5432)}",
        "port": i.get("port", 5432),
        # RDS names the secret it manages rds!db-<instance resource id>-<6 characters>.
        **({"masterUserSecrets": [{
            "secretArn": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:rds!db-{_hex(name, 8)}-{_hex(name, 6)}",
            "kmsKeyId": i.get("masterUserSecretKmsKeyId"), "secretStatus": "active"}]}
           if i.get("manageMasterUserPassword") else {})},
    "aws:secretsmanager/secret:Secret": lambda name, i, region: {
        "arn": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{i.get('name', name)}-{_hex(name, 6)}"},
    "aws:secretsmanager/secretVersion:SecretVersion": lambda name, i, region: {
        "versionId": f"{_hex(name + str(i.get('secretString')), 8)}-version"},
    "aws:elasticache/replicationGroup:ReplicationGroup": lambda name, i, region: {
        "configurationEndpointAddress":
            f"clustercfg.{i.get('replicationGroupId', name)}.c0ffee.{_region_code(region)}.cache.amazonaws.com"},
    # arn:${Partition}:sns:${Region}:${Account}:${TopicName} (Service Authorization Reference, SNS)
    "aws:sns/topic:Topic": lambda name, i, region: {
        "arn": f"arn:aws:sns:{region}:{ACCOUNT}:{i.get('name', name)}"},
    "aws:sqs/queue:Queue": lambda name, i, region: {
        "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{i.get('name', name)}",
        "arn": f"arn:aws:sqs:{region}:{ACCOUNT}:{i.get('name', name)}"},
    # A deterministic stand-in of the requested length (letters and digits only, so it fits any
    # alphabet the program asks for); the real one is random and lives only in the encrypted state.
    "random:index/randomPassword:RandomPassword": lambda name, i, region: {
        "result": _fake_secret(name, int(i.get("length", 16)))},
    # Derived from the name so runs are byte-stable; hex is 2 characters per byte, as the provider's.
    "random:index/randomId:RandomId": lambda name, i, region: {
        "hex": _fake_secret(name, 4 + 2 * int(i.get("byteLength", 4)))[4:].lower(),
        "dec": str(int(_fake_secret(name, 4 + 2 * int(i.get("byteLength", 4)))[4:], 16))},
    # edge (components/static_site_cdn.py)
    "aws:s3/bucket:Bucket": lambda name, i, region: _bucket(i.get("bucket") or f"{name}-{_hex(name, 7)}", region),
    "aws:cloudfront/distribution:Distribution": lambda name, i, region: {
        "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/E{_hex(name, 13).upper()}",
        "domainName": f"d{_hex(name, 13)}.cloudfront.net",
        "hostedZoneId": "Z2FDTNDATAQYW2",  # CloudFront's one alias zone
        "etag": f"E{_hex('etag' + name, 13).upper()}", "status": "Deployed"},
    "aws:cloudfront/cachePolicy:CachePolicy": lambda name, i, region: {"etag": f"E{_hex(name, 13).upper()}"},
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": lambda name, i, region: {
        "etag": f"E{_hex(name, 13).upper()}"},
    "aws:cloudfront/originAccessControl:OriginAccessControl": lambda name, i, region: {
        "etag": f"E{_hex(name, 13).upper()}"},
    "aws:cloudfront/function:Function": lambda name, i, region: {
        "arn": f"arn:aws:cloudfront::{ACCOUNT}:function/{i.get('name', name)}",
        "etag": f"E{_hex(name, 13).upper()}", "liveStageEtag": f"E{_hex(name, 13).upper()}"},
    # front door (components/app_load_balancer.py, web_acl.py)
    "aws:lb/loadBalancer:LoadBalancer": lambda name, i, region: _elb(name, "loadbalancer/app", region) | {
        "dnsName": f"internal-{name}-{int(_hex(name, 8), 16)}.{region}.elb.amazonaws.com",
        "zoneId": "Z35SXDOTRQ7X7K"},
    "aws:lb/targetGroup:TargetGroup": lambda name, i, region: _elb(name, "targetgroup", region),
    "aws:lb/listener:Listener": lambda name, i, region: {
        "arn": f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:listener/app/{name}/{_hex(name, 16)}"},
    "aws:cloudfront/vpcOrigin:VpcOrigin": lambda name, i, region: {
        "arn": f"arn:aws:cloudfront::{ACCOUNT}:vpcorigin/vo_{_hex(name, 22)}", "etag": f"E{_hex(name, 13).upper()}"},
    "aws:wafv2/webAcl:WebAcl": lambda name, i, region: {
        "arn": f"arn:aws:wafv2:us-east-1:{ACCOUNT}:global/webacl/{i.get('name', name)}/{_fake_uuid(name)}"},
    # Zone ids are per account (us-east-1a is use1-az4 in one account, use1-az1 in another); these
    # are stand-ins that skip az3, which CloudFront VPC origins do not support in us-east-1.
    "aws:ec2/subnet:Subnet": lambda name, i, region: {
        "availabilityZoneId": f"{_region_code(region)}-az{_ZONE_IDS[str(i.get('availabilityZone', 'a'))[-1]]}"},
    "aws:eks/cluster:Cluster": lambda name, i, region: _eks_cluster(i.get("name", name), i, region),
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": lambda name, i, region: {
        "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{str(i.get('url', '')).removeprefix('https://')}"},
    "aws:kms/key:Key": lambda name, i, region: {
        "arn": f"arn:aws:kms:{i.get('region', region)}:{ACCOUNT}:key/{_fake_uuid(name)}", "keyId": _fake_uuid(name)},
    "aws:ec2/launchTemplate:LaunchTemplate": lambda name, i, region: {
        "latestVersion": 1, "defaultVersion": 1},
    "aws:eks/nodeGroup:NodeGroup": lambda name, i, region: {
        "nodeGroupName": name, "status": "ACTIVE",
        "resources": [{"autoscalingGroups": [{"name": f"eks-{name}-{_fake_uuid(name)}"}],
                       "remoteAccessSecurityGroupId": ""}]},
    "aws:eks/addon:Addon": lambda name, i, region: {
        "arn": f"arn:aws:eks:{region}:{ACCOUNT}:addon/{i.get('clusterName')}/{i.get('addonName')}"},
}


def _elb(name: str, kind: str, region: str) -> dict:
    arn = f"arn:aws:elasticloadbalancing:{region}:{ACCOUNT}:{kind}/{name}/{_hex(name, 16)}"
    return {"arn": arn, "arnSuffix": arn.split(":", 5)[5].removeprefix("loadbalancer/")}


def _fake_uuid(name: str) -> str:
    h = hashlib.sha1(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def _eks_cluster(cluster_name: str, inputs: dict, region: str) -> dict:
    oidc_id = hashlib.sha1(cluster_name.encode()).hexdigest()[:32].upper()
    return {
        "name": cluster_name,
        "endpoint": f"https://{oidc_id}.gr7.{region}.eks.amazonaws.com",
        "certificateAuthority": {"data": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk9GRkxJTkUK"},
        "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{oidc_id}"}]}],
        "vpcConfig": {**(inputs.get("vpcConfig") or {}),
                      "clusterSecurityGroupId": f"sg-eks-cluster-{oidc_id[:8].lower()}"},
        "platformVersion": "eks.1",
        "status": "ACTIVE",
    }

CALLS: dict[str, Callable[[dict, str], dict]] = {
    "aws:index/getRegion:getRegion": lambda args, region: {
        "region": region, "name": region, "id": region, "endpoint": f"ec2.{region}.amazonaws.com"},
    "aws:index/getCallerIdentity:getCallerIdentity": lambda args, region: {
        "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/offline", "userId": "OFFLINE",
        "id": ACCOUNT},
    "aws:index/getPartition:getPartition": lambda args, region: {
        "partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"},
    "aws:s3/getCanonicalUserId:getCanonicalUserId": lambda args, region: {
        "id": _hex("owner" + ACCOUNT, 40) + _hex("owner", 24), "displayName": "offline"},
    "aws:ec2/getManagedPrefixList:getManagedPrefixList": lambda args, region: {
        "id": "pl-3b927c52", "name": args.get("name"), "addressFamily": "IPv4", "maxEntries": 55},
    # Created by CloudFront with the VPC's first VPC origin; the program only looks it up.
    "aws:ec2/getSecurityGroup:getSecurityGroup": lambda args, region: {
        "id": "sg-cloudfront-vpc-origins", "name": "CloudFront-VPCOrigins-Service-SG",
        "arn": f"arn:aws:ec2:{region}:{ACCOUNT}:security-group/sg-cloudfront-vpc-origins"},
    # us-east-1's Elastic Load Balancing account, which writes ALB access logs there.
    "aws:elb/getServiceAccount:getServiceAccount": lambda args, region: {
        "arn": "arn:aws:iam::127311923021:root", "id": "127311923021"},
    # The awslogsdelivery account's canonical id (the same in every commercial region).
    "aws:cloudfront/getLogDeliveryCanonicalUserId:getLogDeliveryCanonicalUserId": lambda args, region: {
        "id": "c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0"},
}


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self, region: str):
        self.region = region
        self.registered: dict[tuple[str, str], tuple[dict, dict, bool]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = _normalize(dict(args.inputs))
        physical_id = f"{args.name}-{hashlib.sha1(args.typ.encode()).hexdigest()[:6]}"
        if args.typ == "aws:iam/role:Role":  # an IAM role's id is its name (what RolePolicy.role holds)
            physical_id = inputs.get("name", args.name)
        outputs = dict(inputs)
        if args.custom and args.typ.startswith("aws:"):
            outputs.setdefault("arn", _arn(args.typ, args.name, self.region))
        if args.typ.startswith("kubernetes:") and args.custom:
            metadata = dict(outputs.get("metadata") or {})
            metadata.setdefault("name", args.name)
            outputs["metadata"] = metadata
        extra = COMPUTED.get(args.typ)
        if extra:
            outputs.update(extra(args.name, inputs, self.region))
        outputs["id"] = physical_id
        key = (args.typ, args.name)
        if key in self.registered:
            raise RuntimeError(f"two resources of type {args.typ} are both named {args.name!r}")
        self.registered[key] = (inputs, outputs, bool(args.custom))
        return physical_id, outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        handler = CALLS.get(args.token)
        if handler is None:
            raise NotImplementedError(f"no offline answer for data source {args.token}; "
                                      f"add one to toolkit.harness.CALLS")
        return handler(dict(args.args), self.region)


def _listed(depends_on: Any) -> list:
    """``depends_on`` as the program gave it: a list, one resource, or nothing."""
    if depends_on is None:
        return []
    return list(depends_on) if isinstance(depends_on, (list, tuple)) else [depends_on]


class _OptionsRecorder:
    """A stack transformation that records each resource's parent and options."""

    def __init__(self):
        self.by_object: dict[int, tuple[str, str]] = {}
        self.records: dict[tuple[str, str], dict] = {}

    def __call__(self, args: pulumi.ResourceTransformationArgs):
        key = (args.type_, args.name)
        self.by_object[id(args.resource)] = key
        opts = args.opts
        parent = self.by_object.get(id(opts.parent)) if opts.parent is not None else None
        provider = opts.provider
        if provider is None and opts.parent is not None:
            # Inherited the way the SDK resolves it: the parent's provider map, by package.
            provider = getattr(opts.parent, "_providers", {}).get(args.type_.split(":")[0])
        self.records[key] = {
            "parent": parent,
            "protect": opts.protect,
            "ignoreChanges": list(opts.ignore_changes or []),
            "retainOnDelete": bool(opts.retain_on_delete),
            "deleteBeforeReplace": bool(opts.delete_before_replace),
            "replaceOnChanges": list(opts.replace_on_changes or []),
            "additionalSecretOutputs": list(opts.additional_secret_outputs or []),
            "dependsOn": [self.by_object.get(id(d)) for d in _listed(opts.depends_on)
                          if not isinstance(d, pulumi.Output)],
            "provider": self.by_object.get(id(provider)) if provider is not None else None,
        }
        return None


def _urn(stack: str, chain: list[str], name: str) -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{'$'.join(chain)}::{name}"


def _resolve(value: Any) -> tuple[Any, bool]:
    out = pulumi.Output.from_input(value)
    return _normalize(_sync_await(out.future())), bool(_sync_await(out.is_secret()))


@contextlib.contextmanager
def _no_source_positions():
    """Skip the SDK's per-resource source position: each registration walks the Python stack and
    reads every frame's source line (pulumi/runtime/resource.py ``_get_stack_trace``, about a
    sixth of a stack's run here), for a ``sourcePosition`` the engine shows in errors and that the
    mocks drop (pulumi/runtime/mocks.py ``MockMonitor.RegisterResource`` hands ``new_resource``
    the type, name, inputs, provider, import id, custom flag and transforms only). Nothing the
    program declares depends on it."""
    from pulumi.runtime import resource as sdk_resource
    from pulumi.runtime.proto import source_pb2

    original = sdk_resource._get_stack_trace
    sdk_resource._get_stack_trace = source_pb2.StackTrace  # an empty trace: no position
    try:
        yield
    finally:
        sdk_resource._get_stack_trace = original


def run(fn: Callable[[], Any], *, stack: str = "test", config: dict[str, str] | None = None,
        secret_keys: list[str] | None = None, region: str = "us-east-1") -> Program:
    """Run ``fn`` as a Pulumi program under the SDK's mocks and return what it declared.

    Exceptions raised by the program (a ``pulumi.RunError`` for bad config) propagate unchanged.
    """
    config = dict(config or {})
    config.setdefault("aws:region", region)
    pulumi.runtime.settings.reset_options(project=PROJECT, stack=stack)
    pulumi.runtime.set_all_config(config, secret_keys or [])
    mocks = _Mocks(config["aws:region"])
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
    recorder = _OptionsRecorder()
    pulumi.runtime.register_stack_transformation(recorder)
    root = pulumi.runtime.settings.get_root_resource()

    try:
        with _no_source_positions():
            fn()
            _sync_await(pulumi.runtime.stack.wait_for_rpcs())
    except BaseException:
        # Let already-queued registrations finish so the error surfaces alone, without
        # "Task was destroyed but it is pending" noise from the SDK's event loop.
        with contextlib.suppress(Exception):
            _sync_await(pulumi.runtime.stack.wait_for_rpcs())
        raise

    outputs = {}
    assert isinstance(root, pulumi.runtime.stack.Stack)  # set_mocks creates the root stack
    for output, value in sorted(root.outputs.items()):
        resolved, secret = _resolve(value)
        outputs[output] = {SECRET_SIG: SECRET_SIG_VALUE, "value": resolved} if secret else resolved
    _sync_await(pulumi.runtime.stack.wait_for_rpcs())

    def chain(key: tuple[str, str]) -> list[str]:
        parent = recorder.records.get(key, {}).get("parent")
        return (chain(parent) if parent else []) + [key[0]]

    def urn(key: tuple[str, str]) -> str:
        return _urn(stack, chain(key), key[1])

    def effective_protect(key: tuple[str, str]) -> bool:
        record = recorder.records.get(key, {})
        if record.get("protect") is not None:
            return bool(record["protect"])
        return effective_protect(record["parent"]) if record.get("parent") else False

    resources = []
    for key, (inputs, state, custom) in mocks.registered.items():
        record = dict(recorder.records.get(key, {}))
        parent = record.pop("parent", None)
        record["protect"] = effective_protect(key)
        record["dependsOn"] = [urn(d) for d in record.get("dependsOn", []) if d]
        record["provider"] = urn(record["provider"]) if record.get("provider") else None
        resources.append(Resource(
            urn=urn(key), type=key[0], name=key[1], custom=custom, inputs=inputs,
            outputs=state, parent=urn(parent) if parent else None, options=record,
        ))
    resources.sort(key=lambda r: r.urn)
    return Program(stack=stack, resources=resources, outputs=outputs)


def run_stack(stack: str, overrides: dict[str, Any] | None = None,
              stacks_dir: Path | None = None) -> Program:
    """Run ``infra/`` exactly as ``pulumi up`` would, with ``stacks/Pulumi.<stack>.yaml``.

    ``overrides`` replaces whole config keys (``{"cofounder:network": {...}}``), for tests of
    bad or unusual configuration; values are encoded as the CLI encodes them.
    """
    from toolkit.stackfile import _encode

    stack_file = load_stack_file(stack, stacks_dir or STACKS_DIR)
    config = dict(stack_file.config)
    for key, value in (overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key], _ = _encode(value)
    program_dir = str(REPO / "infra")
    return run(lambda: runpy.run_path(program_dir, run_name="__main__"), stack=stack,
               config=config, secret_keys=stack_file.secret_keys,
               region=config.get("aws:region", "us-east-1"))
