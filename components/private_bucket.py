"""What a bucket is in this project: private, encrypted, versioned, expiring, TLS only.

Not a component of its own: the buckets belong to the component that uses them (the edge's
assets and CloudFront logs, the load balancer's access logs), so ``private_bucket`` declares
them as that component's children under the names it is given. In pulumi-aws 7 a bucket's
public access block, ownership, encryption, versioning and lifecycle are separate resources;
the pack's ``s3-bucket-*`` rules check that each of them exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_aws as aws


@dataclass(frozen=True)
class PrivateBucket:
    """The bucket and the companions a bucket policy or an ACL must wait for."""

    bucket: aws.s3.Bucket
    access_block: aws.s3.BucketPublicAccessBlock
    ownership: aws.s3.BucketOwnershipControls


def private_bucket(owner: pulumi.Resource, name: str, *,
                   object_ownership: Literal["BucketOwnerEnforced", "BucketOwnerPreferred"],
                   noncurrent_version_expiration_days: int, expiration_days: int | None = None,
                   protect: bool, force_destroy: bool, tags: dict) -> PrivateBucket:
    """A bucket with public access blocked, SSE-S3, versioning and a lifecycle, parented to ``owner``.

    ``expiration_days`` makes current objects expire too (logs); without it only overwritten or
    deleted versions expire (the rollback window of deployed assets).
    SSE-S3 rather than KMS: CloudFront (OAC), CloudFront log delivery and ALB access-log delivery
    need no key grants for it, and ALB access logs support nothing else.
    """
    child = pulumi.ResourceOptions(parent=owner)
    bucket = aws.s3.Bucket(name, force_destroy=force_destroy, tags=tags,
                           opts=pulumi.ResourceOptions(parent=owner, protect=protect))
    access_block = aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.bucket,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    ownership = aws.s3.BucketOwnershipControls(name, bucket=bucket.bucket,
                                               rule={"object_ownership": object_ownership}, opts=child)
    aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket.bucket,
        rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
        opts=child,
    )
    # Versioning keeps an overwritten asset or a deleted log recoverable (policy s3-bucket-versioned).
    versioning = aws.s3.BucketVersioning(name, bucket=bucket.bucket,
                                         versioning_configuration={"status": "Enabled"}, opts=child)
    if expiration_days is None:
        rule = {"id": "expire-noncurrent-versions", "expiration": {"expired_object_delete_marker": True}}
    else:
        rule = {"id": "expire-logs", "expiration": {"days": expiration_days}}
    aws.s3.BucketLifecycleConfiguration(
        name,
        bucket=bucket.bucket,
        rules=[{
            **rule,
            "status": "Enabled",
            "filter": {},
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_expiration_days},
            "abort_incomplete_multipart_upload": {"days_after_initiation": 7},
        }],
        opts=pulumi.ResourceOptions(parent=owner, depends_on=[versioning]),
    )
    return PrivateBucket(bucket=bucket, access_block=access_block, ownership=ownership)


def deny_insecure_transport(bucket_arn: str) -> dict:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def tls_only_policy(bucket_arn: str, *statements: dict) -> str:
    """A bucket policy of ``statements`` plus the refusal of every request without TLS."""
    return json.dumps({"Version": "2012-10-17", "Statement": [*statements, deny_insecure_transport(bucket_arn)]})
