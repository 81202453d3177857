"""Reads a patchtrail store in an S3 bucket (moto) with boto3 and pyarrow, independently.

usage: read_s3.py BUCKET PREFIX
Prints JSON: the keys, the manifests, the instance ids and row counts of the Parquet tables.
"""
import io
import json
import os
import sys

import boto3
import pyarrow.parquet as pq


def main():
    bucket, prefix = sys.argv[1], sys.argv[2].strip("/")
    s3 = boto3.client("s3")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    rel = [k[len(prefix) + 1 :] for k in keys]

    def body(k):
        return s3.get_object(Bucket=bucket, Key=f"{prefix}/{k}")["Body"].read()

    manifests = [json.loads(body(k)) for k in rel if k.startswith(("runs/", "_patchtrail/runs/")) and k.endswith(".json")]
    instance_ids, patch_rows, patch_sum = [], 0, 0
    for k in rel:
        if k.startswith("instances/") and k.endswith(".parquet"):
            t = pq.read_table(io.BytesIO(body(k)))
            instance_ids += t.column("instance_id").to_pylist()
            patch_sum += sum(t.column("patch_rows").to_pylist())
        if k.startswith("patches/") and k.endswith(".parquet"):
            patch_rows += pq.read_table(io.BytesIO(body(k))).num_rows
    json.dump(
        {"keys": rel, "manifests": manifests, "instance_ids": instance_ids, "patch_rows": patch_rows, "patch_rows_by_instance": patch_sum},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip teardown: pyarrow's thread pools can abort it on a loaded machine
