"""components/edge_distribution.py: pages and API from the apps, the bucket tiers, the private
bucket, logging, and the cofounder:edge config that drives them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from components.edge_distribution import (
    ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID,
    CACHING_DISABLED_POLICY_ID,
    VIEWER_HOST_JS,
    AppOrigin,
    EdgeDistribution,
    EdgeDistributionArgs,
    HtmlCache,
    PagesCache,
    PublicAssetsCache,
    StaticAssetsCache,
)
from infra.config import ConfigError

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
FUNCTION = "aws:cloudfront/function:Function"
CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
CERT = "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


ORIGIN = AppOrigin(vpc_origin_id="vo_0123456789abcdefghijkl", domain_name="internal-alb-1.us-east-1.elb.amazonaws.com")


def _cdn(run_program, **overrides):
    return run_program(lambda: EdgeDistribution("cdn", EdgeDistributionArgs(app_origin=ORIGIN, **overrides)))


def _behaviors(program) -> dict[str, dict]:
    """Cache behaviors by path pattern (``*`` for the default behavior)."""
    dist = program.one(DISTRIBUTION).inputs
    return {"*": dist["defaultCacheBehavior"], **{b["pathPattern"]: b for b in dist["orderedCacheBehaviors"]}}


def _policy_of(program, type_: str, resource_id: str):
    return next(r for r in program.of_type(type_) if r.outputs["id"] == resource_id)


def _cache_control(headers_policy) -> dict:
    (item,) = headers_policy.inputs["customHeadersConfig"]["items"]
    assert item["header"] == "Cache-Control"
    return item


# --- the tiers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path, ttls, cache_control", [
    ("_next/static/*", (86_400, 31_536_000, 31_536_000), "public, max-age=31536000, immutable"),
    ("public/*", (0, 86_400, 86_400), "public, max-age=86400, stale-while-revalidate=604800"),
    ("*", (0, 60, 60), "public, max-age=0, s-maxage=60"),
])
def test_each_tier_has_its_own_ttls_and_cache_control(run_program, path, ttls, cache_control):
    p = _cdn(run_program, html_origin="s3")
    behavior = _behaviors(p)[path]
    cache = _policy_of(p, CACHE_POLICY, behavior["cachePolicyId"]).inputs
    assert (cache["minTtl"], cache["defaultTtl"], cache["maxTtl"]) == ttls
    item = _cache_control(_policy_of(p, HEADERS_POLICY, behavior["responseHeadersPolicyId"]))
    assert item == {"header": "Cache-Control", "value": cache_control, "override": True}
    # the cache key is the path only (and the compression encoding)
    key = cache["parametersInCacheKeyAndForwardedToOrigin"]
    assert key["queryStringsConfig"]["queryStringBehavior"] == "none"
    assert key["cookiesConfig"]["cookieBehavior"] == "none"
    assert key["enableAcceptEncodingBrotli"] and key["enableAcceptEncodingGzip"]
    assert behavior["targetOriginId"] == "s3-assets"
    assert behavior["viewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["compress"] is True
    assert behavior["allowedMethods"] == ["GET", "HEAD"]


def test_tiers_are_distinct_policies_in_the_right_order(run_program):
    p = _cdn(run_program)
    dist = p.one(DISTRIBUTION).inputs
    # /api/* first: it must never fall through to a cached tier
    assert [b["pathPattern"] for b in dist["orderedCacheBehaviors"]] == ["api/*", "_next/static/*", "public/*"]
    behaviors = _behaviors(p).values()
    assert len({b["cachePolicyId"] for b in behaviors}) == 4  # pages, static, public + managed CachingDisabled
    assert len({b["responseHeadersPolicyId"] for b in behaviors}) == 4
    assert len(p.of_type(CACHE_POLICY)) == 3


def test_tier_overrides_reach_the_policies(run_program):
    html = HtmlCache(min_ttl_seconds=0, default_ttl_seconds=30, max_ttl_seconds=120, browser_max_age_seconds=60,
                     shared_max_age_seconds=None)
    p = _cdn(run_program, html_origin="s3", html=html)
    behavior = _behaviors(p)["*"]
    cache = _policy_of(p, CACHE_POLICY, behavior["cachePolicyId"]).inputs
    assert (cache["minTtl"], cache["defaultTtl"], cache["maxTtl"]) == (0, 30, 120)
    assert _cache_control(_policy_of(p, HEADERS_POLICY, behavior["responseHeadersPolicyId"]))["value"] == \
        "public, max-age=60"


def test_cache_control_strings():
    assert StaticAssetsCache().cache_control == "public, max-age=31536000, immutable"
    assert PublicAssetsCache().cache_control == "public, max-age=86400, stale-while-revalidate=604800"
    assert HtmlCache().cache_control == "public, max-age=0, s-maxage=60"


def test_security_headers_on_every_response(run_program):
    p = _cdn(run_program)
    policies = p.of_type(HEADERS_POLICY)
    assert len(policies) == 4
    for policy in policies:
        sec = policy.inputs["securityHeadersConfig"]
        hsts = sec["strictTransportSecurity"]
        assert hsts == {"accessControlMaxAgeSec": 63_072_000, "includeSubdomains": True, "preload": True,
                        "override": True}
        assert sec["contentTypeOptions"] == {"override": True}
        assert sec["frameOptions"] == {"frameOption": "DENY", "override": True}
        assert sec["referrerPolicy"] == {"referrerPolicy": "strict-origin-when-cross-origin", "override": True}
        assert sec["xssProtection"] == {"protection": True, "modeBlock": True, "override": True}


# --- the distribution ---------------------------------------------------------------------------

def test_distribution_defaults(run_program):
    p = _cdn(run_program)
    dist = p.one(DISTRIBUTION).inputs
    assert dist["httpVersion"] == "http2and3"
    assert dist["isIpv6Enabled"] is True
    assert dist["priceClass"] == "PriceClass_All"
    assert dist["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}
    assert "aliases" not in dist
    origin = next(o for o in dist["origins"] if o["originId"] == "s3-assets")
    bucket = p.one("aws:s3/bucket:Bucket", "cdn-assets")
    assert origin["domainName"] == bucket.outputs["bucketRegionalDomainName"]
    oac = p.one("aws:cloudfront/originAccessControl:OriginAccessControl")
    assert origin["originAccessControlId"] == oac.outputs["id"]
    assert "s3OriginConfig" not in origin  # OAC, not the legacy origin access identity
    assert oac.inputs["signingBehavior"] == "always"
    assert oac.inputs["signingProtocol"] == "sigv4"
    assert oac.inputs["originAccessControlOriginType"] == "s3"
    # pages come from the app: no rewrite function, no index document, no error page of the bucket's
    assert [f.name for f in p.of_type(FUNCTION)] == ["cdn-viewer-host"]
    assert "defaultRootObject" not in dist
    assert "customErrorResponses" not in dist
    assert _behaviors(p)["*"]["targetOriginId"] == "app-pages"


def test_a_static_export_serves_html_from_the_bucket(run_program):
    p = _cdn(run_program, html_origin="s3")
    dist = p.one(DISTRIBUTION).inputs
    function = p.one(FUNCTION, "cdn-html-rewrite")
    assert _behaviors(p)["*"]["functionAssociations"] == [
        {"eventType": "viewer-request", "functionArn": function.outputs["arn"]}]
    assert _behaviors(p)["*"]["targetOriginId"] == "s3-assets"
    assert dist["defaultRootObject"] == "index.html"
    # the API still goes to the backend; no pages origin
    assert sorted(o["originId"] for o in dist["origins"]) == ["app-api", "s3-assets"]
    assert _behaviors(p)["api/*"]["targetOriginId"] == "app-api"


def test_a_static_export_answers_a_missing_page_with_its_404_page_and_status_404(run_program):
    """S3 answers a missing key with 403 unless the reader may list the bucket: the distribution may,
    so the miss is a 404, which the custom error response turns into the export's 404.html, still 404.
    A 403 is never remapped (the API's and the WAF's refusals reach the client as they are)."""
    p = _cdn(run_program, html_origin="s3")
    dist = p.one(DISTRIBUTION).inputs
    assert dist["customErrorResponses"] == [
        {"errorCode": 404, "responseCode": 404, "responsePagePath": "/404.html", "errorCachingMinTtl": 0}]
    bucket_arn = p.one("aws:s3/bucket:Bucket", "cdn-assets").outputs["arn"]
    policy = json.loads(p.one(BUCKET_POLICY, "cdn-assets").inputs["policy"])
    allows = {s["Action"]: s for s in policy["Statement"] if s["Effect"] == "Allow"}
    assert set(allows) == {"s3:GetObject", "s3:ListBucket"}
    assert allows["s3:ListBucket"]["Resource"] == bucket_arn
    assert allows["s3:ListBucket"]["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allows["s3:ListBucket"]["Condition"] == {
        "StringEquals": {"AWS:SourceArn": p.one(DISTRIBUTION).outputs["arn"]}}
    # the error page itself is served by the HTML behaviour from the bucket, as it is named
    assert _rewrite("/404.html") == "/404.html"
    # no behaviour forwards a query string to the bucket, so no viewer can make CloudFront list it
    for path, behavior in _behaviors(p).items():
        if behavior["targetOriginId"] == "s3-assets":
            cache = _policy_of(p, CACHE_POLICY, behavior["cachePolicyId"]).inputs
            assert cache["parametersInCacheKeyAndForwardedToOrigin"]["queryStringsConfig"] == {
                "queryStringBehavior": "none"}, path
            assert "originRequestPolicyId" not in behavior, path


def test_pages_and_the_api_see_the_viewers_host_in_x_forwarded_host(run_program):
    """CloudFront sends the ALB's name as Host; Next.js checks a Server Action's Origin against
    x-forwarded-host (else Host). A viewer-request function sets it on both app behaviours, and
    their origin request policy (AllViewerExceptHostHeader) forwards every viewer header but Host."""
    for html_origin, app_paths in (("app", ["*", "api/*"]), ("s3", ["api/*"])):
        p = _cdn(run_program, html_origin=html_origin)
        function = p.one(FUNCTION, "cdn-viewer-host")
        assert function.inputs["runtime"] == "cloudfront-js-2.0" and function.inputs["publish"] is True
        assert function.inputs["code"] == VIEWER_HOST_JS
        behaviors = _behaviors(p)
        for path in app_paths:
            assert behaviors[path]["functionAssociations"] == [
                {"eventType": "viewer-request", "functionArn": function.outputs["arn"]}], path
            assert behaviors[path]["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID
        # the bucket tiers need no host: S3 is reached by its own name
        for path in ("_next/static/*", "public/*"):
            assert "functionAssociations" not in behaviors[path]


def test_custom_domain_uses_sni_and_tls12(run_program):
    p = _cdn(run_program, aliases=["www.example.com"], acm_certificate_arn=CERT, price_class="PriceClass_100")
    dist = p.one(DISTRIBUTION).inputs
    assert dist["aliases"] == ["www.example.com"]
    assert dist["priceClass"] == "PriceClass_100"
    assert dist["viewerCertificate"] == {"acmCertificateArn": CERT, "sslSupportMethod": "sni-only",
                                         "minimumProtocolVersion": "TLSv1.2_2021"}


def test_the_default_certificate_opt_out_changes_nothing_the_distribution_declares(run_program):
    """allowDefaultCertificate is for the policy pack (the stack accepts TLSv1); CloudFront sees no difference."""
    def declared(p):
        return {k: v for k, v in p.one(DISTRIBUTION).inputs.items() if k != "tags"}
    assert declared(_cdn(run_program, allow_default_certificate=True)) == declared(_cdn(run_program))


def test_aliases_without_certificate_are_refused(run_program):
    with pytest.raises(ValueError, match="EdgeDistribution cdn: acm_certificate_arn = None is not allowed: "
                                         "expected an ACM certificate ARN in us-east-1 covering the aliases"):
        _cdn(run_program, aliases=["www.example.com"])


def test_both_app_origins_are_the_alb_through_its_vpc_origin(run_program):
    p = _cdn(run_program, api_origin_read_timeout_seconds=55, pages_origin_read_timeout_seconds=20,
             origin_keepalive_timeout_seconds=45)
    origins = {o["originId"]: o for o in p.one(DISTRIBUTION).inputs["origins"]}
    for origin_id, read_timeout in (("app-api", 55), ("app-pages", 20)):
        origin = origins[origin_id]
        assert origin["domainName"] == ORIGIN.domain_name
        assert origin["vpcOriginConfig"] == {"vpcOriginId": ORIGIN.vpc_origin_id, "originReadTimeout": read_timeout,
                                             "originKeepaliveTimeout": 45}
        assert "customOriginConfig" not in origin  # no public origin


def test_pages_honour_the_apps_cache_control_and_vary_on_next_headers_only(run_program):
    p = _cdn(run_program)
    pages = _behaviors(p)["*"]
    cache = _policy_of(p, CACHE_POLICY, pages["cachePolicyId"]).inputs
    # 60 s when the app sends nothing; up to a day when it sends s-maxage; never a private response
    assert (cache["minTtl"], cache["defaultTtl"], cache["maxTtl"]) == (0, 60, 86_400)
    key = cache["parametersInCacheKeyAndForwardedToOrigin"]
    assert key["cookiesConfig"] == {"cookieBehavior": "none"}  # a session cookie in the key caches nothing
    assert key["queryStringsConfig"] == {"queryStringBehavior": "all"}
    assert key["headersConfig"] == {"headerBehavior": "whitelist", "headers": {"items": [
        "RSC", "Next-Router-Prefetch", "Next-Router-State-Tree", "Next-Router-Segment-Prefetch", "Next-Url"]}}
    # the app still sees cookies and headers, and its Cache-Control reaches the browser untouched
    assert pages["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID
    assert "customHeadersConfig" not in _policy_of(p, HEADERS_POLICY, pages["responseHeadersPolicyId"]).inputs
    assert sorted(pages["allowedMethods"]) == ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    assert pages["cachedMethods"] == ["GET", "HEAD"]
    assert pages["viewerProtocolPolicy"] == "redirect-to-https"


def test_pages_cache_bounds_are_settings(run_program):
    p = _cdn(run_program, pages=PagesCache(default_ttl_seconds=30, max_ttl_seconds=600))
    cache = _policy_of(p, CACHE_POLICY, _behaviors(p)["*"]["cachePolicyId"]).inputs
    assert (cache["minTtl"], cache["defaultTtl"], cache["maxTtl"]) == (0, 30, 600)


def test_api_is_https_only_and_uncached(run_program):
    p = _cdn(run_program)
    dist = p.one(DISTRIBUTION).inputs
    # first, so /api/* never falls through to the S3 tiers
    api = dist["orderedCacheBehaviors"][0]
    assert api["pathPattern"] == "api/*"
    assert api["targetOriginId"] == "app-api"
    assert api["cachePolicyId"] == CACHING_DISABLED_POLICY_ID == "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert api["originRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER_POLICY_ID == \
        "b689b0a8-53d0-40ab-baf2-68738e2966ac"
    assert sorted(api["allowedMethods"]) == ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    assert api["viewerProtocolPolicy"] == "https-only"
    assert api["compress"] is False  # a server-sent events stream is never buffered for compression
    # the app decides its own caching: no Cache-Control override on API responses
    headers = _policy_of(p, HEADERS_POLICY, api["responseHeadersPolicyId"])
    assert "customHeadersConfig" not in headers.inputs


# --- the private bucket -------------------------------------------------------------------------

def test_bucket_is_readable_only_through_this_distribution(run_program):
    p = _cdn(run_program)
    bucket = p.one("aws:s3/bucket:Bucket", "cdn-assets").outputs
    dist_arn = p.one(DISTRIBUTION).outputs["arn"]
    policy = json.loads(p.one(BUCKET_POLICY, "cdn-assets").inputs["policy"])
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allows == [{
        "Sid": "AllowCloudFrontDistributionRead",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": f"{bucket['arn']}/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": dist_arn}},
    }]
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert denies == [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [bucket["arn"], f"{bucket['arn']}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }]
    # nothing else can open it: public access fully blocked, ACLs disabled, no ACL declared
    block = p.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "cdn-assets").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    ownership = p.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "cdn-assets").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}
    assert [a.name for a in p.of_type("aws:s3/bucketAcl:BucketAcl")] == ["cdn-logs"]
    assert "website" not in p.one("aws:s3/bucket:Bucket", "cdn-assets").inputs
    policy_resource = p.one(BUCKET_POLICY, "cdn-assets")
    assert policy_resource.inputs["bucket"] == bucket["bucket"]
    assert p.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "cdn-assets").urn in \
        policy_resource.options["dependsOn"]


def test_bucket_is_encrypted_versioned_and_prunes_old_versions(run_program):
    p = _cdn(run_program, noncurrent_version_expiration_days=45)
    sse = p.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "cdn-assets").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    versioning = p.one("aws:s3/bucketVersioning:BucketVersioning", "cdn-assets").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    (rule,) = p.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "cdn-assets").inputs["rules"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {}  # the whole bucket
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 45}


def test_access_logs_go_to_an_acl_enabled_private_log_bucket(run_program):
    p = _cdn(run_program, log_retention_days=30)
    logs = p.one("aws:s3/bucket:Bucket", "cdn-logs").outputs
    dist = p.one(DISTRIBUTION)
    assert dist.inputs["loggingConfig"] == {"bucket": logs["bucketDomainName"], "prefix": "cloudfront/",
                                            "includeCookies": False}
    ownership = p.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "cdn-logs").inputs
    assert ownership["rule"] == {"objectOwnership": "BucketOwnerPreferred"}
    acl = p.one("aws:s3/bucketAcl:BucketAcl", "cdn-logs")
    grants = {g["grantee"]["id"]: g["permission"] for g in acl.inputs["accessControlPolicy"]["grants"]}
    # the awslogsdelivery account (CloudFront standard logging) and the bucket owner
    assert grants["c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0"] == "FULL_CONTROL"
    assert grants[acl.inputs["accessControlPolicy"]["owner"]["id"]] == "FULL_CONTROL"
    assert len(grants) == 2
    assert acl.urn in dist.options["dependsOn"]
    block = p.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "cdn-logs").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                          "restrictPublicBuckets"))
    sse = p.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "cdn-logs").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    (rule,) = p.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "cdn-logs").inputs["rules"]
    assert rule["expiration"] == {"days": 30}
    assert p.one("aws:s3/bucketVersioning:BucketVersioning", "cdn-logs").inputs["versioningConfiguration"] == {
        "status": "Enabled"}
    (deny,) = json.loads(p.one(BUCKET_POLICY, "cdn-logs").inputs["policy"])["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("protect, force_destroy", [(True, False), (False, True)])
def test_buckets_follow_protect_and_force_destroy(run_program, protect, force_destroy):
    p = _cdn(run_program, protect=protect, force_destroy=force_destroy)
    for bucket in p.of_type("aws:s3/bucket:Bucket"):
        assert bucket.options["protect"] is protect
        assert bucket.inputs["forceDestroy"] is force_destroy
    assert p.one(DISTRIBUTION).options["protect"] is False


def test_defaults_protect_the_buckets(run_program):
    p = _cdn(run_program)
    assert all(b.options["protect"] and not b.inputs["forceDestroy"] for b in p.of_type("aws:s3/bucket:Bucket"))


def test_waf_and_url(run_program):
    acl = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/x/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    p = run_program(lambda: pulumi_export_url(EdgeDistribution("cdn", EdgeDistributionArgs(
        app_origin=ORIGIN, web_acl_arn=acl, aliases=["www.example.com"], acm_certificate_arn=CERT))))
    assert p.one(DISTRIBUTION).inputs["webAclId"] == acl
    assert p.outputs["url"] == "https://www.example.com"
    p = run_program(lambda: pulumi_export_url(EdgeDistribution("cdn", EdgeDistributionArgs(app_origin=ORIGIN))))
    assert "webAclId" not in p.one(DISTRIBUTION).inputs
    assert p.outputs["url"] == "https://" + p.one(DISTRIBUTION).outputs["domainName"]


def pulumi_export_url(edge):
    import pulumi
    pulumi.export("url", edge.url)


def test_the_component_keeps_the_urns_of_its_former_type(run_program):
    """Renamed from StaticSiteCdn: an alias, so deployed stacks keep their protected buckets."""
    import pulumi
    seen = []

    def program():
        def record(args):
            if args.type_ == "cofounder:edge:EdgeDistribution":
                seen.extend(args.opts.aliases or [])
        pulumi.runtime.register_stack_transformation(record)
        EdgeDistribution("cdn", EdgeDistributionArgs(app_origin=ORIGIN))
    run_program(program)
    assert [a.type_ for a in seen] == ["cofounder:edge:StaticSiteCdn"]


def test_every_child_is_parented_named_and_tagged(run_program):
    p = _cdn(run_program)
    component = p.one("cofounder:edge:EdgeDistribution")
    for r in p.resources:
        if r is component:
            continue
        assert r.parent == component.urn
        assert r.name.startswith("cdn-")
        if "tags" in r.inputs:
            assert r.inputs["tags"]["component"] == "edge"
    for type_ in ("aws:s3/bucket:Bucket", DISTRIBUTION):
        assert all(r.inputs["tags"]["component"] == "edge" for r in p.of_type(type_))


# --- cofounder:edge config ----------------------------------------------------------------------

@pytest.mark.parametrize("edge, expected", [
    ({"acmCertificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
      "aliases": ["www.example.com"]},
     "stacks/Pulumi.dev.yaml: cofounder:edge.acmCertificateArn = 'arn:aws:acm:eu-west-1:123456789012:certificate/"
     "0f1e2d3c-4b5a-6978-8a9b-0c1d2... is not allowed: expected an ACM certificate ARN in us-east-1 (CloudFront "
     "only uses certificates from us-east-1), such as arn:aws:acm:us-east-1:123456789012:certificate/<uuid>"),
    ({"priceClass": "PriceClass_300"},
     "stacks/Pulumi.dev.yaml: cofounder:edge.priceClass = 'PriceClass_300' is not allowed: expected one of "
     "PriceClass_100, PriceClass_200, PriceClass_All"),
    ({"html": {"defaultTtlSeconds": -5}},
     "stacks/Pulumi.dev.yaml: cofounder:edge.html.defaultTtlSeconds = -5 is not allowed: expected a value "
     "between 0 and 31536000"),
    ({"pages": {"defaultTtlSeconds": 600, "maxTtlSeconds": 60}},
     "stacks/Pulumi.dev.yaml: cofounder:edge.pages.defaultTtlSeconds = 600 is not allowed: expected at most "
     "maxTtlSeconds (60)"),
    ({"htmlOrigin": "frontend"},
     "stacks/Pulumi.dev.yaml: cofounder:edge.htmlOrigin = 'frontend' is not allowed: expected one of app, s3"),
    ({"apiOriginReadTimeoutSeconds": 300},
     "stacks/Pulumi.dev.yaml: cofounder:edge.apiOriginReadTimeoutSeconds = 300 is not allowed: expected a value "
     "between 1 and 120"),
    ({"staticAssets": {"browserMaxAgeSeconds": 63072000}},
     "stacks/Pulumi.dev.yaml: cofounder:edge.staticAssets.browserMaxAgeSeconds = 63072000 is not allowed: "
     "expected a value between 0 and 31536000"),
    ({"staticAssets": {"minTtlSeconds": 31536000, "maxTtlSeconds": 86400}},
     "stacks/Pulumi.dev.yaml: cofounder:edge.staticAssets.minTtlSeconds = 31536000 is not allowed: expected "
     "at most maxTtlSeconds (86400)"),
    ({"publicAssets": {"defaultTtlSeconds": 600000}},
     "stacks/Pulumi.dev.yaml: cofounder:edge.publicAssets.defaultTtlSeconds = 600000 is not allowed: expected "
     "between minTtlSeconds (0) and maxTtlSeconds (86400)"),
    ({"aliases": ["www.example.com"]},
     "stacks/Pulumi.dev.yaml: cofounder:edge.acmCertificateArn = null is not allowed: expected an ACM "
     "certificate ARN in us-east-1 covering the aliases (a custom domain needs its own certificate)"),
    ({"acmCertificateArn": CERT},
     "stacks/Pulumi.dev.yaml: cofounder:edge.aliases = [] is not allowed: expected the domain names the "
     "certificate is for (acmCertificateArn is set)"),
    ({"aliases": ["https://www.example.com"], "acmCertificateArn": CERT},
     "stacks/Pulumi.dev.yaml: cofounder:edge.aliases[0] = 'https://www.example.com' is not allowed: expected "
     "a domain name such as www.example.com or *.example.com"),
    ({"logRetentionDays": 0},
     "stacks/Pulumi.dev.yaml: cofounder:edge.logRetentionDays = 0 is not allowed: expected a value between 1 "
     "and 3653"),
    # a stale opt-out: with a domain of its own the stack no longer accepts TLSv1, so the line must go
    ({"aliases": ["www.example.com"], "acmCertificateArn": CERT, "allowDefaultCertificate": True},
     "stacks/Pulumi.dev.yaml: cofounder:edge.allowDefaultCertificate = true is not allowed: expected false (or "
     "unset) once aliases and acmCertificateArn are set: the distribution then serves that certificate, "
     "TLSv1.2_2021 minimum"),
    ({"allowDefaultCertificate": "yes"},
     "stacks/Pulumi.dev.yaml: cofounder:edge.allowDefaultCertificate = 'yes' is not allowed: expected true or false"),
    ({"html": {"maxTtl": 60}},
     "stacks/Pulumi.dev.yaml: cofounder:edge.html.maxTtl is not a known setting: did you mean 'maxTtlSeconds'? "
     "allowed keys are browserMaxAgeSeconds, defaultTtlSeconds, immutable, maxTtlSeconds, minTtlSeconds, "
     "sharedMaxAgeSeconds, staleWhileRevalidateSeconds"),
])
def test_bad_edge_config_fails_with_a_clear_message(run_stack_with, edge, expected):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", {"cofounder:edge": edge})
    assert str(err.value) == expected


def test_config_reaches_the_component(run_stack_with):
    p = run_stack_with("dev", {"cofounder:edge": {
        "priceClass": "PriceClass_200", "aliases": ["www.example.com"], "acmCertificateArn": CERT,
        "publicAssets": {"staleWhileRevalidateSeconds": 3600},
        "protect": False}})
    dist = p.one(DISTRIBUTION).inputs
    assert dist["priceClass"] == "PriceClass_200"
    assert dist["viewerCertificate"]["acmCertificateArn"] == CERT
    assert dist["orderedCacheBehaviors"][0]["pathPattern"] == "api/*"
    behavior = _behaviors(p)["public/*"]
    assert _cache_control(_policy_of(p, HEADERS_POLICY, behavior["responseHeadersPolicyId"]))["value"] == \
        "public, max-age=86400, stale-while-revalidate=3600"


def test_edge_can_be_switched_off(run_stack_with):
    p = run_stack_with("dev", {"cofounder:edge": {"enabled": False}})
    assert not p.of_type("cofounder:edge:EdgeDistribution")
    assert not p.of_type(DISTRIBUTION)
    # nothing would reach the ALB: the front door goes as a whole
    assert not p.of_type("aws:lb/loadBalancer:LoadBalancer")
    assert not p.of_type("kubernetes:elbv2.k8s.aws/v1beta1:TargetGroupBinding")
    assert "edgeDomainName" not in p.outputs and "url" not in p.outputs


def _node(script: str) -> str:
    """Run ``script`` in Node.js (cloudfront-js-2.0 is ECMAScript 5.1 plus a few newer features;
    these handlers use only ES5), returning its stdout."""
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _rewrite(uri: str) -> str:
    from components.edge_distribution import HTML_REWRITE_JS
    return _node(HTML_REWRITE_JS + f"\nprocess.stdout.write(handler({{request: {{uri: {json.dumps(uri)}}}}}).uri);\n")


@pytest.mark.parametrize("headers, expected", [
    # a viewer of the site: the app sees its host
    ({"host": {"value": "www.example.com"}}, "www.example.com"),
    # a viewer's own X-Forwarded-Host never reaches the app
    ({"host": {"value": "d111111abcdef8.cloudfront.net"}, "x-forwarded-host": {"value": "evil.example"}},
     "d111111abcdef8.cloudfront.net"),
    # no host at all (not a request CloudFront routes, but never a forged one): the header is dropped
    ({"x-forwarded-host": {"value": "evil.example"}}, None),
])
def test_the_viewer_host_function_overwrites_x_forwarded_host(headers, expected):
    """Runs the function's JavaScript with a viewer-request event in CloudFront's shape (header
    names in lower case, each an object with a value)."""
    event = {"request": {"method": "POST", "uri": "/settings", "headers": headers}}
    script = (VIEWER_HOST_JS + f"\nvar out = handler({json.dumps(event)});\n"
              "process.stdout.write(JSON.stringify(out));\n")
    out = json.loads(_node(script))
    assert out["uri"] == "/settings" and out["method"] == "POST"
    assert out["headers"].get("x-forwarded-host") == ({"value": expected} if expected else None)
    assert out["headers"].get("host") == headers.get("host")  # Host itself is CloudFront's to set


@pytest.mark.parametrize("uri, expected", [
    ("/", "/index.html"),
    ("/about", "/about.html"),
    ("/about/", "/about/index.html"),
    ("/blog/post-1", "/blog/post-1.html"),
    ("/robots.txt", "/robots.txt"),          # a file with an extension is left alone
    ("/v1.2/notes", "/v1.2/notes.html"),     # a dot in a folder name is not an extension
])
def test_the_html_rewrite_function_maps_page_paths_to_their_files(uri, expected):
    """Runs the CloudFront Function's JavaScript in Node.js with a viewer-request event."""
    assert _rewrite(uri) == expected


# --- the upload layout in docs/front-door.md matches what Next.js serves and CloudFront reads --

_SYNC = re.compile(r'^aws s3 sync (?P<src>\S+) "s3://\$BUCKET/(?P<prefix>[^"]+)"', re.M)


def _next_url_prefix(src: str) -> str:
    """The URL path at which Next.js serves the files of a project folder."""
    if src == ".next/static":
        return "/_next/static"        # build output, served under /_next/static
    if src == "public":
        return "/"                    # public/ is the site root
    if src.startswith("public/"):
        return "/" + src[len("public/"):]
    raise AssertionError(f"{src}: not a folder Next.js serves")


def test_the_documented_upload_puts_each_file_where_the_behaviour_for_its_url_reads_it(run_program):
    """Item by item: Next.js serves <src>/f at <url>/f; the sync stores it at key <prefix>/f; the
    behaviour matching <url>/f must be a bucket behaviour (the bucket key is the URL path), so
    <url> == /<prefix> and <prefix>/* is that behaviour's pattern."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "front-door.md").read_text()
    syncs = [m.groupdict() for m in _SYNC.finditer(text)]
    assert [s["src"] for s in syncs] == [".next/static", "public/public"]
    bucket_patterns = {path for path, b in _behaviors(_cdn(run_program)).items() if b["targetOriginId"] == "s3-assets"}
    assert bucket_patterns == {"_next/static/*", "public/*"}
    for sync in syncs:
        assert _next_url_prefix(sync["src"]) == "/" + sync["prefix"], sync
        assert f"{sync['prefix']}/*" in bucket_patterns, sync
    # the layout this replaced: public/logo.png is served at /logo.png, but synced to key public/logo.png
    assert _next_url_prefix("public") != "/public"
