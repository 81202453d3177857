"""Creates an S3 bucket (in moto) with boto3, for tests that write a store there.

usage: s3_bucket.py BUCKET
Prints JSON: {"bucket": BUCKET}.
"""
import json
import sys

import boto3


def main():
    bucket = sys.argv[1]
    boto3.client("s3").create_bucket(Bucket=bucket)
    print(json.dumps({"bucket": bucket}))


if __name__ == "__main__":
    main()
