"""The edge: the CloudFront distribution in front of everything, and the S3 buckets behind it.

In pulumi-aws 7 a bucket's public access block, encryption and versioning are separate
resources, so those rules are stack rules: every ``aws:s3/bucket:Bucket`` needs its companions.
A companion belongs to a bucket when its ``bucket`` input is the bucket's id or name, or (in a
preview, where a new bucket's id is still unknown) when its ``bucket`` property depends on it.
"""

from __future__ import annotations

import re

from cofounder_policies.rules import MANDATORY, get, items, of_type, resource_rule, stack_rule
from cofounder_policies.settings import setting

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
              "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
BLOCK_SETTINGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
_S3_DOMAIN = re.compile(r"\.s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?$")
#: The managed CachingDisabled cache policy (CloudFront developer guide, "Use managed cache policies").
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
REQUIRED = {"required": {"type": "boolean", "default": True,
                         "description": "Whether this stack requires the setting (false in dev)"}}
_TLS_ORDER = ["SSLv3", "TLSv1", "TLSv1_2016", "TLSv1.1_2016", "TLSv1.2_2018", "TLSv1.2_2019",
              "TLSv1.2_2021", "TLSv1.2_2025", "TLSv1.3_2025"]


def _companions(resources, types):
    """Bucket URN -> the companion resources of ``types`` attached to it."""
    buckets = of_type(resources, *BUCKETS)
    by_key = {}
    for b in buckets:
        for key in (get(b.props, "id"), get(b.props, "bucket")):
            if key:
                by_key[key] = b.urn
    found: dict[str, list] = {b.urn: [] for b in buckets}
    for c in of_type(resources, *types):
        urns = {d.urn for d in (c.property_dependencies or {}).get("bucket", [])} & set(found)
        if not urns and get(c.props, "bucket") in by_key:
            urns = {by_key[get(c.props, "bucket")]}
        for urn in urns:
            found[urn].append(c)
    return found


def _public_access_blocked(resources, settings):
    for urn, blocks in _companions(resources, PUBLIC_ACCESS_BLOCK).items():
        if not blocks:
            yield "the bucket has no BucketPublicAccessBlock", urn
        for block in blocks:
            off = [s for s in BLOCK_SETTINGS if get(block.props, s) is not True]
            if off:
                yield f"its BucketPublicAccessBlock does not set {off} to true", urn


def _encrypted(resources, settings):
    for urn, configs in _companions(resources, ENCRYPTION).items():
        algorithms = [get(rule, "applyServerSideEncryptionByDefault.sseAlgorithm")
                      for c in configs for rule in items(get(c.props, "rules"))]
        if not any(algorithms):
            yield "the bucket has no BucketServerSideEncryptionConfiguration with an sseAlgorithm", urn


def _versioned(resources, settings):
    for urn, versionings in _companions(resources, VERSIONING).items():
        if not any(get(v.props, "versioningConfiguration.status") == "Enabled" for v in versionings):
            yield "the bucket has no BucketVersioning with status 'Enabled'", urn


def _behaviors(props):
    default = get(props, "defaultCacheBehavior")
    return ([("defaultCacheBehavior", default)] if default else []) + [
        (f"orderedCacheBehaviors[{i}] ({get(b, 'pathPattern')})", b)
        for i, b in enumerate(items(get(props, "orderedCacheBehaviors")))]


def _https_only(props, settings):
    for where, behavior in _behaviors(props):
        if get(behavior, "viewerProtocolPolicy") not in ("redirect-to-https", "https-only"):
            yield f"{where} has viewerProtocolPolicy {get(behavior, 'viewerProtocolPolicy')!r}"


def _on_default_certificate(props) -> bool:
    """Whether viewers get CloudFront's *.cloudfront.net certificate (no ACM or IAM certificate)."""
    cert = get(props, "viewerCertificate", {})
    return not (get(cert, "acmCertificateArn") or get(cert, "iamCertificateId"))


def _custom_certificate(props, settings):
    if _on_default_certificate(props) and not settings["allowDefaultCertificate"]:
        yield ("viewerCertificate is CloudFront's default *.cloudfront.net certificate, on which CloudFront "
               "negotiates TLSv1 with viewers whatever minimumProtocolVersion says")


def _tls_minimum(props, settings):
    cert = get(props, "viewerCertificate", {})
    if _on_default_certificate(props):
        return  # CloudFront fixes the policy at TLSv1 there: cloudfront-distribution-custom-certificate's case
    minimum, actual = settings["minimumProtocolVersion"], get(cert, "minimumProtocolVersion")
    rank = {v: i for i, v in enumerate(_TLS_ORDER)}
    if actual not in rank or rank[actual] < rank.get(minimum, 0):
        yield f"viewerCertificate.minimumProtocolVersion is {actual!r}, below {minimum}"


def _origin_access_control(props, settings):
    for origin in items(get(props, "origins")):
        domain = str(get(origin, "domainName", ""))
        is_s3 = get(origin, "s3OriginConfig") is not None or bool(_S3_DOMAIN.search(domain))
        if is_s3 and not get(origin, "originAccessControlId"):
            yield f"S3 origin {get(origin, 'originId')!r} has no originAccessControlId"


def _api_not_cached(props, settings):
    for where, behavior in _behaviors(props):
        pattern = str(get(behavior, "pathPattern", "")).lstrip("/")
        if pattern.startswith("api/") and get(behavior, "cachePolicyId") != CACHING_DISABLED:
            yield (f"{where} caches API responses: cachePolicyId is {get(behavior, 'cachePolicyId')!r}, "
                   f"not the managed CachingDisabled policy")


def _waf_attached(props, settings):
    if settings["required"] and not get(props, "webAclId"):
        yield "the distribution has no WAF web ACL (webAclId) and this stack requires one"


def _waf_logged(resources, settings):
    logged, arns = set(), set()
    for config in of_type(resources, WAF_LOGGING):
        logged |= {d.urn for d in (config.property_dependencies or {}).get("resourceArn", [])}
        arns.add(get(config.props, "resourceArn"))
    for acl in of_type(resources, WEB_ACL):
        if acl.urn not in logged and (get(acl.props, "arn") or acl.urn) not in arns:
            yield ("the web ACL has no WebAclLoggingConfiguration: WAF keeps only sampled requests, for three "
                   "hours"), acl.urn


POLICIES = [
    stack_rule(
        "s3-bucket-public-access-blocked",
        "No bucket may become public through an ACL or a bucket policy. Fix: add an "
        "aws.s3.BucketPublicAccessBlock for the bucket with blockPublicAcls, blockPublicPolicy, "
        "ignorePublicAcls and restrictPublicBuckets all true.",
        MANDATORY, _public_access_blocked),
    stack_rule(
        "s3-bucket-encrypted",
        "Objects must be encrypted at rest with an explicit, reviewable setting. Fix: add an "
        "aws.s3.BucketServerSideEncryptionConfiguration with a rule applying sseAlgorithm "
        "'AES256' or 'aws:kms'.",
        MANDATORY, _encrypted),
    stack_rule(
        "s3-bucket-versioned",
        "Versioning keeps overwritten or deleted objects recoverable (a bad deploy of static "
        "assets can be rolled back). Fix: add an aws.s3.BucketVersioning with "
        "versioningConfiguration.status 'Enabled'.",
        MANDATORY, _versioned),
    resource_rule(
        "cloudfront-distribution-https-only",
        "Viewers must never be served over plain HTTP. Fix: set viewerProtocolPolicy "
        "'redirect-to-https' (or 'https-only') on the default and every ordered cache behavior.",
        MANDATORY, [DISTRIBUTION], _https_only),
    resource_rule(
        "cloudfront-distribution-tls-minimum",
        "With a custom certificate, viewers must negotiate a modern TLS version (on the default "
        "certificate CloudFront allows TLSv1 whatever is set: cloudfront-distribution-custom-certificate). "
        "Fix: set viewerCertificate.minimumProtocolVersion to the stack's minimum (TLSv1.2_2021) with "
        "sslSupportMethod 'sni-only'.",
        MANDATORY, [DISTRIBUTION], _tls_minimum,
        config={"minimumProtocolVersion": {"type": "string", "enum": _TLS_ORDER, "default": "TLSv1.2_2021",
                                           "description": "Oldest CloudFront security policy allowed"}}),
    resource_rule(
        "cloudfront-distribution-custom-certificate",
        "On CloudFront's default *.cloudfront.net certificate, CloudFront sets the viewer security "
        "policy to TLSv1 whatever minimumProtocolVersion says (CloudFront API reference, "
        "ViewerCertificate), so browsers may still connect with TLS 1.0 and 1.1; only a certificate of "
        "your own lifts the minimum (AWS Foundational Security Best Practices CloudFront.7). Fix: an ACM "
        "certificate in us-east-1 (DNS validation) for your domain, then cofounder:edge.aliases and "
        "cofounder:edge.acmCertificateArn (docs/front-door.md). A stack that must run on the "
        "*.cloudfront.net name meanwhile says so with cofounder:edge.allowDefaultCertificate: true, "
        "which the stack's pack config carries (make docs).",
        MANDATORY, [DISTRIBUTION], _custom_certificate,
        config={"allowDefaultCertificate": setting("edge.allowDefaultCertificate")}),
    resource_rule(
        "cloudfront-s3-origin-access-control",
        "An S3 origin must be read by CloudFront through Origin Access Control, so the bucket can "
        "stay private. Fix: create an aws.cloudfront.OriginAccessControl (signingBehavior 'always', "
        "signingProtocol 'sigv4'), set originAccessControlId on the origin, and allow the "
        "distribution in the bucket policy.",
        MANDATORY, [DISTRIBUTION], _origin_access_control),
    resource_rule(
        "cloudfront-api-not-cached",
        "API responses are per user and per request: an edge cache on /api/* would serve one "
        "user's data to another. Fix: the /api/* behavior uses the managed CachingDisabled cache "
        "policy (4135ea2d-6df8-44a3-9df3-4b5a84be39ad) with the AllViewerExceptHostHeader origin "
        "request policy.",
        MANDATORY, [DISTRIBUTION], _api_not_cached),
    resource_rule(
        "cloudfront-waf-attached",
        "Where the stack requires it (staging, prod), a WAF web ACL with the AWS managed rule sets "
        "and the /api/* rate limit screens every request before it reaches the apps. Fix: "
        "cofounder:waf.enabled true (components/web_acl.py attaches it through webAclId).",
        MANDATORY, [DISTRIBUTION], _waf_attached, config=REQUIRED),
    stack_rule(
        "wafv2-web-acl-logging-enabled",
        "Every WAF web ACL sends its full request logs somewhere they are kept (AWS FSBP WAF.11); without "
        "them a blocked or allowed attack leaves only WAF's sampled requests of the last three hours. The "
        "log group's retention is cloudwatch-log-group-retention's. Fix: cofounder:waf.logRetentionDays "
        "above 0 (components/web_acl.py then declares the log group and the logging configuration).",
        MANDATORY, _waf_logged),
]
