"""Moves one object of a bucket (in moto) to the GLACIER storage class, as a lifecycle transition
does: a copy onto itself with the new class (boto3's own CopyObject).

usage: s3_archive.py BUCKET KEY
Prints JSON: {"key": KEY, "storage_class": ...} read back with HeadObject.
"""
import json
import sys

import boto3


def main():
    bucket, key = sys.argv[1], sys.argv[2]
    s3 = boto3.client("s3")
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                   StorageClass="GLACIER", MetadataDirective="COPY")
    head = s3.head_object(Bucket=bucket, Key=key)
    print(json.dumps({"key": key, "storage_class": head.get("StorageClass", "STANDARD")}))


if __name__ == "__main__":
    main()
