"""Changes one object of a bucket (in moto) the ways an operator with s3:PutObject and
s3:DeleteObject, or a lifecycle rule, can, with boto3's own calls.

usage: s3_object.py ACTION BUCKET KEY
  archive   move it to the GLACIER storage class, as a lifecycle transition does (CopyObject onto
            itself with the new class)
  rewrite   write its own bytes again (PutObject): a versioned bucket keeps a second version
  delete    delete it (DeleteObject): a versioned bucket keeps it behind a delete marker
Prints JSON: {"key": KEY, "storage_class": ..., "versions": N, "delete_markers": N}, read back with
HeadObject (when it still reads) and ListObjectVersions.
"""
import json
import sys

import boto3
from botocore.exceptions import ClientError


def main():
    action, bucket, key = sys.argv[1], sys.argv[2], sys.argv[3]
    s3 = boto3.client("s3")
    if action == "archive":
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                       StorageClass="GLACIER", MetadataDirective="COPY")
    elif action == "rewrite":
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    elif action == "delete":
        s3.delete_object(Bucket=bucket, Key=key)
    else:
        sys.exit(f"unknown action {action}")
    try:
        storage_class = s3.head_object(Bucket=bucket, Key=key).get("StorageClass", "STANDARD")
    except ClientError:
        storage_class = None
    listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
    print(json.dumps({
        "key": key,
        "storage_class": storage_class,
        "versions": len([v for v in listed.get("Versions", []) if v["Key"] == key]),
        "delete_markers": len([m for m in listed.get("DeleteMarkers", []) if m["Key"] == key]),
    }))


if __name__ == "__main__":
    main()
