"""Creates an S3 bucket (in moto) with boto3, for tests that write a store there.

usage: s3_bucket.py BUCKET [versioned | object-lock]
Prints JSON: {"bucket": BUCKET, "versioning": "Enabled"|"Disabled", "object_lock": bool}, read back
with boto3's own GetBucketVersioning / GetObjectLockConfiguration (the reference for `doctor`).
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError


def main():
    bucket = sys.argv[1]
    protection = sys.argv[2] if len(sys.argv) > 2 else ""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=protection == "object-lock")
    if protection == "versioned":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "Disabled")
    try:
        lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        object_lock = lock.get("ObjectLockEnabled") == "Enabled"
    except ClientError as e:
        if e.response["Error"]["Code"] != "ObjectLockConfigurationNotFoundError":
            raise
        object_lock = False
    print(json.dumps({"bucket": bucket, "versioning": versioning, "object_lock": object_lock}))


if __name__ == "__main__":
    main()
