"""Checks the release dates a collect stored against what DescribeAvailablePatches answers, with
DuckDB and boto3 alone (docs/semantics.md §1.3): for each stored patch row of a Windows node (by the
agent's PlatformType, or EC2's platform when SSM lists no agent), the
`ReleaseDate` AWS lists for its KB (`PATCH_ID`); of an Amazon Linux 2 node, the one listed for its
package (`PRODUCT`, `NAME`, `VERSION`, `RELEASE`, matched on name, arch, epoch, version and
release); of any other node, none (the API answers for Windows Server and Amazon Linux 1 and 2
only). Endpoint and credentials come from the standard AWS environment variables.

usage: release_check.py STORE      (a local parquet store of one collected run)
Prints JSON: rows per platform, rows with a date, and every disagreement.
"""
import json
import sys

import boto3
import duckdb
from botocore.config import Config


def main():
    store = sys.argv[1]
    con = duckdb.connect()
    rows = con.execute(f"""
        SELECT p.instance_id, p.kb_id, p.title, epoch_us(p.release_date), i.platform_type, i.platform_name,
               i.platform_version, i.platform
        FROM read_parquet('{store}/patches/**/*.parquet', hive_partitioning = true) p
        JOIN read_parquet('{store}/instances/**/*.parquet', hive_partitioning = true) i
          USING (run_id, instance_id)""").fetchall()
    ssm = boto3.client("ssm", config=Config(retries={"mode": "standard", "max_attempts": 10}))

    def listed(filters):
        out = []
        for page in ssm.get_paginator("describe_available_patches").paginate(Filters=filters):
            out.extend(page["Patches"])
        return out

    def us(t):
        return int(t.timestamp()) * 1_000_000 + t.microsecond

    answers = {}
    counts = {"windows": 0, "amazon_linux_2": 0, "other": 0, "dated": 0}
    problems = []
    for iid, kb, title, stored, ptype, pname, pversion, ec2_platform in rows:
        # Windows as the SSM agent reports it, or as EC2 does for a node SSM does not list.
        if ptype == "Windows" or (ec2_platform or "").startswith("Windows"):
            kind = "windows"
            if kb not in answers:
                got = listed([{"Key": "PATCH_ID", "Values": [kb]}])
                answers[kb] = us(got[0]["ReleaseDate"]) if got else None
            want = answers[kb]
        elif pname == "Amazon Linux" and pversion == "2":
            kind = "amazon_linux_2"
            name, arch = kb.rsplit(".", 1)
            epoch, rest = title[len(kb) + 1:].split(":", 1)
            version, release = rest.rsplit("-", 1)
            k = (name, arch, epoch, version, release)
            if k not in answers:
                got = [p for p in listed([{"Key": "PRODUCT", "Values": ["AmazonLinux2.0"]},
                                          {"Key": "NAME", "Values": [name]},
                                          {"Key": "VERSION", "Values": [version]},
                                          {"Key": "RELEASE", "Values": [release]}])
                       if p.get("Arch") == arch and str(p.get("Epoch", 0)) == epoch]
                answers[k] = us(got[0]["ReleaseDate"]) if got else None
            want = answers[k]
        else:
            kind, want = "other", None
        counts[kind] += 1
        counts["dated"] += stored is not None
        if stored != want:
            problems.append({"instance": iid, "kb": kb, "platform": [ptype, pname, pversion],
                             "stored": stored, "listed": want})
    json.dump({"counts": counts, "problems": problems[:20], "disagreements": len(problems)}, sys.stdout)


main()
