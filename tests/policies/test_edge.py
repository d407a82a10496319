"""S3 companion-resource stack rules and CloudFront rules."""

import json

import pytest

from infra.config import parse
from tests.policies.helpers import resource, stack_violations, violations
from toolkit import docs, policy_runner
from toolkit.stackfile import load_stack_file

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
    # the default certificate is the next rule's case: no minimum can be set there
    assert violations("cloudfront-distribution-tls-minimum", DISTRIBUTION,
                      {**GOOD_DISTRIBUTION, "viewerCertificate": DEFAULT_CERTIFICATE}) == []


# --- the default *.cloudfront.net certificate: TLSv1 for viewers ------------------------------

CUSTOM = "cloudfront-distribution-custom-certificate"
DEFAULT_CERTIFICATE = {"cloudfrontDefaultCertificate": True}


@pytest.mark.parametrize("certificate", [DEFAULT_CERTIFICATE, {**DEFAULT_CERTIFICATE, "minimumProtocolVersion": "TLSv1.2_2021"},
                                         None])
def test_the_default_certificate_is_a_violation_without_the_stacks_opt_out(certificate):
    props = {**GOOD_DISTRIBUTION, "viewerCertificate": certificate}
    [message] = violations(CUSTOM, DISTRIBUTION, props)  # a minimum set there changes nothing
    assert "*.cloudfront.net" in message and "TLSv1" in message
    assert violations(CUSTOM, DISTRIBUTION, props, {"allowDefaultCertificate": False}) == [message]


def test_the_opt_out_accepts_the_default_certificate():
    props = {**GOOD_DISTRIBUTION, "viewerCertificate": DEFAULT_CERTIFICATE}
    assert violations(CUSTOM, DISTRIBUTION, props, {"allowDefaultCertificate": True}) == []


def test_an_acm_certificate_with_tls_1_2_passes_both_rules():
    assert GOOD_DISTRIBUTION["viewerCertificate"]["minimumProtocolVersion"] == "TLSv1.2_2021"
    for rule in (CUSTOM, "cloudfront-distribution-tls-minimum"):
        assert violations(rule, DISTRIBUTION, GOOD_DISTRIBUTION) == []
    iam = {"iamCertificateId": "ASCACKCEVSQ6C2EXAMPLE", "minimumProtocolVersion": "TLSv1.2_2021",
           "sslSupportMethod": "sni-only"}
    assert violations(CUSTOM, DISTRIBUTION, {**GOOD_DISTRIBUTION, "viewerCertificate": iam}) == []


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


WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
ACL_ARN = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/edge/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


def test_a_web_acl_without_a_logging_configuration_is_a_violation():
    acl = resource(WEB_ACL, "acl", {"arn": ACL_ARN, "scope": "CLOUDFRONT"})
    logging = resource(WAF_LOGGING, "logging", {"resourceArn": ACL_ARN, "logDestinationConfigs": ["arn:group"]})
    assert stack_violations("wafv2-web-acl-logging-enabled", [acl, logging]) == []
    [(message, urn)] = stack_violations("wafv2-web-acl-logging-enabled", [acl])
    assert urn == acl.urn and "no WebAclLoggingConfiguration" in message
    # in a preview the new ACL's ARN is unknown: the logging configuration depends on it instead
    new_acl = resource(WEB_ACL, "acl", {"scope": "CLOUDFRONT"})
    pending = resource(WAF_LOGGING, "logging", {"logDestinationConfigs": ["arn:group"]},
                       {"resourceArn": [new_acl]})
    assert stack_violations("wafv2-web-acl-logging-enabled", [new_acl, pending]) == []
    # another ACL's logging does not count
    other = resource(WAF_LOGGING, "logging", {"resourceArn": ACL_ARN.replace("edge", "other")})
    assert len(stack_violations("wafv2-web-acl-logging-enabled", [acl, other])) == 1


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_stacks_web_acl_is_logged(stack_policies, stack):
    assert [v for v in stack_policies(stack) if v["policy"] == "wafv2-web-acl-logging-enabled"] == []


# --- the default certificate per stack, through the pack ------------------------------------


def _prod_config(tmp_path, edge: dict):
    """The pack config ``make docs`` derives for prod with ``cofounder:edge`` replaced by ``edge``."""
    config = {**load_stack_file("prod").config, "cofounder:edge": json.dumps(edge)}
    path = tmp_path / "prod.json"
    path.write_text(docs.policy_json(docs.policy_config(parse("prod", config))))
    return path


def _custom_certificate_results(stack, program, path=None):
    return [(v["enforcement"], v["urn"]) for v in policy_runner.run_policies(stack, program, config_path=path)
            if v["policy"] in (CUSTOM, "cloudfront-distribution-tls-minimum")]


@pytest.mark.parametrize("stack, expected", [("dev", ["advisory"]), ("staging", ["advisory"]), ("prod", [])])
def test_on_the_default_certificate_dev_and_staging_are_advised_and_prod_has_opted_out(stack_policies, stack,
                                                                                      expected):
    found = [v for v in stack_policies(stack) if v["policy"] == CUSTOM]
    assert [v["enforcement"] for v in found] == expected
    assert all(v["urn"].endswith("::edge-distribution") for v in found)


def test_prod_without_the_opt_out_is_blocked(tmp_path, stack_program):
    edge = json.loads(load_stack_file("prod").config["cofounder:edge"])
    assert edge["allowDefaultCertificate"] is True  # what the committed file says, and all that spares it
    path = _prod_config(tmp_path, {k: v for k, v in edge.items() if k != "allowDefaultCertificate"})
    assert json.loads(path.read_text())[CUSTOM] == {"allowDefaultCertificate": False}
    [(level, urn)] = _custom_certificate_results("prod", stack_program("prod"), path)
    assert level == "mandatory" and urn.endswith("::edge-distribution")


def test_prod_with_its_own_domain_and_certificate_passes_without_the_opt_out(tmp_path, run_stack_with):
    edge = {"noncurrentVersionExpirationDays": 90, "logRetentionDays": 365, "protect": True,
            "aliases": ["www.example.com"],
            "acmCertificateArn": "arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}
    path = _prod_config(tmp_path, edge)
    program = run_stack_with("prod", {"cofounder:edge": edge})
    cert = program.one(DISTRIBUTION).inputs["viewerCertificate"]
    assert (cert["minimumProtocolVersion"], cert["sslSupportMethod"]) == ("TLSv1.2_2021", "sni-only")
    assert _custom_certificate_results("prod", program, path) == []
