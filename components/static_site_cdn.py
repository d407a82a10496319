"""StaticSiteCdn: the Next.js build served from CloudFront out of a private S3 bucket.

Three cache tiers, each a cache behavior with its own cache policy (how long the edge keeps a
file) and response headers policy (the ``Cache-Control`` the browser gets, plus the security
headers):

- ``_next/static/*``: content-hashed bundles; a changed file gets a new name, so browser and edge
  keep them for a year (``immutable``).
- ``public/*``: files from ``public/`` keep their names across deploys, so one day, then
  ``stale-while-revalidate`` lets the browser show the old copy while it fetches the new one.
- everything else (HTML): the edge keeps it 60 seconds; browsers revalidate on every visit
  (``max-age=0``) because an invalidation after a deploy can clear the edge but never a
  browser, and stale HTML points at bundles of the previous build.

``Cache-Control`` comes from the response headers policy, so uploaded objects need no metadata;
the edge TTL comes from the cache policy's default TTL (S3 sends no caching headers).

The bucket is private: all four public access block settings, ACLs disabled
(BucketOwnerEnforced), encrypted, versioned with noncurrent versions expiring, and a bucket
policy that lets exactly this distribution read objects through Origin Access Control and
refuses any request without TLS. Access logs go to a separate bucket (CloudFront standard
logging needs ACLs there). Optionally ``/api/*`` goes uncached to an HTTPS app origin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_aws as aws

from components import ComponentArgsError

#: AWS-managed policies (ids are global and fixed; see the CloudFront developer guide,
#: "Use managed cache policies" and "Use managed origin request policies").
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

STATIC_PATH = "_next/static/*"
PUBLIC_PATH = "public/*"
API_PATH = "api/*"
S3_ORIGIN_ID = "s3-assets"
API_ORIGIN_ID = "app-api"

_DAY = 86_400
_YEAR = 31_536_000

# Next.js exports /about as about.html (or about/index.html with trailingSlash); S3 has no
# index documents behind OAC, so the HTML behavior maps extension-less paths to those keys.
HTML_REWRITE_JS = """\
function handler(event) {
  var request = event.request;
  var uri = request.uri;
  if (uri.charAt(uri.length - 1) === '/') {
    request.uri = uri + 'index.html';
  } else if (uri.lastIndexOf('.') < uri.lastIndexOf('/')) {
    request.uri = uri + '.html';
  }
  return request;
}
"""


@dataclass(frozen=True, kw_only=True)
class CacheTier:
    """How long the edge and the browser keep one kind of file. All values in seconds."""

    #: Edge TTL bounds; the edge uses ``default_ttl_seconds`` because S3 sends no Cache-Control.
    min_ttl_seconds: int
    default_ttl_seconds: int
    max_ttl_seconds: int
    #: ``max-age`` in the Cache-Control header the browser receives.
    browser_max_age_seconds: int
    #: ``s-maxage`` for shared caches between CloudFront and the viewer; None leaves it out.
    shared_max_age_seconds: int | None = None
    #: ``stale-while-revalidate``; 0 leaves it out.
    stale_while_revalidate_seconds: int = 0
    #: Add ``immutable`` (only for content-hashed file names).
    immutable: bool = False

    @property
    def cache_control(self) -> str:
        parts = ["public", f"max-age={self.browser_max_age_seconds}"]
        if self.shared_max_age_seconds is not None:
            parts.append(f"s-maxage={self.shared_max_age_seconds}")
        if self.stale_while_revalidate_seconds:
            parts.append(f"stale-while-revalidate={self.stale_while_revalidate_seconds}")
        if self.immutable:
            parts.append("immutable")
        return ", ".join(parts)


STATIC_ASSETS = CacheTier(min_ttl_seconds=_DAY, default_ttl_seconds=_YEAR, max_ttl_seconds=_YEAR,
                          browser_max_age_seconds=_YEAR, immutable=True)
PUBLIC_ASSETS = CacheTier(min_ttl_seconds=0, default_ttl_seconds=_DAY, max_ttl_seconds=_DAY,
                          browser_max_age_seconds=_DAY, stale_while_revalidate_seconds=7 * _DAY)
HTML = CacheTier(min_ttl_seconds=0, default_ttl_seconds=60, max_ttl_seconds=60,
                 browser_max_age_seconds=0, shared_max_age_seconds=60)


@dataclass(frozen=True, kw_only=True)
class StaticSiteCdnArgs:
    """Inputs of StaticSiteCdn. Defaults are production-safe."""

    #: PriceClass_100 (North America, Europe), PriceClass_200 (+ most of Asia) or PriceClass_All.
    price_class: str = "PriceClass_All"
    #: Custom domain names; needs ``acm_certificate_arn``. Empty: the *.cloudfront.net name only.
    aliases: Sequence[str] = ()
    #: ACM certificate in us-east-1 covering ``aliases`` (served SNI-only, TLSv1.2_2021 minimum).
    acm_certificate_arn: str | None = None
    #: Host name of the app behind ``/api/*`` (HTTPS only, never cached); None: no API behavior.
    api_origin_domain: str | None = None
    #: Days an overwritten or deleted object version is kept (rollback window).
    noncurrent_version_expiration_days: int = 30
    #: Days access logs are kept.
    log_retention_days: int = 90
    #: HSTS max-age; two years satisfies the browser preload lists.
    hsts_max_age_seconds: int = 63_072_000
    #: Pulumi ``protect`` on both buckets (deleting them needs an explicit unprotect).
    protect: bool = True
    #: Let ``pulumi destroy`` empty non-empty buckets (for throwaway stacks only).
    force_destroy: bool = False
    static_assets: CacheTier = STATIC_ASSETS
    public_assets: CacheTier = PUBLIC_ASSETS
    html: CacheTier = HTML
    tags: dict[str, str] = field(default_factory=dict)


def bucket_policy(bucket_arn: str, distribution_arn: str) -> str:
    """Read access for one distribution through OAC, and no access at all without TLS."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowCloudFrontDistributionRead",
                "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": "s3:GetObject",
                "Resource": f"{bucket_arn}/*",
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
            },
            deny_insecure_transport(bucket_arn),
        ],
    })


def deny_insecure_transport(bucket_arn: str) -> dict:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


class StaticSiteCdn(pulumi.ComponentResource):
    """CloudFront over a private, versioned S3 bucket with three cache tiers and access logs."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    log_bucket_name: pulumi.Output[str]
    distribution_id: pulumi.Output[str]
    distribution_arn: pulumi.Output[str]
    domain_name: pulumi.Output[str]
    hosted_zone_id: pulumi.Output[str]

    def __init__(self, name: str, args: StaticSiteCdnArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:edge:StaticSiteCdn", name, None, opts)
        if bool(args.aliases) != bool(args.acm_certificate_arn):
            raise ComponentArgsError(f"{name}: aliases and acm_certificate_arn go together (a custom domain needs its "
                                     f"certificate); got aliases={list(args.aliases)}, acm_certificate_arn={args.acm_certificate_arn}")
        child = pulumi.ResourceOptions(parent=self)
        tags = {**args.tags, "component": "edge"}

        bucket, access_block, _ = self._private_bucket(f"{name}-assets", "BucketOwnerEnforced", args, tags)
        versioning = aws.s3.BucketVersioning(
            f"{name}-assets",
            bucket=bucket.bucket,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-assets",
            bucket=bucket.bucket,
            rules=[{
                "id": "expire-noncurrent-versions",
                "status": "Enabled",
                "filter": {},
                "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_expiration_days},
                "expiration": {"expired_object_delete_marker": True},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        log_bucket, log_acl = self._log_bucket(f"{name}-logs", args, tags)

        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            description=f"{name}: CloudFront reads the assets bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        rewrite = aws.cloudfront.Function(
            f"{name}-html-rewrite",
            runtime="cloudfront-js-2.0",
            comment="Map extension-less paths to the exported .html / index.html keys",
            code=HTML_REWRITE_JS,
            publish=True,
            opts=child,
        )

        tiers = {"static": args.static_assets, "public": args.public_assets, "html": args.html}
        cache_ids = {role: self._cache_policy(f"{name}-{role}", tier).id for role, tier in tiers.items()}
        header_ids = {role: self._headers_policy(f"{name}-{role}", args, tier.cache_control).id
                      for role, tier in tiers.items()}

        def s3_behavior(role: str, path_pattern: str | None) -> dict:
            behavior = {
                "target_origin_id": S3_ORIGIN_ID,
                "viewer_protocol_policy": "redirect-to-https",
                "allowed_methods": ["GET", "HEAD"],
                "cached_methods": ["GET", "HEAD"],
                "compress": True,
                "cache_policy_id": cache_ids[role],
                "response_headers_policy_id": header_ids[role],
            }
            return {**behavior, "path_pattern": path_pattern} if path_pattern else behavior

        origins = [{
            "origin_id": S3_ORIGIN_ID,
            "domain_name": bucket.bucket_regional_domain_name,
            "origin_access_control_id": oac.id,
        }]
        ordered = []
        if args.api_origin_domain:
            origins.append({
                "origin_id": API_ORIGIN_ID,
                "domain_name": args.api_origin_domain,
                "custom_origin_config": {
                    "http_port": 80,
                    "https_port": 443,
                    "origin_protocol_policy": "https-only",
                    "origin_ssl_protocols": ["TLSv1.2"],
                },
            })
            ordered.append({
                "path_pattern": API_PATH,
                "target_origin_id": API_ORIGIN_ID,
                # A redirect would turn a POST into a GET and drop its body: refuse plain HTTP.
                "viewer_protocol_policy": "https-only",
                "allowed_methods": ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"],
                "cached_methods": ["GET", "HEAD"],
                "compress": True,
                "cache_policy_id": CACHING_DISABLED_POLICY_ID,
                "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID,
                "response_headers_policy_id": self._headers_policy(f"{name}-api", args, None).id,
            })
        ordered += [s3_behavior("static", STATIC_PATH), s3_behavior("public", PUBLIC_PATH)]
        default = {**s3_behavior("html", None),
                   "function_associations": [{"event_type": "viewer-request", "function_arn": rewrite.arn}]}

        if args.aliases:
            certificate = {"acm_certificate_arn": args.acm_certificate_arn, "ssl_support_method": "sni-only",
                           "minimum_protocol_version": "TLSv1.2_2021"}
        else:
            certificate = {"cloudfront_default_certificate": True}

        distribution = aws.cloudfront.Distribution(
            f"{name}-distribution",
            enabled=True,
            comment=f"{name}: Next.js static assets and pages",
            aliases=list(args.aliases) or None,
            price_class=args.price_class,
            http_version="http2and3",
            is_ipv6_enabled=True,
            default_root_object="index.html",
            origins=origins,
            default_cache_behavior=default,
            ordered_cache_behaviors=ordered,
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate=certificate,
            logging_config={"bucket": log_bucket.bucket_domain_name, "prefix": "cloudfront/",
                            "include_cookies": False},
            tags=tags,
            # CloudFront checks the log bucket's ACL when logging is switched on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_acl]),
        )

        aws.s3.BucketPolicy(
            f"{name}-assets",
            bucket=bucket.bucket,
            policy=pulumi.Output.all(bucket.arn, distribution.arn).apply(lambda v: bucket_policy(v[0], v[1])),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )

        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.log_bucket_name = log_bucket.bucket
        self.distribution_id = distribution.id
        self.distribution_arn = distribution.arn
        self.domain_name = distribution.domain_name
        self.hosted_zone_id = distribution.hosted_zone_id
        self.register_outputs({
            "bucket_name": self.bucket_name,
            "log_bucket_name": self.log_bucket_name,
            "distribution_id": self.distribution_id,
            "domain_name": self.domain_name,
        })

    def _private_bucket(self, name: str, object_ownership: str, args: StaticSiteCdnArgs,
                        tags: dict) -> tuple[aws.s3.Bucket, aws.s3.BucketPublicAccessBlock,
                                             aws.s3.BucketOwnershipControls]:
        """A bucket with public access blocked, the given object ownership and SSE-S3."""
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            name,
            force_destroy=args.force_destroy,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        access_block = aws.s3.BucketPublicAccessBlock(
            name,
            bucket=bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        ownership = aws.s3.BucketOwnershipControls(
            name,
            bucket=bucket.bucket,
            rule={"object_ownership": object_ownership},
            opts=child,
        )
        # SSE-S3: CloudFront (OAC) and log delivery need no KMS key grants to use it.
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=bucket.bucket,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child,
        )
        return bucket, access_block, ownership

    def _log_bucket(self, name: str, args: StaticSiteCdnArgs, tags: dict) -> tuple[aws.s3.Bucket, aws.s3.BucketAcl]:
        """CloudFront standard logging writes through the awslogsdelivery account's ACL grant."""
        child = pulumi.ResourceOptions(parent=self)
        bucket, access_block, ownership = self._private_bucket(name, "BucketOwnerPreferred", args, tags)
        invoke = pulumi.InvokeOptions(parent=self)
        owner = aws.s3.get_canonical_user_id_output(opts=invoke)
        log_delivery = aws.cloudfront.get_log_delivery_canonical_user_id_output(opts=invoke)
        # Declared in full: CloudFront would add the awslogsdelivery grant itself, and the next
        # `pulumi up` would otherwise remove it again.
        acl = aws.s3.BucketAcl(
            name,
            bucket=bucket.bucket,
            access_control_policy={
                "owner": {"id": owner.id},
                "grants": [
                    {"grantee": {"type": "CanonicalUser", "id": owner.id}, "permission": "FULL_CONTROL"},
                    {"grantee": {"type": "CanonicalUser", "id": log_delivery.id}, "permission": "FULL_CONTROL"},
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[ownership]),
        )
        # Access logs are audit evidence: versioning keeps a deleted or overwritten log
        # recoverable (policy s3-bucket-versioned); old versions expire with the logs' retention.
        versioning = aws.s3.BucketVersioning(
            name,
            bucket=bucket.bucket,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=bucket.bucket,
            rules=[{
                "id": "expire-logs",
                "status": "Enabled",
                "filter": {},
                "expiration": {"days": args.log_retention_days},
                "noncurrent_version_expiration": {"noncurrent_days": args.noncurrent_version_expiration_days},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
            }],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            name,
            bucket=bucket.bucket,
            policy=bucket.arn.apply(lambda arn: json.dumps({
                "Version": "2012-10-17", "Statement": [deny_insecure_transport(arn)]})),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access_block]),
        )
        return bucket, acl

    def _cache_policy(self, name: str, tier: CacheTier) -> aws.cloudfront.CachePolicy:
        # Cache key: path only (plus the compression encoding); the files vary by nothing else.
        return aws.cloudfront.CachePolicy(
            name,
            comment=f"{name}: edge TTL {tier.default_ttl_seconds}s",
            min_ttl=tier.min_ttl_seconds,
            default_ttl=tier.default_ttl_seconds,
            max_ttl=tier.max_ttl_seconds,
            parameters_in_cache_key_and_forwarded_to_origin={
                "cookies_config": {"cookie_behavior": "none"},
                "headers_config": {"header_behavior": "none"},
                "query_strings_config": {"query_string_behavior": "none"},
                "enable_accept_encoding_brotli": True,
                "enable_accept_encoding_gzip": True,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _headers_policy(self, name: str, args: StaticSiteCdnArgs,
                        cache_control: str | None) -> aws.cloudfront.ResponseHeadersPolicy:
        """Security headers on every response; Cache-Control too unless the origin decides."""
        custom = None
        if cache_control is not None:
            custom = {"items": [{"header": "Cache-Control", "value": cache_control, "override": True}]}
        return aws.cloudfront.ResponseHeadersPolicy(
            name,
            comment=f"{name}: security headers" + (f", Cache-Control {cache_control}" if cache_control else ""),
            custom_headers_config=custom,
            security_headers_config={
                "strict_transport_security": {"access_control_max_age_sec": args.hsts_max_age_seconds,
                                              "include_subdomains": True, "preload": True, "override": True},
                "content_type_options": {"override": True},
                "frame_options": {"frame_option": "DENY", "override": True},
                "referrer_policy": {"referrer_policy": "strict-origin-when-cross-origin", "override": True},
                "xss_protection": {"protection": True, "mode_block": True, "override": True},
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
