"""S3 companion-resource stack rules and CloudFront rules."""

import pytest

from tests.policies.helpers import resource, stack_violations, violations

BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
S3_RULES = ["s3-bucket-public-access-blocked", "s3-bucket-encrypted", "s3-bucket-versioned"]


def _bucket_stack(**override):
    companions = {
        PAB: {"bucket": "assets-1", "blockPublicAcls": True, "blockPublicPolicy": True,
              "ignorePublicAcls": True, "restrictPublicBuckets": True},
        SSE: {"bucket": "assets-1", "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}]},
        VERSIONING: {"bucket": "assets-1", "versioningConfiguration": {"status": "Enabled"}},
    }
    companions.update(override)
    return [resource(BUCKET, "assets", {"id": "assets-1", "bucket": "assets-1"})] + [
        resource(t, f"assets-{i}", props) for i, (t, props) in enumerate(companions.items()) if props is not None]


@pytest.mark.parametrize("policy", S3_RULES)
def test_a_bucket_with_all_companions_passes(policy):
    assert stack_violations(policy, _bucket_stack()) == []


@pytest.mark.parametrize("policy, companion", [(S3_RULES[0], PAB), (S3_RULES[1], SSE), (S3_RULES[2], VERSIONING)])
def test_a_missing_companion_is_a_violation_on_the_bucket(policy, companion):
    [(message, urn)] = stack_violations(policy, _bucket_stack(**{companion: None}))
    assert urn.endswith("::assets")


def test_a_weak_companion_is_a_violation():
    weak = {"bucket": "assets-1", "blockPublicAcls": True, "blockPublicPolicy": False,
            "ignorePublicAcls": True, "restrictPublicBuckets": True}
    [(message, _)] = stack_violations("s3-bucket-public-access-blocked", _bucket_stack(**{PAB: weak}))
    assert "blockPublicPolicy" in message
    suspended = {"bucket": "assets-1", "versioningConfiguration": {"status": "Suspended"}}
    assert stack_violations("s3-bucket-versioned", _bucket_stack(**{VERSIONING: suspended}))


def test_a_companion_of_another_bucket_does_not_count():
    other = {"bucket": "logs-1", "versioningConfiguration": {"status": "Enabled"}}
    assert stack_violations("s3-bucket-versioned", _bucket_stack(**{VERSIONING: other}))


def test_companion_linked_by_property_dependency_counts_in_a_preview():
    bucket = resource(BUCKET, "assets", {})  # id unknown until created
    versioning = resource(VERSIONING, "v", {"versioningConfiguration": {"status": "Enabled"}},
                          property_dependencies={"bucket": [bucket]})
    assert stack_violations("s3-bucket-versioned", [bucket, versioning]) == []


GOOD_DISTRIBUTION = {
    "defaultCacheBehavior": {"viewerProtocolPolicy": "redirect-to-https", "targetOriginId": "s3"},
    "orderedCacheBehaviors": [{"pathPattern": "_next/static/*", "viewerProtocolPolicy": "https-only"}],
    "viewerCertificate": {"acmCertificateArn": "arn:aws:acm:us-east-1:1:certificate/c",
                          "minimumProtocolVersion": "TLSv1.2_2021", "sslSupportMethod": "sni-only"},
    "origins": [{"originId": "s3", "domainName": "assets-1.s3.us-east-1.amazonaws.com",
                 "originAccessControlId": "oac-1"}],
}
CF_RULES = ["cloudfront-distribution-https-only", "cloudfront-distribution-tls-minimum",
            "cloudfront-s3-origin-access-control"]


@pytest.mark.parametrize("policy", CF_RULES)
def test_a_locked_down_distribution_passes(policy):
    assert violations(policy, DISTRIBUTION, GOOD_DISTRIBUTION) == []


def test_allow_all_on_any_behavior_is_a_violation():
    bad = {**GOOD_DISTRIBUTION, "orderedCacheBehaviors": [{"pathPattern": "public/*", "viewerProtocolPolicy": "allow-all"}]}
    [message] = violations("cloudfront-distribution-https-only", DISTRIBUTION, bad)
    assert "public/*" in message


def test_old_tls_with_a_custom_certificate_is_a_violation():
    cert = {**GOOD_DISTRIBUTION["viewerCertificate"], "minimumProtocolVersion": "TLSv1.1_2016"}
    assert violations("cloudfront-distribution-tls-minimum", DISTRIBUTION, {**GOOD_DISTRIBUTION, "viewerCertificate": cert})
    default_cert = {"cloudfrontDefaultCertificate": True}
    assert violations("cloudfront-distribution-tls-minimum", DISTRIBUTION,
                      {**GOOD_DISTRIBUTION, "viewerCertificate": default_cert}) == []


def test_s3_origin_without_oac_is_a_violation():
    origins = [{"originId": "s3", "domainName": "assets-1.s3.amazonaws.com"},
               {"originId": "api", "domainName": "api.example.com", "customOriginConfig": {}}]
    [message] = violations("cloudfront-s3-origin-access-control", DISTRIBUTION, {**GOOD_DISTRIBUTION, "origins": origins})
    assert "'s3'" in message


# --- the front door: /api/* never cached, WAF attached --------------------------------------

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"


def _front_door(api_cache_policy: str, **extra) -> dict:
    return {
        "defaultCacheBehavior": {"viewerProtocolPolicy": "redirect-to-https", "targetOriginId": "app-pages",
                                 "cachePolicyId": "pages-policy"},
        "orderedCacheBehaviors": [
            {"pathPattern": "api/*", "viewerProtocolPolicy": "https-only", "targetOriginId": "app-api",
             "cachePolicyId": api_cache_policy},
            {"pathPattern": "_next/static/*", "viewerProtocolPolicy": "redirect-to-https", "cachePolicyId": "static"}],
        **extra,
    }


def test_an_uncached_api_passes():
    assert violations("cloudfront-api-not-cached", DISTRIBUTION, _front_door(CACHING_DISABLED)) == []


@pytest.mark.parametrize("pattern", ["api/*", "/api/*", "api/v2/*"])
def test_a_cached_api_is_a_violation(pattern):
    props = _front_door("pages-policy")
    props["orderedCacheBehaviors"][0]["pathPattern"] = pattern
    [message] = violations("cloudfront-api-not-cached", DISTRIBUTION, props)
    assert "caches API responses" in message and "pages-policy" in message


def test_waf_is_required_unless_the_stack_opts_out():
    acl = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/edge/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"
    assert violations("cloudfront-waf-attached", DISTRIBUTION, _front_door(CACHING_DISABLED, webAclId=acl)) == []
    [message] = violations("cloudfront-waf-attached", DISTRIBUTION, _front_door(CACHING_DISABLED))
    assert "no WAF web ACL" in message
    assert violations("cloudfront-waf-attached", DISTRIBUTION, _front_door(CACHING_DISABLED),
                      {"required": False}) == []
