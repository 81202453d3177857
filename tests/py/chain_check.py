"""Reads a store's commit chain with boto3 (S3) or plain file reads (a folder), independently of
patchtrail, and says what an auditor would ask of it.

usage: chain_check.py s3://BUCKET/PREFIX | FOLDER
Prints JSON: {"entries": N, "runs": [run ids, chain order], "twice": [run ids named by more than one
entry], "gaps": [missing sequences], "bad_manifests": [keys whose SHA-256 differs from their entry
or that are missing], "claims": [claimed run ids]}.
"""
import hashlib
import json
import os
import sys

import boto3


def reader(url):
    if url.startswith("s3://"):
        bucket, _, prefix = url[5:].partition("/")
        prefix = prefix.strip("/")
        s3 = boto3.client("s3")

        def key(k):
            return f"{prefix}/{k}" if prefix else k

        def get(k):
            try:
                return s3.get_object(Bucket=bucket, Key=key(k))["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None

        def names(folder):
            out = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key(folder)):
                out += [o["Key"][len(key(folder)):] for o in page.get("Contents", [])]
            return out

        return get, names

    def get(k):
        path = os.path.join(url, k)
        return open(path, "rb").read() if os.path.exists(path) else None

    def names(folder):
        path = os.path.join(url, folder)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    return get, names


def main():
    get, names = reader(sys.argv[1])
    seqs = sorted(int(n[:-5]) for n in names("_patchtrail/chain/") if n.endswith(".json") and n[:-5].isdigit())
    runs, bad = [], []
    for s in seqs:
        entry = json.loads(get(f"_patchtrail/chain/{s:012d}.json"))
        runs.append(entry["run_id"])
        body = get(entry["manifest_key"])
        if body is None or hashlib.sha256(body).hexdigest() != entry["manifest_sha256"]:
            bad.append(entry["manifest_key"])
    expected = list(range(1, (seqs[-1] if seqs else 0) + 1))
    claims = sorted(n[:-5] for n in names("_patchtrail/claims/") if n.endswith(".json"))
    print(json.dumps({
        "entries": len(seqs),
        "runs": runs,
        "twice": sorted({r for r in runs if runs.count(r) > 1}),
        "gaps": sorted(set(expected) - set(seqs)),
        "bad_manifests": bad,
        "claims": claims,
    }))


if __name__ == "__main__":
    main()
