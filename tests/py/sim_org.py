"""Walks a simulated organization with boto3 (official botocore models), independently of patchtrail.

As a platform team's script would: Organizations ListAccounts (two accounts a page), ACTIVE accounts only;
STS AssumeRole into ROLE in each account but the caller's own (a refusal is noted); EC2 DescribeRegions with
the account's credentials (enabled regions, and with AllRegions the ones not opted in); then per (account,
region) the tagged EC2 instances and the caller identity there. With --store, also the instance rows of a
local parquet store, read with DuckDB (account, region, instance, run).

usage: sim_org.py ROLE [--store PATH]
Prints JSON: {management, accounts: [{id, state}], denied: {id: code}, not_opted_in: [...],
              scopes: {"ACCOUNT/REGION": {"identity": ACCOUNT, "instances": [ids]}}, stored: [[...]]}
"""
import argparse
import json
import sys

import boto3
from botocore.exceptions import ClientError


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("role")
    ap.add_argument("--store")
    args = ap.parse_args()
    sts = boto3.client("sts")
    management = sts.get_caller_identity()["Account"]
    org = boto3.client("organizations", region_name="us-east-1")
    accounts = []
    for page in org.get_paginator("list_accounts").paginate(PaginationConfig={"PageSize": 2}):
        accounts += [{"id": a["Id"], "state": a.get("State", a.get("Status"))} for a in page["Accounts"]]
    out = {"management": management, "accounts": accounts, "denied": {}, "scopes": {}, "not_opted_in": []}
    for account in [a["id"] for a in accounts if a["state"] == "ACTIVE"]:
        if account == management:
            session = boto3.session.Session()
        else:
            try:
                c = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/{args.role}",
                                    RoleSessionName="sim-org-check")["Credentials"]
            except ClientError as e:
                out["denied"][account] = e.response["Error"]["Code"]
                continue
            session = boto3.session.Session(aws_access_key_id=c["AccessKeyId"],
                                            aws_secret_access_key=c["SecretAccessKey"],
                                            aws_session_token=c["SessionToken"])
        ec2 = session.client("ec2")
        regions = [r["RegionName"] for r in ec2.describe_regions()["Regions"]]
        out["not_opted_in"] = [r["RegionName"] for r in ec2.describe_regions(AllRegions=True)["Regions"]
                               if r.get("OptInStatus") == "not-opted-in"]
        for region in regions:
            ids = []
            for page in session.client("ec2", region_name=region).get_paginator("describe_instances").paginate(
                    Filters=[{"Name": "tag-key", "Values": ["CheckPatch"]}]):
                ids += [i["InstanceId"] for r in page["Reservations"] for i in r["Instances"]
                        if i["State"]["Name"] != "terminated"]
            identity = session.client("sts", region_name=region).get_caller_identity()["Account"]
            out["scopes"][f"{account}/{region}"] = {"identity": identity, "instances": sorted(ids)}
    if args.store:
        import duckdb
        rows = duckdb.connect().execute(
            f"SELECT account_id, region, instance_id, run_id FROM read_parquet('{args.store}/instances/**/*.parquet') "
            "ORDER BY ALL").fetchall()
        out["stored"] = [list(r) for r in rows]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
