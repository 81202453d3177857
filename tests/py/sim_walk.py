"""Walks the simulator with boto3 (official botocore models) and prints what it read as JSON.

An independent client of the simulator: the Rust tests compare its view with what patchtrail
stored. Endpoint and credentials come from the standard AWS environment variables.

usage: sim_walk.py [--all-classifications] [--tag-key K]
"""
import argparse
import json
import sys

import boto3
from botocore.exceptions import ClientError
from botocore.config import Config

SEED_CLASSES = ["Security", "CriticalUpdates", "SecurityUpdates"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--all-classifications", action="store_true")
    ap.add_argument("--tag-key", default="CheckPatch")
    args = ap.parse_args()
    cfg = Config(retries={"mode": "standard", "max_attempts": 10})
    ec2 = boto3.client("ec2", config=cfg)
    ssm = boto3.client("ssm", config=cfg)
    sts = boto3.client("sts", config=cfg)

    account = sts.get_caller_identity()["Account"]
    instances = []
    ec2_pages = 0
    for page in ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag-key", "Values": [args.tag_key]}], PaginationConfig={"PageSize": 100}
    ):
        ec2_pages += 1
        for r in page["Reservations"]:
            for i in r["Instances"]:
                if i["State"]["Name"] == "terminated":
                    continue
                instances.append(
                    {
                        "instance_id": i["InstanceId"],
                        "state": i["State"]["Name"],
                        "platform_details": i.get("PlatformDetails"),
                        "platform": i.get("Platform"),
                        "instance_type": i["InstanceType"],
                        "tags": {t["Key"]: t["Value"] for t in i.get("Tags", [])},
                    }
                )
    # Hybrid (mi-) nodes carrying the tag: SSM lists them, EC2 does not (a collect takes both,
    # and only EC2 instances when it may not call DescribeInstanceInformation).
    try:
        for page in ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "tag-key", "Values": [args.tag_key]}, {"Key": "ResourceType", "Values": ["ManagedInstance"]}],
            PaginationConfig={"PageSize": 50},
        ):
            for n in page["InstanceInformationList"]:
                instances.append({"instance_id": n["InstanceId"], "state": None, "platform_details": None,
                                  "platform": None, "instance_type": None, "tags": {}})
    except ClientError as e:
        if e.response["Error"]["Code"] not in ("AccessDeniedException", "AccessDenied"):
            raise
    ids = [i["instance_id"] for i in instances]

    filters = [] if args.all_classifications else [{"Key": "Classification", "Values": SEED_CLASSES}]
    patches, unmanaged, pages = [], [], {}
    for iid in ids:
        try:
            n = 0
            for page in ssm.get_paginator("describe_instance_patches").paginate(
                InstanceId=iid, Filters=filters, PaginationConfig={"PageSize": 50}
            ):
                n += 1
                for p in page["Patches"]:
                    t = p["InstalledTime"]
                    patches.append(
                        {
                            "instance_id": iid,
                            "kb_id": p["KBId"],
                            "title": p["Title"],
                            "classification": p["Classification"],
                            "severity": p["Severity"],
                            "state": p["State"],
                            "installed_epoch": int(t.timestamp()) if t.timestamp() > 0 else None,
                            "cve_ids": p.get("CVEIds"),
                        }
                    )
            pages[iid] = n
        except ssm.exceptions.InvalidInstanceId:
            unmanaged.append(iid)

    states = {}
    for k in range(0, len(ids), 50):
        for page in ssm.get_paginator("describe_instance_patch_states").paginate(
            InstanceIds=ids[k : k + 50], PaginationConfig={"PageSize": 50}
        ):
            for s in page["InstancePatchStates"]:
                states[s["InstanceId"]] = {
                    "baseline_id": s["BaselineId"],
                    "patch_group": s["PatchGroup"],
                    "operation": s["Operation"],
                    "last_scan_epoch": int(s["OperationEndTime"].timestamp()),
                    "installed": s["InstalledCount"],
                    "missing": s["MissingCount"],
                    "failed": s["FailedCount"],
                    "not_applicable": s["NotApplicableCount"],
                    "critical_non_compliant": s.get("CriticalNonCompliantCount"),
                }
    json.dump(
        {
            "account": account,
            "ec2_pages": ec2_pages,
            "instances": instances,
            "patches": patches,
            "unmanaged": unmanaged,
            "pages": pages,
            "states": states,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
