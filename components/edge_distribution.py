"""EdgeDistribution: CloudFront in front of everything the browser asks for.

One distribution, one hostname, four kinds of request, each a cache behaviour (first match wins):

| path              | origin                                  | edge cache                          |
|-------------------|-----------------------------------------|-------------------------------------|
| ``api/*``         | the backend, through the ALB's VPC origin | never (managed CachingDisabled)   |
| ``_next/static/*``| the private assets bucket (OAC)         | 1 year, ``immutable``               |
| ``public/*``      | the private assets bucket (OAC)         | 1 day + ``stale-while-revalidate``  |
| everything else   | the frontend, through the ALB's VPC origin | 60 s unless the app says otherwise |

HTML (the default behaviour) comes from the Next.js frontend, server-rendered or ISR. Its cache
policy keeps a page 60 s at the edge when the app sends no caching header and otherwise honours
the app's ``Cache-Control`` (``s-maxage``, ``max-age``, ``private``, ``no-store``) between 0 s and
``pages.maxTtlSeconds``; CloudFront never caches a response marked ``private``/``no-store``
while the minimum TTL is 0. The cache key holds the path, every query string and the headers
Next.js varies its App Router responses on (``RSC``, ``Next-Router-*``, ``Next-Url``); it holds
no cookie. Cookies still reach the app (the origin request policy forwards every viewer header,
cookie and query string except ``Host``), so the contract is: a page rendered per user must say
``Cache-Control: private`` (Next.js does for dynamic rendering, i.e. any page reading
``cookies()`` or ``headers()``), and everything the edge may share is the same for every user.
A cache key holding the session cookie would cache nothing at all, one copy per visitor.

The apps see the viewer's host: CloudFront sends the ALB's name as ``Host`` (the origin's
domain name, which the VPC origin needs), so a viewer-request function on the pages and API
behaviours copies the viewer's ``Host`` into ``X-Forwarded-Host``, overwriting whatever the
viewer sent there. Next.js takes the host from ``X-Forwarded-Host`` before ``Host`` when it
checks a Server Action's ``Origin`` and builds redirects, so both work behind the front door
with no ``serverActions.allowedOrigins`` (docs/front-door.md, "What the app sees").

``/api/*`` goes to the backend uncached, all methods, with every viewer header but ``Host``,
over HTTPS only (a redirect would turn a POST into a GET). Real-time updates are server-sent
events on ``/api/events`` (a long GET stream under the same behaviour); the origin read timeout
(``apiOriginReadTimeoutSeconds``, 60 s) is also the longest silence allowed between two bytes,
so the backend sends a heartbeat comment at least every 15 s. The managed CachingDisabled
policy disables compression, so a stream is never buffered at the edge.

Both app origins are the internal ALB reached through a CloudFront VPC origin
(``components/app_load_balancer.py``): the ALB has no public address, and nothing but CloudFront
can reach it. With ``htmlOrigin: s3`` a stack serves a static export instead (``next build``
with ``output: 'export'``): HTML from the bucket, 60 s at the edge, with a viewer-request
function mapping ``/about`` to ``about.html``; ``/api/*`` still goes to the backend. A missing
page there is the export's ``404.html`` with status 404: the distribution may list the bucket
(through OAC, like its reads), so S3 answers 404 rather than 403 for a missing key, and a custom
error response serves the 404 page for it.

Response headers policies add the security headers everywhere; for the bucket tiers they also
set the browser's ``Cache-Control`` (uploaded objects need no metadata). The app's responses
keep the ``Cache-Control`` the app sends. Access logs go to a separate bucket (CloudFront
standard logging needs ACLs there). An optional WAF web ACL (``components/web_acl.py``) is
attached by ARN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

import pulumi
import pulumi_aws as aws

from components import Between, Matches, require_valid
from components.private_bucket import PrivateBucket, private_bucket, tls_only_policy

#: AWS-managed policies (ids are global and fixed; see the CloudFront developer guide,
#: "Use managed cache policies" and "Use managed origin request policies").
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID = "b689b0a8-53d0-40ab-baf2-68738e2966ac"

STATIC_PATH = "_next/static/*"
PUBLIC_PATH = "public/*"
API_PATH = "api/*"
#: The server-sent events stream of real-time updates (backend, under API_PATH).
EVENTS_PATH = "/api/events"
S3_ORIGIN_ID = "s3-assets"
PAGES_ORIGIN_ID = "app-pages"
API_ORIGIN_ID = "app-api"
#: Request headers the Next.js App Router varies a page's response on (RSC payload or HTML);
#: CloudFront ignores ``Vary``, so they are part of the pages' cache key.
NEXT_CACHE_KEY_HEADERS = ("RSC", "Next-Router-Prefetch", "Next-Router-State-Tree",
                          "Next-Router-Segment-Prefetch", "Next-Url")
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]

_DAY = 86_400
_YEAR = 31_536_000
_TTL = Annotated[int, Between(0, _YEAR)]
_HOSTNAME = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
#: CloudFront uses certificates from us-east-1 only.
ACM_US_EAST_1 = r"arn:aws:acm:us-east-1:\d{12}:certificate/[0-9a-f-]{36}"

#: The viewer's host for the app (viewer-request, pages and API behaviours). CloudFront sends the
#: origin's name as Host, so the app would see the ALB's internal name; Next.js reads
#: x-forwarded-host first (Server Actions' Origin check, redirects). Always overwritten: a host a
#: viewer puts there itself must never reach the app. The header reaches the origin because the
#: behaviours' origin request policy (AllViewerExceptHostHeader) forwards every viewer header but
#: Host, and a header a viewer-request function sets is part of the viewer request from then on: AWS
#: requires such a header to be in the origin request policy ("Add a True-Client-IP header to the
#: request", CloudFront developer guide, awsdocs/amazon-cloudfront-developer-guide
#: doc_source/example-function-add-true-client-ip-header.md); SST's Next.js sites run this same pair
#: (sst/v2@b695177b packages/sst/src/constructs/SsrSite.ts: useCloudFrontFunctionHostHeaderInjection
#: with the managed AllViewerExceptHostHeader policy).
VIEWER_HOST_JS = """\
function handler(event) {
  var request = event.request;
  var host = request.headers.host;
  if (host && host.value) {
    request.headers['x-forwarded-host'] = {value: host.value};
  } else {
    delete request.headers['x-forwarded-host'];
  }
  return request;
}
"""
#: The page a static export (``output: 'export'``) writes for a path it has no page for.
NOT_FOUND_PAGE = "/404.html"

# Next.js exports /about as about.html (or about/index.html with trailingSlash); S3 has no
# index documents behind OAC, so in static-export mode the HTML behaviour maps extension-less
# paths to those keys.
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
    """How long the edge and the browser keep one kind of file from the bucket. All in seconds."""

    #: Shortest the edge keeps a file, whatever the origin says.
    min_ttl_seconds: _TTL = 0
    #: Edge TTL; it applies because S3 sends no Cache-Control.
    default_ttl_seconds: _TTL = 60
    #: Longest the edge keeps a file.
    max_ttl_seconds: _TTL = 60
    #: ``max-age`` sent to the browser.
    browser_max_age_seconds: _TTL = 0
    #: ``s-maxage`` for shared caches downstream of CloudFront; omitted when not set.
    shared_max_age_seconds: Annotated[int | None, Between(0, _YEAR)] = None
    #: ``stale-while-revalidate``; 0 omits it.
    stale_while_revalidate_seconds: _TTL = 0
    #: ``immutable`` (content-hashed file names only).
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

    def checks(self):
        if self.min_ttl_seconds > self.max_ttl_seconds:
            yield "min_ttl_seconds", self.min_ttl_seconds, f"at most maxTtlSeconds ({self.max_ttl_seconds})"
        elif not self.min_ttl_seconds <= self.default_ttl_seconds <= self.max_ttl_seconds:
            yield ("default_ttl_seconds", self.default_ttl_seconds,
                   f"between minTtlSeconds ({self.min_ttl_seconds}) and maxTtlSeconds ({self.max_ttl_seconds})")


@dataclass(frozen=True, kw_only=True)
class StaticAssetsCache(CacheTier):
    """``_next/static/*``: content-hashed, immutable for a year."""

    min_ttl_seconds: _TTL = _DAY
    #: Edge TTL (S3 sends no Cache-Control, so this one applies).
    default_ttl_seconds: _TTL = _YEAR
    #: Longest the edge keeps a file.
    max_ttl_seconds: _TTL = _YEAR
    browser_max_age_seconds: _TTL = _YEAR
    immutable: bool = True


@dataclass(frozen=True, kw_only=True)
class PublicAssetsCache(CacheTier):
    """``public/*``: stable names, one day, then served stale while the browser revalidates."""

    #: Edge TTL (S3 sends no Cache-Control, so this one applies).
    default_ttl_seconds: _TTL = _DAY
    #: Longest the edge keeps a file.
    max_ttl_seconds: _TTL = _DAY
    browser_max_age_seconds: _TTL = _DAY
    stale_while_revalidate_seconds: _TTL = 7 * _DAY


@dataclass(frozen=True, kw_only=True)
class HtmlCache(CacheTier):
    """Static-export HTML (``htmlOrigin: s3``): 60 s at the edge, browsers revalidate every time."""

    shared_max_age_seconds: Annotated[int | None, Between(0, _YEAR)] = 60


@dataclass(frozen=True, kw_only=True)
class PagesCache:
    """Server-rendered HTML (``htmlOrigin: app``): the app's Cache-Control, bounded here."""

    #: Edge TTL when the app sends no Cache-Control (the seed's 60 s for HTML).
    default_ttl_seconds: _TTL = 60
    #: Longest the edge keeps a page, whatever s-maxage the app sends (ISR pages send theirs).
    max_ttl_seconds: _TTL = _DAY

    def checks(self):
        if self.default_ttl_seconds > self.max_ttl_seconds:
            yield ("default_ttl_seconds", self.default_ttl_seconds,
                   f"at most maxTtlSeconds ({self.max_ttl_seconds})")


@dataclass(frozen=True, kw_only=True)
class EdgeSettings:
    """``cofounder:edge``: the CloudFront distribution. Defaults are production-safe."""

    #: Build the edge at all (without it nothing outside the VPC reaches the apps).
    enabled: bool = True
    #: Edge locations paid for: PriceClass_100 (North America, Europe), _200 (+ most of Asia) or _All.
    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = "PriceClass_All"
    #: Custom domain names of the distribution; empty uses the *.cloudfront.net name only.
    aliases: list[Annotated[str, Matches(r"(\*\.)?" + _HOSTNAME,
                                         "a domain name such as www.example.com or *.example.com")]] = \
        field(default_factory=list)
    #: ACM certificate in us-east-1 covering the aliases (served SNI-only, TLSv1.2_2021 minimum).
    acm_certificate_arn: Annotated[str | None, Matches(
        ACM_US_EAST_1, "an ACM certificate ARN in us-east-1 (CloudFront only uses certificates from us-east-1), "
        "such as arn:aws:acm:us-east-1:123456789012:certificate/<uuid>")] = None
    #: Accept CloudFront's default certificate where the pack requires a custom one (prod): viewers may then
    #: negotiate TLSv1 (CloudFront fixes that policy on its own certificate) and the site is only at its
    #: *.cloudfront.net name. Only with no aliases; the policy pack reads it, the distribution is the same.
    allow_default_certificate: bool = False
    #: Where HTML comes from: the frontend through the ALB (app), or a static export in the bucket (s3).
    html_origin: Literal["app", "s3"] = "app"
    #: Seconds CloudFront waits for the API, and the longest silence inside a stream (60 without a quota raise).
    api_origin_read_timeout_seconds: Annotated[int, Between(1, 120)] = 60
    #: Seconds CloudFront waits for a page from the frontend.
    pages_origin_read_timeout_seconds: Annotated[int, Between(1, 120)] = 30
    #: Seconds CloudFront keeps an idle connection to the ALB open for reuse (below the ALB's idle timeout).
    origin_keepalive_timeout_seconds: Annotated[int, Between(1, 120)] = 60
    #: Days an overwritten or deleted asset version is kept (the rollback window).
    noncurrent_version_expiration_days: Annotated[int, Between(1, 3650)] = 30
    #: Days the CloudFront access logs are kept.
    log_retention_days: Annotated[int, Between(1, 3653)] = 90
    #: HSTS max-age; two years satisfies the browser preload lists.
    hsts_max_age_seconds: Annotated[int, Between(0, 2 * _YEAR)] = 2 * _YEAR
    #: Pulumi ``protect`` on the buckets.
    protect: bool = True
    #: Let ``pulumi destroy`` delete non-empty buckets (throwaway stacks only).
    force_destroy: bool = False
    static_assets: StaticAssetsCache = field(default_factory=StaticAssetsCache)
    public_assets: PublicAssetsCache = field(default_factory=PublicAssetsCache)
    #: Server-rendered pages (htmlOrigin: app).
    pages: PagesCache = field(default_factory=PagesCache)
    #: Static-export HTML (htmlOrigin: s3).
    html: HtmlCache = field(default_factory=HtmlCache)

    def checks(self):
        if len(set(self.aliases)) != len(self.aliases):
            yield "aliases", self.aliases, "distinct domain names"
        if self.aliases and self.acm_certificate_arn is None:
            yield ("acm_certificate_arn", None, "an ACM certificate ARN in us-east-1 covering the aliases "
                   "(a custom domain needs its own certificate)")
        if self.acm_certificate_arn is not None and not self.aliases:
            yield "aliases", self.aliases, "the domain names the certificate is for (acmCertificateArn is set)"
        if self.allow_default_certificate and self.aliases:
            yield ("allow_default_certificate", True, "false (or unset) once aliases and acmCertificateArn are set: "
                   "the distribution then serves that certificate, TLSv1.2_2021 minimum")


@dataclass(frozen=True, kw_only=True)
class AppOrigin:
    """The apps behind CloudFront: the internal ALB through its VPC origin."""

    #: The CloudFront VPC origin's id (``AppLoadBalancer.vpc_origin_id``).
    vpc_origin_id: pulumi.Input[str]
    #: The name CloudFront connects to: the ALB's DNS name, or the name on its certificate.
    domain_name: pulumi.Input[str]


@dataclass(frozen=True, kw_only=True)
class EdgeDistributionArgs(EdgeSettings):
    """Settings plus the wiring."""

    #: Where pages (htmlOrigin: app) and /api/* go.
    app_origin: AppOrigin
    #: ARN of a CLOUDFRONT-scope WAF web ACL; None attaches none.
    web_acl_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


def bucket_read_statements(bucket_arn: str, distribution_arn: str, *, list_keys: bool = False) -> list[dict]:
    """Read access for exactly one distribution, through Origin Access Control. With ``list_keys``
    the distribution may also list the bucket, so that S3 answers a missing key with 404 instead
    of 403 (without s3:ListBucket, S3 answers a missing key with 403 Access Denied: Amazon S3 API
    reference, GetObject, "Permissions"). CloudFront sends
    no query string to the bucket (the tiers' cache keys hold none), so no viewer can make it list."""
    def allow(sid: str, action: str, resource: str) -> dict:
        return {"Sid": sid, "Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
                "Action": action, "Resource": resource,
                "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}}}
    found = [allow("AllowCloudFrontDistributionRead", "s3:GetObject", f"{bucket_arn}/*")]
    if list_keys:
        found.append(allow("AllowCloudFrontDistributionList", "s3:ListBucket", bucket_arn))
    return found


class EdgeDistribution(pulumi.ComponentResource):
    """The CloudFront distribution: assets from a private bucket, pages and API from the apps."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    log_bucket_name: pulumi.Output[str]
    distribution_id: pulumi.Output[str]
    distribution_arn: pulumi.Output[str]
    domain_name: pulumi.Output[str]
    hosted_zone_id: pulumi.Output[str]
    #: The address browsers use: the first alias, else the *.cloudfront.net name.
    url: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeDistributionArgs, opts: pulumi.ResourceOptions | None = None):
        # Formerly StaticSiteCdn: the alias keeps the deployed distribution and its protected
        # buckets (their URNs carry the parent's type) instead of replacing them.
        super().__init__("cofounder:edge:EdgeDistribution", name, None, pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(aliases=[pulumi.Alias(type_="cofounder:edge:StaticSiteCdn")])))
        require_valid(f"EdgeDistribution {name}", args)
        tags = {**args.tags, "component": "edge"}

        assets = private_bucket(self, f"{name}-assets", object_ownership="BucketOwnerEnforced",
                                noncurrent_version_expiration_days=args.noncurrent_version_expiration_days,
                                protect=args.protect, force_destroy=args.force_destroy, tags=tags)
        log_bucket, log_acl = self._log_bucket(f"{name}-logs", args, tags)
        oac = self._origin_access_control(name)
        origins = [{"origin_id": S3_ORIGIN_ID, "domain_name": assets.bucket.bucket_regional_domain_name,
                    "origin_access_control_id": oac.id}]
        origins += self._app_origins(args)
        viewer_host = self._viewer_host_function(name)
        to_app = [{"event_type": "viewer-request", "function_arn": viewer_host.arn}]
        ordered = [{**self._api_behavior(name, args), "function_associations": to_app},
                   self._bucket_behavior(name, "static", args.static_assets, args, STATIC_PATH),
                   self._bucket_behavior(name, "public", args.public_assets, args, PUBLIC_PATH)]
        default = self._default_behavior(name, args, to_app)
        distribution = self._distribution(name, args, tags, origins=origins, default=default, ordered=ordered,
                                          log_bucket=log_bucket, log_acl=log_acl)
        self._assets_policy(name, args, assets, distribution)

        self.bucket_name = assets.bucket.bucket
        self.bucket_arn = assets.bucket.arn
        self.log_bucket_name = log_bucket.bucket
        self.distribution_id = distribution.id
        self.distribution_arn = distribution.arn
        self.domain_name = distribution.domain_name
        self.hosted_zone_id = distribution.hosted_zone_id
        self.url = (pulumi.Output.from_input(f"https://{args.aliases[0]}") if args.aliases
                    else distribution.domain_name.apply(lambda d: f"https://{d}"))
        self.register_outputs({
            "bucket_name": self.bucket_name,
            "log_bucket_name": self.log_bucket_name,
            "distribution_id": self.distribution_id,
            "domain_name": self.domain_name,
            "url": self.url,
        })

    def _origin_access_control(self, name: str) -> aws.cloudfront.OriginAccessControl:
        """The Origin Access Control through which CloudFront signs its reads of the assets bucket."""
        return aws.cloudfront.OriginAccessControl(
            f"{name}-oac",
            description=f"{name}: CloudFront reads the assets bucket",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _viewer_host_function(self, name: str) -> aws.cloudfront.Function:
        """The viewer-request function that forwards the viewer's Host to the apps."""
        return aws.cloudfront.Function(
            f"{name}-viewer-host",
            runtime="cloudfront-js-2.0",
            comment="Copy the viewer's Host into X-Forwarded-Host for the apps",
            code=VIEWER_HOST_JS,
            publish=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _default_behavior(self, name: str, args: EdgeDistributionArgs, to_app: list[dict]) -> dict:
        """The default (HTML) behaviour: from the app, or from the bucket through the rewrite function."""
        if args.html_origin == "app":
            return {**self._pages_behavior(name, args), "function_associations": to_app}
        rewrite = aws.cloudfront.Function(
            f"{name}-html-rewrite",
            runtime="cloudfront-js-2.0",
            comment="Map extension-less paths to the exported .html / index.html keys",
            code=HTML_REWRITE_JS,
            publish=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return {**self._bucket_behavior(name, "html", args.html, args, None),
                "function_associations": [{"event_type": "viewer-request", "function_arn": rewrite.arn}]}

    @staticmethod
    def _viewer_certificate(args: EdgeDistributionArgs) -> dict[str, object]:
        """The viewer certificate: the ACM one for the aliases, else CloudFront's default."""
        if args.aliases:
            return {"acm_certificate_arn": args.acm_certificate_arn, "ssl_support_method": "sni-only",
                    "minimum_protocol_version": "TLSv1.2_2021"}
        # CloudFront then "automatically sets the security policy to TLSv1 regardless of the value
        # that you set" (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_ViewerCertificate.html):
        # the pack's cloudfront-distribution-custom-certificate reports it unless allowDefaultCertificate.
        return {"cloudfront_default_certificate": True}

    def _distribution(self, name: str, args: EdgeDistributionArgs, tags: dict, *, origins: list[dict],
                      default: dict, ordered: list[dict], log_bucket: aws.s3.Bucket,
                      log_acl: aws.s3.BucketAcl) -> aws.cloudfront.Distribution:
        """The CloudFront distribution itself, logging to the log bucket."""
        return aws.cloudfront.Distribution(
            f"{name}-distribution",
            enabled=True,
            comment=f"{name}: CoFounder pages, API and static assets",
            aliases=list(args.aliases) or None,
            price_class=args.price_class,
            http_version="http2and3",
            is_ipv6_enabled=True,
            # Only the bucket has index documents to map "/" to; the app serves "/" itself.
            default_root_object="index.html" if args.html_origin == "s3" else None,
            origins=origins,
            default_cache_behavior=default,
            ordered_cache_behaviors=ordered,
            custom_error_responses=self._not_found_pages(args),
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate=self._viewer_certificate(args),
            web_acl_id=args.web_acl_arn,
            logging_config={"bucket": log_bucket.bucket_domain_name, "prefix": "cloudfront/",
                            "include_cookies": False},
            tags=tags,
            # CloudFront checks the log bucket's ACL when logging is switched on.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_acl]),
        )

    def _assets_policy(self, name: str, args: EdgeDistributionArgs, assets: PrivateBucket,
                       distribution: aws.cloudfront.Distribution) -> None:
        """The assets bucket's policy: TLS only, and reads by this distribution alone."""
        aws.s3.BucketPolicy(
            f"{name}-assets",
            bucket=assets.bucket.bucket,
            policy=pulumi.Output.all(assets.bucket.arn, distribution.arn).apply(
                lambda v: tls_only_policy(v[0], *bucket_read_statements(
                    v[0], v[1], list_keys=args.html_origin == "s3"))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[assets.access_block]),
        )

    @staticmethod
    def _app_origins(args: EdgeDistributionArgs) -> list[dict]:
        def origin(origin_id: str, read_timeout: int) -> dict:
            return {"origin_id": origin_id, "domain_name": args.app_origin.domain_name,
                    "vpc_origin_config": {"vpc_origin_id": args.app_origin.vpc_origin_id,
                                          "origin_read_timeout": read_timeout,
                                          "origin_keepalive_timeout": args.origin_keepalive_timeout_seconds}}
        found = [origin(API_ORIGIN_ID, args.api_origin_read_timeout_seconds)]
        if args.html_origin == "app":
            found.append(origin(PAGES_ORIGIN_ID, args.pages_origin_read_timeout_seconds))
        return found

    @staticmethod
    def _not_found_pages(args: EdgeDistributionArgs) -> list[dict] | None:
        """Static export: the export's 404 page, status 404, for a page the bucket does not have.

        Custom error responses apply to the whole distribution, so this one also covers a 404
        from /api/*: its status stays 404, the body becomes the page. 403 is not mapped: with the
        list permission S3 answers a missing key with 404, and a 403 means a real refusal (the
        API's own, or the WAF's rate limit), which must reach the client as it is. Not cached
        (error_caching_min_ttl 0): an API's 404 is per user, and an uploaded page shows at once.
        """
        if args.html_origin != "s3":
            return None
        return [{"error_code": 404, "response_code": 404, "response_page_path": NOT_FOUND_PAGE,
                 "error_caching_min_ttl": 0}]

    def _api_behavior(self, name: str, args: EdgeDistributionArgs) -> dict:
        return {
            "path_pattern": API_PATH,
            "target_origin_id": API_ORIGIN_ID,
            # A redirect would turn a POST into a GET and drop its body: refuse plain HTTP.
            "viewer_protocol_policy": "https-only",
            "allowed_methods": ALL_METHODS,
            "cached_methods": ["GET", "HEAD"],
            # CachingDisabled turns edge compression off anyway; said here so nobody expects it.
            "compress": False,
            "cache_policy_id": CACHING_DISABLED_POLICY_ID,
            "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID,
            "response_headers_policy_id": self._headers_policy(f"{name}-api", args, None).id,
        }

    def _pages_behavior(self, name: str, args: EdgeDistributionArgs) -> dict:
        policy = aws.cloudfront.CachePolicy(
            f"{name}-pages",
            comment=f"{name}: pages, the app's Cache-Control, {args.pages.default_ttl_seconds}s without one",
            # 0: a response marked private, no-store or no-cache is never kept.
            min_ttl=0,
            default_ttl=args.pages.default_ttl_seconds,
            max_ttl=args.pages.max_ttl_seconds,
            parameters_in_cache_key_and_forwarded_to_origin={
                "cookies_config": {"cookie_behavior": "none"},
                "headers_config": {"header_behavior": "whitelist",
                                   "headers": {"items": list(NEXT_CACHE_KEY_HEADERS)}},
                "query_strings_config": {"query_string_behavior": "all"},
                "enable_accept_encoding_brotli": True,
                "enable_accept_encoding_gzip": True,
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return {
            "target_origin_id": PAGES_ORIGIN_ID,
            "viewer_protocol_policy": "redirect-to-https",
            # Forms and server actions post to pages; only GET and HEAD are ever cached.
            "allowed_methods": ALL_METHODS,
            "cached_methods": ["GET", "HEAD"],
            "compress": True,
            "cache_policy_id": policy.id,
            # Cookies, headers and query strings reach the app, outside the cache key (see above).
            "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID,
            "response_headers_policy_id": self._headers_policy(f"{name}-pages", args, None).id,
        }

    def _bucket_behavior(self, name: str, role: str, tier: CacheTier, args: EdgeDistributionArgs,
                         path_pattern: str | None) -> dict:
        behavior = {
            "target_origin_id": S3_ORIGIN_ID,
            "viewer_protocol_policy": "redirect-to-https",
            "allowed_methods": ["GET", "HEAD"],
            "cached_methods": ["GET", "HEAD"],
            "compress": True,
            "cache_policy_id": self._cache_policy(f"{name}-{role}", tier).id,
            "response_headers_policy_id": self._headers_policy(f"{name}-{role}", args, tier.cache_control).id,
        }
        return {**behavior, "path_pattern": path_pattern} if path_pattern else behavior

    def _log_bucket(self, name: str, args: EdgeDistributionArgs, tags: dict) -> tuple[aws.s3.Bucket, aws.s3.BucketAcl]:
        """CloudFront standard logging writes through the awslogsdelivery account's ACL grant."""
        logs = private_bucket(self, name, object_ownership="BucketOwnerPreferred",
                              noncurrent_version_expiration_days=args.noncurrent_version_expiration_days,
                              expiration_days=args.log_retention_days, protect=args.protect,
                              force_destroy=args.force_destroy, tags=tags)
        invoke = pulumi.InvokeOptions(parent=self)
        owner = aws.s3.get_canonical_user_id_output(opts=invoke)
        log_delivery = aws.cloudfront.get_log_delivery_canonical_user_id_output(opts=invoke)
        # Declared in full: CloudFront would add the awslogsdelivery grant itself, and the next
        # `pulumi up` would otherwise remove it again.
        acl = aws.s3.BucketAcl(
            name,
            bucket=logs.bucket.bucket,
            access_control_policy={
                "owner": {"id": owner.id},
                "grants": [
                    {"grantee": {"type": "CanonicalUser", "id": owner.id}, "permission": "FULL_CONTROL"},
                    {"grantee": {"type": "CanonicalUser", "id": log_delivery.id}, "permission": "FULL_CONTROL"},
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs.ownership]),
        )
        aws.s3.BucketPolicy(
            name,
            bucket=logs.bucket.bucket,
            policy=logs.bucket.arn.apply(tls_only_policy),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs.access_block]),
        )
        return logs.bucket, acl

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

    def _headers_policy(self, name: str, args: EdgeDistributionArgs,
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

